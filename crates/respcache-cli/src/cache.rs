//! [`Cache`]: a connected backend and one cache in it, with the stores of
//! its repositories opened for a tool that did not define them.

use std::path::PathBuf;
use std::sync::Arc;

use respcache::{Backend, DynStore, KeySchema, Name, StoreSpec};

use crate::failure::{CliResult, Failure};
use crate::location::Location;

/// A cache in a connected backend.
pub(crate) struct Cache {
    backend: Arc<dyn Backend>,
    location: Location,
}

/// One repository's store, opened.
pub(crate) struct Repo {
    /// The repository.
    pub(crate) name: Name,
    /// Its key fields, if the backend records them.
    pub(crate) schema: Option<KeySchema>,
    /// Its entries.
    pub(crate) store: Arc<DynStore>,
}

impl Cache {
    /// Connects to the backend `location` names. With `existing`, a
    /// database file or folder that does not exist is an error instead of
    /// being created empty (a typo must not look like an empty cache).
    pub(crate) async fn connect(location: Location, existing: bool) -> CliResult<Self> {
        if existing && let Some(path) = missing_local(location.backend_url()) {
            return Err(Failure::new(format!(
                "{}: {} does not exist",
                location.shown(),
                path.display()
            )));
        }
        let backend = respcache::connect(location.backend_url())
            .await
            .map_err(|e| {
                // Connection errors usually name the URL already.
                let text = e.to_string();
                if text.contains(&respcache::redact_url(location.backend_url())) {
                    Failure::new(text)
                } else {
                    Failure::new(format!("{}: {text}", location.shown()))
                }
            })?;
        Ok(Cache { backend, location })
    }

    /// Where the cache is.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The backend's size accounting and trimming, if it has them (the
    /// local backends: `stats` shows the budget, `purge --to` trims).
    pub(crate) fn eviction(&self) -> Option<&dyn respcache::Eviction> {
        self.backend.eviction()
    }

    /// The backend's short name (`sqlite`, `redis`, ...).
    pub(crate) fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// `error` with the cache and the (redacted) URL in front.
    pub(crate) fn fail(&self, error: impl std::fmt::Display) -> Failure {
        Failure::new(format!("{}: {error}", self.location))
    }

    /// The repositories of the cache, sorted; only those in `only` when it
    /// is not empty (each must exist).
    pub(crate) async fn repositories(&self, only: &[String]) -> CliResult<Vec<Name>> {
        let all = self
            .backend
            .list_stores(&self.location.cache)
            .await
            .map_err(|e| self.fail(e))?;
        if only.is_empty() {
            return Ok(all);
        }
        let mut chosen = Vec::with_capacity(only.len());
        for wanted in only {
            match all.iter().find(|n| n.as_str() == wanted) {
                Some(name) if !chosen.contains(name) => chosen.push(name.clone()),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = all.iter().map(Name::as_str).collect();
                    let known = if known.is_empty() {
                        "it has none".to_owned()
                    } else {
                        format!("it has: {}", known.join(", "))
                    };
                    return Err(self.fail(format!("no repository {wanted:?} ({known})")));
                }
            }
        }
        Ok(chosen)
    }

    /// The key fields `repository` was created with, if the backend records
    /// them.
    pub(crate) async fn schema(&self, repository: &Name) -> CliResult<Option<KeySchema>> {
        self.backend
            .stored_schema(&self.location.cache, repository)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Opens an existing repository's store with the schema it was
    /// created with (backends that do not record schemas accept any).
    pub(crate) async fn open(&self, repository: &Name) -> CliResult<Repo> {
        let schema = self.schema(repository).await?;
        let store = self
            .open_with(repository, schema.clone().unwrap_or_default())
            .await?;
        Ok(Repo {
            name: repository.clone(),
            schema,
            store,
        })
    }

    /// Opens `repository`'s store with `schema`, creating it if missing.
    pub(crate) async fn open_with(
        &self,
        repository: &Name,
        schema: KeySchema,
    ) -> CliResult<Arc<DynStore>> {
        let spec = StoreSpec::new(self.location.cache.clone(), repository.clone(), schema)
            .with_retention(self.location.retention);
        self.backend
            .open_store(&spec)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Closes the backend's connections.
    pub(crate) async fn close(&self) -> CliResult<()> {
        self.backend.close().await.map_err(|e| self.fail(e))
    }
}

/// The database file (SQLite) or root folder (filesystem) a URL names, if
/// it does not exist.
fn missing_local(url: &str) -> Option<PathBuf> {
    // The storage-economy options are the facade's, not the backends'.
    let url = respcache::economy::EconomyOptions::from_url(url)
        .map(|(rest, _)| rest)
        .ok()?;
    let url = url.as_str();
    #[cfg(feature = "sqlite")]
    if let Ok(config) = respcache::sqlite::SqliteConfig::from_url(url)
        && let respcache::sqlite::Location::File(path) = config.location
        && !path.exists()
    {
        return Some(path);
    }
    #[cfg(feature = "fs")]
    if let Ok(config) = respcache::fs::FsConfig::from_url(url)
        && !config.root.exists()
    {
        return Some(config.root);
    }
    let _ = url;
    None
}
