//! The one wrapper every backend puts around its stores: a backend's closed
//! flag ([`BackendGuard`]) and the [`CheckedStore`] that checks it before
//! each call and names the backend, the repository and the operation in
//! every error that leaves the store without them.
//!
//! A backend holds one [`BackendGuard`], wraps each store its
//! [`open_store`](crate::Backend::open_store) returns with
//! [`BackendGuard::wrap`], checks the guard in its own calls
//! ([`BackendGuard::check`]) and closes it in
//! [`close`](crate::Backend::close). Its store code then neither checks a
//! flag nor adds context: it maps its native errors to an
//! [`ErrorKind`] and a message, and the wrapper does the rest.
//!
//! ```
//! use respcache_core::checked_store::BackendGuard;
//! use respcache_core::{Backend, ErrorKind, KeySchema, MemoryBackend, Name, StoreSpec};
//! # async fn demo() -> respcache_core::Result<()> {
//! let guard = BackendGuard::new("mine");
//! let spec = StoreSpec::new(Name::new("c")?, Name::new("tracks")?, KeySchema::new([])?);
//! let raw = MemoryBackend::new().open_store(&spec).await?;
//! let store = guard.wrap(&spec, raw);
//! guard.close();
//! let err = store.purge_tag("t").await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Closed);
//! assert_eq!(
//!     err.to_string(),
//!     "mine: purge_tag in repository \"tracks\": closed: the backend was closed"
//! );
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Cost on the success path: one atomic load and the wrapper's own boxed
//! future (the [`Store`] trait boxes every call); nothing else is
//! allocated. The repository name is copied only into an error.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::backend::{DynStore, Store, StoreSpec};
use crate::entry::{Entry, Select};
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::key::Key;
use crate::lease::LeaseToken;
use crate::name::Name;
use crate::time::Timestamp;

/// A backend's one closed flag, shared with every store it opened, and
/// its name for errors. Cloning shares the flag.
#[derive(Clone)]
pub struct BackendGuard {
    backend: &'static str,
    closed: Arc<AtomicBool>,
}

impl BackendGuard {
    /// An open guard for the backend named `backend` (`sqlite`, `redis`, ...).
    pub fn new(backend: &'static str) -> Self {
        BackendGuard {
            backend,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Marks the backend closed: every later call through this guard or a
    /// store it wrapped is a [`Closed`](ErrorKind::Closed) error. Returns
    /// whether it was open until now.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether the backend was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// `Ok` while the backend is open; a [`Closed`](ErrorKind::Closed)
    /// error naming the backend and `operation` once it is closed.
    pub fn check(&self, operation: Operation) -> Result<()> {
        if self.is_closed() {
            return Err(closed_error(self.backend, None, operation));
        }
        Ok(())
    }

    /// As [`check`](Self::check), for a call on one repository's store.
    pub fn check_store(&self, repository: &Name, operation: Operation) -> Result<()> {
        if self.is_closed() {
            return Err(closed_error(
                self.backend,
                Some(repository.as_str()),
                operation,
            ));
        }
        Ok(())
    }

    /// Fills in the backend, `repository` (when the call has one) and
    /// `operation` of an error of a backend-level call, where not set yet.
    pub fn context<'a>(
        &self,
        operation: Operation,
        repository: Option<&'a Name>,
    ) -> impl Fn(Error) -> Error + 'a {
        let backend = self.backend;
        move |e| with_context(e, backend, repository.map(Name::as_str), operation)
    }

    /// `store`, the store `spec` opened, behind the guard: each call checks
    /// the closed flag first, and every error it returns names this
    /// backend, `spec`'s repository and the operation.
    pub fn wrap(&self, spec: &StoreSpec, store: Arc<DynStore>) -> Arc<DynStore> {
        Arc::new(CheckedStore {
            inner: store,
            backend: self.backend,
            repository: spec.repository.clone(),
            closed: Arc::clone(&self.closed),
        })
    }
}

impl fmt::Debug for BackendGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendGuard")
            .field("backend", &self.backend)
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cold]
fn closed_error(backend: &'static str, repository: Option<&str>, operation: Operation) -> Error {
    with_context(
        Error::new(ErrorKind::Closed, "the backend was closed"),
        backend,
        repository,
        operation,
    )
}

#[cold]
fn with_context(
    e: Error,
    backend: &'static str,
    repository: Option<&str>,
    operation: Operation,
) -> Error {
    match repository {
        Some(repository) => e.in_context(backend, repository, operation),
        None => {
            let e = if e.backend().is_none() {
                e.with_backend(backend)
            } else {
                e
            };
            if e.operation().is_none() {
                e.with_operation(operation)
            } else {
                e
            }
        }
    }
}

/// A backend's store behind its [`BackendGuard`] (made by
/// [`BackendGuard::wrap`]): every call fails with
/// [`Closed`](ErrorKind::Closed) once the backend is closed, and every
/// error names the backend, the repository and the operation.
pub struct CheckedStore {
    inner: Arc<DynStore>,
    backend: &'static str,
    repository: Name,
    closed: Arc<AtomicBool>,
}

impl CheckedStore {
    /// The backend's own store inside.
    pub fn inner(&self) -> &Arc<DynStore> {
        &self.inner
    }

    #[inline]
    fn check(&self, operation: Operation) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error(
                self.backend,
                Some(self.repository.as_str()),
                operation,
            ));
        }
        Ok(())
    }

    fn ctx(&self, operation: Operation) -> impl Fn(Error) -> Error + '_ {
        move |e| with_context(e, self.backend, Some(self.repository.as_str()), operation)
    }
}

impl fmt::Debug for CheckedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The backend's store already says what it is; the flag is the
        // backend's.
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl Store for CheckedStore {
    async fn get(&self, key: &Key) -> Result<Option<Entry>> {
        self.check(Operation::Get)?;
        self.inner.get(key).await.map_err(self.ctx(Operation::Get))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entry>>> {
        self.check(Operation::GetMany)?;
        self.inner
            .get_many(keys)
            .await
            .map_err(self.ctx(Operation::GetMany))
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.check(Operation::Put)?;
        self.inner
            .put(entry)
            .await
            .map_err(self.ctx(Operation::Put))
    }

    async fn put_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.check(Operation::PutMany)?;
        self.inner
            .put_many(entries)
            .await
            .map_err(self.ctx(Operation::PutMany))
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.check(Operation::Delete)?;
        self.inner
            .delete(key)
            .await
            .map_err(self.ctx(Operation::Delete))
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.check(Operation::DeleteMany)?;
        self.inner
            .delete_many(keys)
            .await
            .map_err(self.ctx(Operation::DeleteMany))
    }

    async fn contains(&self, key: &Key, now: Timestamp) -> Result<bool> {
        self.check(Operation::Contains)?;
        self.inner
            .contains(key, now)
            .await
            .map_err(self.ctx(Operation::Contains))
    }

    async fn count(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.check(Operation::Count)?;
        self.inner
            .count(select, now)
            .await
            .map_err(self.ctx(Operation::Count))
    }

    async fn clear(&self, select: Select, now: Timestamp) -> Result<u64> {
        self.check(Operation::Clear)?;
        self.inner
            .clear(select, now)
            .await
            .map_err(self.ctx(Operation::Clear))
    }

    fn scan(&self, select: Select, now: Timestamp) -> BoxStream<'static, Result<Entry>> {
        if let Err(e) = self.check(Operation::Scan) {
            return futures::stream::once(std::future::ready(Err(e))).boxed();
        }
        let backend = self.backend;
        let repository = self.repository.clone();
        let closed = Arc::clone(&self.closed);
        // The flag is read after each item, and at the end: a close while
        // the stream runs ends it with one `Closed` error.
        let items = self.inner.scan(select, now);
        futures::stream::unfold(Some(items), move |state| {
            let repository = repository.clone();
            let closed = Arc::clone(&closed);
            async move {
                let mut items = state?;
                let next = items.next().await;
                if closed.load(Ordering::Acquire) {
                    let e = closed_error(backend, Some(repository.as_str()), Operation::Scan);
                    return Some((Err(e), None));
                }
                let item = next?.map_err(|e| {
                    with_context(e, backend, Some(repository.as_str()), Operation::Scan)
                });
                Some((item, Some(items)))
            }
        })
        .boxed()
    }

    async fn set_expiry(&self, key: &Key, expires_at: Option<Timestamp>) -> Result<bool> {
        self.check(Operation::SetExpiry)?;
        self.inner
            .set_expiry(key, expires_at)
            .await
            .map_err(self.ctx(Operation::SetExpiry))
    }

    async fn set_meta(
        &self,
        key: &Key,
        meta: Option<Bytes>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        self.check(Operation::SetMeta)?;
        self.inner
            .set_meta(key, meta, expires_at)
            .await
            .map_err(self.ctx(Operation::SetMeta))
    }

    async fn purge_tag(&self, tag: &str) -> Result<u64> {
        self.check(Operation::PurgeTag)?;
        self.inner
            .purge_tag(tag)
            .await
            .map_err(self.ctx(Operation::PurgeTag))
    }

    async fn acquire_lease(&self, key: &Key, ttl: Duration) -> Result<Option<LeaseToken>> {
        self.check(Operation::AcquireLease)?;
        self.inner
            .acquire_lease(key, ttl)
            .await
            .map_err(self.ctx(Operation::AcquireLease))
    }

    async fn release_lease(&self, key: &Key, token: &LeaseToken) -> Result<bool> {
        self.check(Operation::ReleaseLease)?;
        self.inner
            .release_lease(key, token)
            .await
            .map_err(self.ctx(Operation::ReleaseLease))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{FieldKind, KeyPart, KeySchema};
    use crate::{Backend, MemoryBackend};

    fn spec() -> StoreSpec {
        StoreSpec::new(
            Name::new("c").unwrap(),
            Name::new("tracks").unwrap(),
            KeySchema::new([("id", FieldKind::Integer)]).unwrap(),
        )
    }

    async fn checked() -> (BackendGuard, Arc<DynStore>) {
        let guard = BackendGuard::new("test");
        let raw = MemoryBackend::new().open_store(&spec()).await.unwrap();
        let store = guard.wrap(&spec(), raw);
        (guard, store)
    }

    #[tokio::test]
    async fn errors_get_backend_repository_and_operation() {
        let (_guard, store) = checked().await;
        let e = store.purge_tag("bad\ntag").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey);
        assert_eq!(e.repository(), Some("tracks"));
        assert_eq!(e.operation(), Some(Operation::PurgeTag));
        // The memory store already named itself: its name is kept.
        assert_eq!(e.backend(), Some("memory"));
    }

    #[tokio::test]
    async fn every_call_after_close_is_closed_with_context() {
        let (guard, store) = checked().await;
        let key = Key::new("GET", [KeyPart::Int(1)]);
        store
            .put(Entry::new(key.clone(), Timestamp::from_millis(0), "v"))
            .await
            .unwrap();
        let mut scan = store.scan(Select::All, Timestamp::from_millis(0));
        assert!(guard.close());
        assert!(!guard.close(), "closing twice says it was closed");
        let e = store.get(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(
            e.to_string(),
            "test: get in repository \"tracks\": closed: the backend was closed"
        );
        let e = store.set_meta(&key, None, None).await.unwrap_err();
        assert_eq!(e.operation(), Some(Operation::SetMeta));
        // A running scan ends with one Closed error.
        let items: Vec<_> = (&mut scan).collect().await;
        assert_eq!(items.len(), 1);
        assert!(
            items[0]
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::Closed)
        );
        let e = guard.check(Operation::ListStores).unwrap_err();
        assert_eq!(
            e.to_string(),
            "test: list_stores: closed: the backend was closed"
        );
    }
}
