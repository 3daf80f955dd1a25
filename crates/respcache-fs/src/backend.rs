//! [`FsBackend`]: a root folder holding one folder per cache and one per
//! repository inside it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use respcache_core::budget::{Budget, Eviction, ProgressFn, TrimProgress, Usage};
use respcache_core::{Backend, BackendGuard, DynStore, Error, Name, Operation, Result, StoreSpec};
use tempfile::TempDir;

use crate::SCHEME;
use crate::config::FsConfig;
use crate::error::{At, map_io_error, map_join_error};
use crate::file;
use crate::layout::{TEMP_PREFIX, cache_dir, store_dir};
use crate::store::FsStore;
use crate::usage::Accounting;

/// What a backend and all the stores it opened share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The root folder, absolute.
    pub(crate) root: PathBuf,
    /// The configuration as given.
    pub(crate) config: FsConfig,
    /// The closed flag every store is checked against.
    pub(crate) guard: BackendGuard,
    /// The budget, the size estimate and the recorded hits (`usage.rs`).
    pub(crate) accounting: Accounting,
    /// The temporary root of [`FsBackend::temp`], removed when the last
    /// handle (backend or store) drops.
    _temp: Option<TempDir>,
}

impl Shared {
    /// Whether the backend was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.guard.is_closed()
    }
}

#[doc = include_str!("docs.md")]
#[derive(Debug)]
pub struct FsBackend {
    shared: Arc<Shared>,
}

impl FsBackend {
    /// Opens the cache under `config.root`, creating the folder if missing,
    /// and checks that it is a folder this process can write to.
    ///
    /// # Errors
    ///
    /// [`Connection`](respcache_core::ErrorKind::Connection) when the root
    /// cannot be created, is not a folder, or is not writable.
    pub async fn connect(config: FsConfig) -> Result<Self> {
        let wanted = config.root.clone();
        let root = blocking(move || prepare_root(&wanted)).await??;
        Ok(FsBackend::from_parts(root, config, None))
    }

    /// Opens the cache named by an `fs:` URL (see [`FsConfig`] for the
    /// forms), e.g. `fs:///var/cache/app?fsync=true`.
    ///
    /// # Errors
    ///
    /// [`Configuration`](respcache_core::ErrorKind::Configuration) for a bad
    /// URL, then as [`connect`](FsBackend::connect).
    pub async fn connect_url(url: &str) -> Result<Self> {
        FsBackend::connect(FsConfig::from_url(url)?).await
    }

    /// A cache in a new temporary folder, removed when the backend and every
    /// store it opened have been dropped. For tests and throwaway caches.
    ///
    /// ```
    /// # async fn demo() -> respcache_core::Result<()> {
    /// use respcache_fs::FsBackend;
    ///
    /// let backend = FsBackend::temp().await?;
    /// let root = backend.root().to_path_buf();
    /// assert!(root.is_dir());
    /// drop(backend);
    /// assert!(!root.exists());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Connection`](respcache_core::ErrorKind::Connection) when no
    /// temporary folder can be created.
    pub async fn temp() -> Result<Self> {
        let (temp, root) = blocking(|| {
            let temp = tempfile::Builder::new()
                .prefix("respcache-fs-")
                .tempdir()
                .map_err(|e| map_io_error(e, At::Root, "creating a temporary root folder"))?;
            let root = prepare_root(temp.path())?;
            Ok::<_, Error>((temp, root))
        })
        .await??;
        Ok(FsBackend::from_parts(
            root.clone(),
            FsConfig::new(root),
            Some(temp),
        ))
    }

    fn from_parts(root: PathBuf, config: FsConfig, temp: Option<TempDir>) -> Self {
        FsBackend {
            shared: Arc::new(Shared {
                root,
                accounting: Accounting::new(config.budget),
                config,
                guard: BackendGuard::new(SCHEME),
                _temp: temp,
            }),
        }
    }

    /// [`open_store`](Backend::open_store), returning the concrete store
    /// (for its [`dir`](FsStore::dir) and [`entry_path`](FsStore::entry_path)).
    /// The concrete store is not behind the backend's
    /// [`BackendGuard`]: its calls do not fail once the backend is closed,
    /// and its errors name the backend but not the repository and
    /// operation. `open_store` returns it behind the guard.
    ///
    /// # Errors
    ///
    /// [`Closed`](respcache_core::ErrorKind::Closed) after `close`; an I/O
    /// error creating the store's folder (see [`FsBackend`]).
    pub async fn open_fs_store(&self, spec: &StoreSpec) -> Result<Arc<FsStore>> {
        let guard = &self.shared.guard;
        guard.check_store(&spec.repository, Operation::OpenStore)?;
        let dir = store_dir(&self.shared.root, &spec.cache, &spec.repository);
        let create = dir.clone();
        blocking(move || {
            file::ensure_dir(&create).map_err(|e| {
                map_io_error(e, At::Store, format_args!("creating {}", create.display()))
            })
        })
        .await
        .and_then(|created| created)
        .map_err(guard.context(Operation::OpenStore, Some(&spec.repository)))?;
        Ok(Arc::new(FsStore::new(
            Arc::clone(&self.shared),
            dir,
            spec.repository.clone(),
        )))
    }

    /// The root folder (absolute).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The configuration the backend was opened with.
    pub fn config(&self) -> &FsConfig {
        &self.shared.config
    }
}

/// Creates the root if missing, makes it absolute, and checks that a file
/// can be created in it.
fn prepare_root(root: &Path) -> Result<PathBuf> {
    let shown = root.display();
    file::ensure_dir(root).map_err(|e| {
        map_io_error(
            e,
            At::Root,
            format_args!("creating the root folder {shown}"),
        )
    })?;
    let root = fs::canonicalize(root).map_err(|e| {
        map_io_error(
            e,
            At::Root,
            format_args!("resolving the root folder {shown}"),
        )
    })?;
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(&root)
        .map_err(|e| {
            map_io_error(
                e,
                At::Root,
                format_args!(
                    "checking that the root folder {} is writable",
                    root.display()
                ),
            )
        })?;
    Ok(root)
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(map_join_error)
}

#[async_trait]
impl Backend for FsBackend {
    fn name(&self) -> &'static str {
        SCHEME
    }

    async fn open_store(&self, spec: &StoreSpec) -> Result<Arc<DynStore>> {
        let store = self.open_fs_store(spec).await?;
        Ok(self.shared.guard.wrap(spec, store))
    }

    async fn drop_store(&self, cache: &Name, repository: &Name) -> Result<()> {
        let guard = &self.shared.guard;
        guard.check_store(repository, Operation::DropStore)?;
        let cache_dir = cache_dir(&self.shared.root, cache);
        let dir = store_dir(&self.shared.root, cache, repository);
        blocking(move || {
            remove_tree(&dir).map_err(|e| {
                map_io_error(e, At::Store, format_args!("removing {}", dir.display()))
            })?;
            // Leave no empty cache folder behind; fails (fine) while other
            // repositories of the cache remain.
            let _ = fs::remove_dir(&cache_dir);
            Ok(())
        })
        .await
        .and_then(|removed| removed)
        .map_err(guard.context(Operation::DropStore, Some(repository)))
    }

    async fn list_stores(&self, cache: &Name) -> Result<Vec<Name>> {
        let guard = &self.shared.guard;
        guard.check(Operation::ListStores)?;
        let dir = cache_dir(&self.shared.root, cache);
        blocking(move || {
            list_folders(&dir)
                .map_err(|e| map_io_error(e, At::Store, format_args!("listing {}", dir.display())))
        })
        .await
        .and_then(|listed| listed)
        .map_err(guard.context(Operation::ListStores, None))
    }

    async fn close(&self) -> Result<()> {
        if self.shared.guard.close() {
            // Recorded hits become modification times; best effort.
            let _ = self.shared.flush_touched().await;
        }
        Ok(())
    }

    fn eviction(&self) -> Option<&dyn Eviction> {
        Some(self)
    }
}

/// The budget of the whole root folder: every cache under it.
#[async_trait]
impl Eviction for FsBackend {
    fn budget(&self) -> Budget {
        self.shared.accounting.budget
    }

    async fn usage(&self) -> Result<Usage> {
        self.shared.guard.check(Operation::Count)?;
        self.shared.count_usage().await
    }

    async fn trim_to(&self, target: Budget, progress: ProgressFn<'_>) -> Result<TrimProgress> {
        self.shared.guard.check(Operation::Clear)?;
        self.shared.trim_to(target, progress).await
    }
}

/// Removes `dir` and everything in it; fine if it does not exist. A writer
/// racing with the removal can add a file after a folder was emptied, so a
/// "not empty" (or "vanished") failure is retried a few times.
fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => return Ok(()),
            // A file or folder appeared, or vanished, while the tree was removed.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
                ) && attempts < 5 =>
            {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The folders in `dir` whose names are valid [`Name`]s, sorted; empty if
/// `dir` does not exist.
fn list_folders(dir: &Path) -> io::Result<Vec<Name>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(name) = entry.file_name().to_str().and_then(|n| Name::new(n).ok()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
