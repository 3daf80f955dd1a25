//! [`ResponseCache`]: a named collection of repositories over one backend,
//! routing each request to its repository.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use url::Url;

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::name::Name;
use crate::repository::{Repository, RepositoryOptions};
use crate::request::Request;
use crate::settings::RepositorySettings;
use crate::time::{Clock, Expiry, SystemClock};

type Getter = Arc<dyn Fn(&Url) -> Option<String> + Send + Sync>;

/// Defines a [`ResponseCache`]: its name, default expiry, retention, clock,
/// repositories and router. [`connect`](Self::connect) creates the
/// repositories in the backend.
pub struct ResponseCacheBuilder<P> {
    name: String,
    options: RepositoryOptions,
    settings: Vec<Arc<dyn RepositorySettings<P>>>,
    getter: Option<Getter>,
}

impl<P: Send + Sync + 'static> ResponseCacheBuilder<P> {
    /// How long entries stay fresh when a repository's settings say nothing
    /// (default: never stale).
    pub fn default_expiry(mut self, expiry: impl Into<Expiry>) -> Self {
        self.options.default_expiry = expiry.into();
        self
    }

    /// How long stale entries are kept by backends with native expiry
    /// (default: until cleared).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.options.retention = Some(retention);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = clock;
        self
    }

    /// Defines a repository. Connecting creates it in the backend; two
    /// repositories with one name are a [`ErrorKind::Configuration`] error
    /// at [`connect`](Self::connect).
    pub fn create_repository(mut self, settings: impl RepositorySettings<P>) -> Self {
        self.settings.push(Arc::new(settings));
        self
    }

    /// How a URL is routed to a repository: returns the repository's name.
    /// Without it, a request goes to the first repository (in definition
    /// order) whose settings give it a key.
    pub fn repository_getter(
        mut self,
        getter: impl Fn(&Url) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.getter = Some(Arc::new(getter));
        self
    }

    /// Validates the definitions and opens every repository's store.
    pub async fn connect(self, backend: Arc<dyn Backend>) -> Result<ResponseCache<P>> {
        let name = Name::new(self.name)?;
        let mut repositories = Vec::with_capacity(self.settings.len());
        let mut index = HashMap::new();
        for settings in self.settings {
            let repo_name = Name::new(settings.name())?;
            if index.contains_key(repo_name.as_str()) {
                return Err(Error::new(
                    ErrorKind::Configuration,
                    format!("cache {name}: repository {repo_name} is defined twice"),
                ));
            }
            let repo =
                Repository::create_shared(backend.as_ref(), &name, settings, self.options.clone())
                    .await?;
            index.insert(repo_name.as_str().to_owned(), repositories.len());
            repositories.push(repo);
        }
        Ok(ResponseCache {
            name,
            backend,
            repositories,
            index,
            getter: self.getter,
            closed: AtomicBool::new(false),
        })
    }
}

/// A named collection of [`Repository`]s over one backend that routes each
/// request to its repository.
///
/// ```
/// # async fn demo() -> respcache_core::Result<()> {
/// use std::{sync::Arc, time::Duration};
/// use respcache_core::{JsonCodec, MemoryBackend, Request, ResponseCache, TemplateSettings};
/// use serde_json::{json, Value};
///
/// let cache = ResponseCache::<Value>::builder("spotify")
///     .default_expiry(Duration::from_secs(3600))
///     .create_repository(TemplateSettings::new("tracks", "/v1/tracks/{id}", JsonCodec)?)
///     .create_repository(TemplateSettings::new("albums", "/v1/albums/{id}", JsonCodec)?)
///     .connect(Arc::new(MemoryBackend::new()))
///     .await?;
/// let req = Request::get("https://api.spotify.com/v1/albums/4aawyAB9vmqN3uQ7FjRGTy")?;
/// cache.save(&req, &json!({"name": "Global Warming"})).await?;
/// assert_eq!(cache.repository_for(&req).map(|r| r.name()), Some("albums"));
/// assert!(cache.get(&req).await?.is_some());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct ResponseCache<P> {
    name: Name,
    backend: Arc<dyn Backend>,
    repositories: Vec<Repository<P>>,
    index: HashMap<String, usize>,
    getter: Option<Getter>,
    closed: AtomicBool,
}

impl<P> fmt::Debug for ResponseCache<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("name", &self.name)
            .field("backend", &self.backend.name())
            .field("repositories", &self.index.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<P: Send + Sync + 'static> ResponseCache<P> {
    /// Starts defining a cache named `name` (validated at `connect`).
    pub fn builder(name: impl Into<String>) -> ResponseCacheBuilder<P> {
        ResponseCacheBuilder {
            name: name.into(),
            options: RepositoryOptions {
                clock: Arc::new(SystemClock),
                ..RepositoryOptions::default()
            },
            settings: Vec::new(),
            getter: None,
        }
    }

    /// The cache's name.
    pub fn cache_name(&self) -> &str {
        self.name.as_str()
    }

    /// The backend the cache lives in.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The repository named `name`.
    pub fn repository(&self, name: &str) -> Option<&Repository<P>> {
        self.index.get(name).and_then(|i| self.repositories.get(*i))
    }

    /// Every repository, in definition order.
    pub fn repositories(&self) -> &[Repository<P>] {
        &self.repositories
    }

    /// The repository `request` routes to, if any.
    pub fn repository_for(&self, request: &Request) -> Option<&Repository<P>> {
        match &self.getter {
            Some(getter) => getter(request.url()).and_then(|n| self.repository(&n)),
            None => self.repositories.iter().find(|r| r.key(request).is_some()),
        }
    }

    fn check_open(&self, op: Operation) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(
                Error::new(ErrorKind::Closed, format!("cache {} was closed", self.name))
                    .with_backend(self.backend.name())
                    .with_operation(op),
            );
        }
        Ok(())
    }

    /// The fresh payload for `request`; `None` on a miss or when no
    /// repository takes the request.
    pub async fn get(&self, request: &Request) -> Result<Option<P>> {
        self.check_open(Operation::Get)?;
        match self.repository_for(request) {
            Some(repo) => repo.get_response(request).await,
            None => Ok(None),
        }
    }

    /// Saves `payload` for `request`; `false` when no repository takes it.
    pub async fn save(&self, request: &Request, payload: &P) -> Result<bool> {
        self.check_open(Operation::Put)?;
        match self.repository_for(request) {
            Some(repo) => repo.save_response(request, payload).await,
            None => Ok(false),
        }
    }

    /// Saves `payload` for `request` with `tags`; `false` when no
    /// repository takes it.
    pub async fn save_tagged(
        &self,
        request: &Request,
        payload: &P,
        tags: &crate::tags::Tags,
    ) -> Result<bool> {
        self.check_open(Operation::Put)?;
        match self.repository_for(request) {
            Some(repo) => repo.save_tagged(request, payload, tags).await,
            None => Ok(false),
        }
    }

    /// Removes every entry carrying `tag` in every repository of the cache;
    /// returns how many. Repositories are purged one after the other; an
    /// error stops at the failing repository (those before it stay purged).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] for an invalid tag (see
    /// [`Tags`](crate::tags::Tags)), before any repository is touched.
    pub async fn purge_tag(&self, tag: &str) -> Result<u64> {
        self.check_open(Operation::PurgeTag)?;
        crate::tags::validate_tag(tag).map_err(|e| {
            e.with_backend(self.backend.name())
                .with_operation(Operation::PurgeTag)
        })?;
        let mut removed = 0;
        for repo in &self.repositories {
            removed += repo.purge_tag(tag).await?;
        }
        Ok(removed)
    }

    /// Deletes the answer to `request`; `true` if one was stored.
    pub async fn delete(&self, request: &Request) -> Result<bool> {
        self.check_open(Operation::Delete)?;
        match self.repository_for(request) {
            Some(repo) => repo.delete_response(request).await,
            None => Ok(false),
        }
    }

    fn batch_repository<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
        op: Operation,
    ) -> Result<Option<&Repository<P>>> {
        let mut chosen: Option<&Repository<P>> = None;
        for request in requests {
            let Some(repo) = self.repository_for(request) else {
                continue;
            };
            match chosen {
                Some(c) if c.name() != repo.name() => {
                    return Err(Error::new(
                        ErrorKind::MixedBatch,
                        format!(
                            "a batch must stay in one repository; {} goes to {:?}, an earlier request to {:?}",
                            request.url(),
                            repo.name(),
                            c.name()
                        ),
                    )
                    .with_backend(self.backend.name())
                    .with_operation(op));
                }
                _ => chosen = Some(repo),
            }
        }
        Ok(chosen)
    }

    /// The fresh payloads for `requests`, in order: one slot per request,
    /// `None` for a miss or a request no repository takes. All routed
    /// requests must go to one repository, otherwise it is an
    /// [`ErrorKind::MixedBatch`] error.
    pub async fn get_many(&self, requests: &[Request]) -> Result<Vec<Option<P>>> {
        self.check_open(Operation::GetMany)?;
        let mut out: Vec<Option<P>> = requests.iter().map(|_| None).collect();
        let Some(repo) = self.batch_repository(requests.iter(), Operation::GetMany)? else {
            return Ok(out);
        };
        let (slots, routed) = self.routed_to(repo, requests.iter());
        let found = repo.get_responses(&routed).await?;
        for (slot, payload) in slots.into_iter().zip(found) {
            if let Some(place) = out.get_mut(slot) {
                *place = payload;
            }
        }
        Ok(out)
    }

    /// Saves many answers in one bulk call (one repository only); requests
    /// no repository takes are skipped. Returns how many were saved.
    pub async fn save_many(&self, items: &[(Request, P)]) -> Result<u64> {
        self.check_open(Operation::PutMany)?;
        let Some(repo) = self.batch_repository(items.iter().map(|(r, _)| r), Operation::PutMany)?
        else {
            return Ok(0);
        };
        repo.save_pairs(
            items
                .iter()
                .filter(|(r, _)| self.routes_to(repo, r))
                .map(|(r, p)| (r, p)),
        )
        .await
    }

    /// Deletes many answers (one repository only); requests no repository
    /// takes are skipped. Returns how many existed.
    pub async fn delete_many(&self, requests: &[Request]) -> Result<u64> {
        self.check_open(Operation::DeleteMany)?;
        let Some(repo) = self.batch_repository(requests.iter(), Operation::DeleteMany)? else {
            return Ok(0);
        };
        let (_, routed) = self.routed_to(repo, requests.iter());
        repo.delete_responses(&routed).await
    }

    fn routes_to(&self, repo: &Repository<P>, request: &Request) -> bool {
        self.repository_for(request)
            .is_some_and(|r| r.name() == repo.name())
    }

    /// The requests that route to `repo`, with their positions.
    fn routed_to<'a>(
        &self,
        repo: &Repository<P>,
        requests: impl Iterator<Item = &'a Request>,
    ) -> (Vec<usize>, Vec<Request>) {
        requests
            .enumerate()
            .filter(|(_, r)| self.routes_to(repo, r))
            .map(|(i, r)| (i, r.clone()))
            .unzip()
    }

    /// Closes the cache and its repositories: later calls are
    /// [`ErrorKind::Closed`] errors. The backend stays open; its owner closes it.
    pub async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        for repo in &self.repositories {
            repo.close().await?;
        }
        Ok(())
    }
}
