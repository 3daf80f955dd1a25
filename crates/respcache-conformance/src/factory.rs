//! [`Factory`]: how the suite connects to the backend under test.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use respcache_core::budget::Budget;
use respcache_core::{Backend, Name, Result};

use crate::check::CaseResult;

type ConnectFn = dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Backend>>> + Send + Sync;
type BudgetFn = dyn Fn(Budget) -> BoxFuture<'static, Result<Arc<dyn Backend>>> + Send + Sync;

/// Builds handles onto the backend under test.
///
/// `connect` is called once up front to check the service is reachable, and
/// again for every case. A backend is *persistent* when a new handle from
/// `connect` sees the data an earlier, closed handle wrote (SQLite on a
/// file, the filesystem, Redis...). Every factory says which it is:
/// [`persistent`](Self::persistent) runs the cases that reopen the backend;
/// [`not_persistent`](Self::not_persistent) (memory, say) reports them
/// *ignored* because the backend cannot persist. A factory that says
/// neither reports them ignored as *not run* — and under `CI=true` they
/// fail, so a forgotten `.persistent()` never silently shrinks the suite.
#[derive(Clone)]
pub struct Factory {
    name: String,
    connect: Arc<ConnectFn>,
    persistence: Persistence,
    budgeted: Option<Arc<BudgetFn>>,
    leases: bool,
}

impl Factory {
    /// A factory for the backend named `name` (the name used in test names).
    pub fn new<F, Fut, B>(name: impl Into<String>, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B>> + Send + 'static,
        B: Backend + 'static,
    {
        let connect = Arc::new(connect);
        Factory {
            name: name.into(),
            connect: Arc::new(move || {
                let fut = connect();
                Box::pin(async move { fut.await.map(|b| Arc::new(b) as Arc<dyn Backend>) })
            }),
            persistence: Persistence::Undeclared,
            budgeted: None,
            leases: false,
        }
    }

    /// Declares that the backend enforces a [`Budget`]: `connect` opens a
    /// **new, empty** handle (its own file, folder or memory) with the
    /// budget, so one case's trims never reach another's entries. The
    /// budget cases (`cases/budget.rs`) run only for such factories.
    pub fn with_budget<F, Fut, B>(mut self, connect: F) -> Self
    where
        F: Fn(Budget) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B>> + Send + 'static,
        B: Backend + 'static,
    {
        let connect = Arc::new(connect);
        self.budgeted = Some(Arc::new(move |budget| {
            let fut = connect(budget);
            Box::pin(async move { fut.await.map(|b| Arc::new(b) as Arc<dyn Backend>) })
        }));
        self
    }

    /// Whether the budget cases run.
    pub fn supports_budget(&self) -> bool {
        self.budgeted.is_some()
    }

    /// A new, empty handle with `budget`; `None` without
    /// [`with_budget`](Self::with_budget).
    pub async fn connect_with_budget(&self, budget: Budget) -> Option<Result<Arc<dyn Backend>>> {
        match &self.budgeted {
            Some(connect) => Some(connect(budget).await),
            None => None,
        }
    }

    /// Declares that handles from `connect` share their data: the cases
    /// that reopen the backend run.
    pub fn persistent(mut self) -> Self {
        self.persistence = Persistence::Persistent;
        self
    }

    /// Declares that the backend cannot persist by nature (each handle
    /// from `connect` is a new, empty backend, like memory): the cases
    /// that reopen it are reported *ignored* with that reason, also under
    /// `CI=true`.
    pub fn not_persistent(mut self) -> Self {
        self.persistence = Persistence::NotByNature;
        self
    }

    /// Declares that the backend's stores offer leases: the lease cases
    /// then fail on an [`Unsupported`](respcache_core::ErrorKind::Unsupported)
    /// answer instead of accepting it. Without it they check that a
    /// backend answers either the lease contract or `Unsupported`
    /// consistently (the [`Store`](respcache_core::Store) defaults).
    pub fn with_leases(mut self) -> Self {
        self.leases = true;
        self
    }

    /// Whether the backend declared leases.
    pub fn has_leases(&self) -> bool {
        self.leases
    }

    /// The backend's name in test names.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether handles share their data (declared with
    /// [`persistent`](Self::persistent)).
    pub fn is_persistent(&self) -> bool {
        self.persistence == Persistence::Persistent
    }

    /// What the factory declared about persistence.
    pub fn persistence(&self) -> Persistence {
        self.persistence
    }

    /// A new handle onto the backend.
    pub async fn connect(&self) -> Result<Arc<dyn Backend>> {
        (self.connect)().await
    }
}

impl fmt::Debug for Factory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factory")
            .field("name", &self.name)
            .field("persistence", &self.persistence)
            .field("leases", &self.leases)
            .finish()
    }
}

/// What a [`Factory`] declared about persistence, which decides how the
/// cases that reopen the backend are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// [`Factory::persistent`]: they run.
    Persistent,
    /// [`Factory::not_persistent`]: ignored, the backend cannot persist.
    NotByNature,
    /// Neither was called: ignored as not run, and failed under `CI=true`.
    Undeclared,
}

impl Persistence {
    /// Why the cases that reopen the backend do not run, if they do not.
    pub fn why_not_run(self) -> Option<&'static str> {
        match self {
            Persistence::Persistent => None,
            Persistence::NotByNature => {
                Some("the factory declared .not_persistent(): reopening cases cannot run")
            }
            Persistence::Undeclared => Some(
                "factory has no .persistent(): reopening cases not run \
                 (declare .persistent() or .not_persistent())",
            ),
        }
    }
}

/// What a case gets: a connected backend, a cache name no other case uses,
/// and the factory (to reconnect).
pub struct TestContext {
    /// The backend under test.
    pub backend: Arc<dyn Backend>,
    /// A cache name unique to this case and run.
    pub cache: Name,
    /// The factory, to open more handles.
    pub factory: Factory,
    /// Set by [`ignore`](Self::ignore): the case did not apply.
    pub(crate) ignored: Arc<Mutex<Option<String>>>,
}

impl TestContext {
    /// Ends the case as *ignored* with `reason` (shown in the test output):
    /// for a case that does not apply to this backend, found out while
    /// running (an optional feature the backend answers `Unsupported` to,
    /// say). Return its value from the case.
    pub fn ignore(&self, reason: impl Into<String>) -> CaseResult {
        if let Ok(mut slot) = self.ignored.lock() {
            *slot = Some(reason.into());
        }
        Ok(())
    }
}

impl fmt::Debug for TestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestContext")
            .field("backend", &self.backend.name())
            .field("cache", &self.cache)
            .finish()
    }
}
