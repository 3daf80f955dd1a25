//! The list of cases.

use futures::future::BoxFuture;

use crate::check::CaseResult;
use crate::factory::TestContext;

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

/// Every case, in a stable order.
pub fn all_cases() -> Vec<Case> {
    Vec::new()
}
