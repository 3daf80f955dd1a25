//! Where answers are stored: one `http` store over a [`Backend`] (keys are
//! digests of the normalised request), or the repositories of a
//! [`ResponseCache`] (keys from each repository's settings). Redirect
//! pointers live in a store of their own in both cases.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use respcache_core::{
    Backend, DynStore, FieldKind, Key, KeyPart, KeySchema, Name, Request, ResponseCache, StoreSpec,
};
use url::Url;

use crate::stats::StoreState;

/// The repository name of plain HTTP caching over a backend.
pub const HTTP_REPOSITORY: &str = "http";
/// The repository name of redirect pointers (original request → final URL).
pub const REDIRECTS_REPOSITORY: &str = "http_redirects";
/// The one key field of both: the hex digest of the normalised request.
pub const REQUEST_FIELD: &str = "request";

/// Where one request's answer lives.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) store: Arc<DynStore>,
    pub(crate) key: Key,
    pub(crate) repository: Arc<str>,
    /// Whether variants (`Vary`) get keys of their own; otherwise one
    /// variant is kept and matched on read.
    pub(crate) variants: bool,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("repository", &self.repository)
            .field("key", &self.key)
            .finish()
    }
}

/// The storage side of a client.
pub(crate) trait Target: Send + Sync + fmt::Debug {
    /// The backend's name, for logs.
    fn backend_name(&self) -> &'static str;

    /// The largest payload the backend accepts, if limited.
    fn max_payload(&self) -> Option<usize>;

    /// The slot of a request (`digest` names it in digest-keyed stores);
    /// `None` when the request is not cached here.
    fn slot(&self, method: &Method, url: &Url, digest: &str, headers: &HeaderMap) -> Option<Slot>;

    /// The key of one variant of `slot`'s answer.
    fn variant_key(&self, slot: &Slot, nonce: u64, vary: &[u8; 32]) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(slot.key.encode().as_bytes());
        h.update(&nonce.to_le_bytes());
        h.update(vary);
        Key::new(
            slot.key.method(),
            [KeyPart::Text(crate::normalize::digest_hex(&h.finalize()))],
        )
    }

    /// Checks that `body` can be stored in `slot` and names it; `Err` with a
    /// reason when the repository's codec cannot read it back.
    fn payload_name(&self, slot: &Slot, body: &Bytes) -> Result<Option<String>, String>;

    /// The redirect pointers.
    fn redirects(&self) -> &Arc<DynStore>;

    /// The expiry the slot's repository sets, if any.
    fn repository_expiry(&self, _slot: &Slot) -> Option<respcache_core::Expiry> {
        None
    }

    /// Whether the stores are open, and why not.
    fn store_state(&self) -> (StoreState, Option<String>) {
        (StoreState::Ready, None)
    }

    /// The stores answers live in, by repository (not the redirect
    /// pointers); none while they are not open.
    fn stores(&self) -> Vec<(Arc<str>, Arc<DynStore>)>;

    /// The backend, once open.
    fn backend(&self) -> Option<Arc<dyn Backend>>;
}

/// The key schema of the `http` and `http_redirects` stores.
pub(crate) fn digest_schema() -> respcache_core::Result<KeySchema> {
    KeySchema::new([(REQUEST_FIELD, FieldKind::Text)])
}

/// A digest-keyed key.
pub(crate) fn digest_key(method: &Method, digest: &str) -> Key {
    Key::new(method.as_str(), [KeyPart::Text(digest.to_owned())])
}

pub(crate) async fn open_digest_store(
    backend: &dyn Backend,
    cache: &Name,
    repository: &str,
    retention: Option<std::time::Duration>,
) -> respcache_core::Result<Arc<DynStore>> {
    let spec = StoreSpec::new(cache.clone(), Name::new(repository)?, digest_schema()?)
        .with_retention(retention);
    backend.open_store(&spec).await
}

/// Plain HTTP caching over a backend.
#[derive(Debug)]
pub(crate) struct BackendTarget {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) store: Arc<DynStore>,
    pub(crate) redirects: Arc<DynStore>,
    pub(crate) repository: Arc<str>,
}

impl Target for BackendTarget {
    fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    fn max_payload(&self) -> Option<usize> {
        self.backend.limits().max_payload_bytes
    }

    fn slot(
        &self,
        method: &Method,
        _url: &Url,
        digest: &str,
        _headers: &HeaderMap,
    ) -> Option<Slot> {
        Some(Slot {
            store: Arc::clone(&self.store),
            key: digest_key(method, digest),
            repository: Arc::clone(&self.repository),
            variants: true,
        })
    }

    fn payload_name(&self, _slot: &Slot, _body: &Bytes) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn redirects(&self) -> &Arc<DynStore> {
        &self.redirects
    }

    fn stores(&self) -> Vec<(Arc<str>, Arc<DynStore>)> {
        vec![(Arc::clone(&self.repository), Arc::clone(&self.store))]
    }

    fn backend(&self) -> Option<Arc<dyn Backend>> {
        Some(Arc::clone(&self.backend))
    }
}

/// API-aware caching through a [`ResponseCache`]: its router picks the
/// repository and the repository's settings the key; the raw body is the
/// payload, so the repository's codec reads it back.
pub(crate) struct CacheTarget<P> {
    pub(crate) cache: Arc<ResponseCache<P>>,
    pub(crate) redirects: Arc<DynStore>,
}

impl<P> fmt::Debug for CacheTarget<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheTarget")
            .field("cache", &self.cache)
            .finish()
    }
}

impl<P: Send + Sync + 'static> Target for CacheTarget<P> {
    fn backend_name(&self) -> &'static str {
        self.cache.backend().name()
    }

    fn max_payload(&self) -> Option<usize> {
        self.cache.backend().limits().max_payload_bytes
    }

    fn slot(&self, method: &Method, url: &Url, _digest: &str, headers: &HeaderMap) -> Option<Slot> {
        let mut request = Request::new(method.clone(), url.clone());
        for (name, value) in headers {
            request = request.with_header(name.clone(), value.clone());
        }
        let repo = self.cache.repository_for(&request)?;
        let key = repo.key(&request)?;
        repo.settings().fields().validate(&key).ok()?;
        Some(Slot {
            store: Arc::clone(repo.store()),
            key,
            repository: Arc::from(repo.name()),
            variants: false,
        })
    }

    fn payload_name(&self, slot: &Slot, body: &Bytes) -> Result<Option<String>, String> {
        let Some(repo) = self.cache.repository(&slot.repository) else {
            return Err(format!("repository {} is gone", slot.repository));
        };
        let settings = repo.settings();
        match settings.codec().decode(body) {
            Ok(payload) => Ok(settings.name_of(&payload)),
            Err(e) => Err(format!(
                "the {} codec of repository {} cannot read the body: {e}",
                settings.codec().name(),
                slot.repository
            )),
        }
    }

    fn redirects(&self) -> &Arc<DynStore> {
        &self.redirects
    }

    fn repository_expiry(&self, slot: &Slot) -> Option<respcache_core::Expiry> {
        self.cache
            .repository(&slot.repository)
            .and_then(|r| r.expiry())
    }

    fn stores(&self) -> Vec<(Arc<str>, Arc<DynStore>)> {
        self.cache
            .repositories()
            .iter()
            .map(|r| (Arc::from(r.name()), Arc::clone(r.store())))
            .collect()
    }

    fn backend(&self) -> Option<Arc<dyn Backend>> {
        Some(Arc::clone(self.cache.backend()))
    }
}
