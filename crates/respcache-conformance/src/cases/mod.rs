//! The cases, grouped by the face of respcache they exercise.

use futures::future::BoxFuture;

use crate::check::CaseResult;
use crate::factory::TestContext;

pub(crate) mod budget;
mod kv;
mod lease;
mod repository;
mod store;
mod tags;

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Its name, the last part of the test name.
    pub name: &'static str,
    /// Runs only on persistent backends.
    pub needs_persistence: bool,
    /// The case itself.
    pub run: fn(TestContext) -> BoxFuture<'static, CaseResult>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// Declares a list of cases from `async fn name(ctx: TestContext) -> CaseResult` items.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$($crate::cases::Case {
            name: stringify!($name),
            needs_persistence: false,
            run: |ctx| Box::pin($name(ctx)),
        }),*]
    };
}
pub(crate) use cases;

/// Every case, in a stable order.
pub fn all_cases() -> Vec<Case> {
    let mut all = store::cases();
    all.extend(repository::cases());
    all.extend(kv::cases());
    all.extend(lease::cases());
    all.extend(tags::cases());
    all
}
