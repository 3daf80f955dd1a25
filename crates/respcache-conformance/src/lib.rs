//! The respcache conformance suite: one set of cases, written once, that
//! every backend runs — the built-in ones and yours.
//!
//! A backend crate proves itself with a three-line test target and one line
//! of code. In `Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "conformance"
//! harness = false
//! ```
//!
//! and in `tests/conformance.rs`:
//!
//! ```no_run
//! // Your backend instead of the reference one:
//! respcache_conformance::main!(respcache_conformance::Factory::new("memory", || async {
//!     Ok(respcache_core::MemoryBackend::new())
//! })
//! // Each handle is a new, empty memory: the cases that reopen the
//! // backend are reported ignored. A backend that keeps its data says
//! // `.persistent()` instead, and runs them.
//! .not_persistent());
//! ```
//!
//! Each case becomes its own test named `conformance::<backend>::<case>`,
//! so a failure names both. Each case works in its own uniquely named cache,
//! so cases run in parallel and never touch data they did not create. When
//! the backend's service cannot be reached, every case is reported as
//! *ignored* with the reason — and under `CI=true` as *failed*: an
//! unreachable service never counts as a pass. Every case is listed for
//! every backend: one the backend cannot run (it reopens the backend and
//! the factory is not [`persistent`](Factory::persistent), say) is
//! reported ignored with the reason, never left out.
//!
//! The crate is also the workspace's test kit: [`services`] (service URLs
//! and the unreachable-service rule for any test), [`net`] (network
//! faults), [`processes`] (tests across OS processes) and, with the
//! feature `origin`, [`origin`](crate::origin) (a local HTTP origin).

mod cases;
mod check;
mod factory;
mod harness;
pub mod net;
#[cfg(feature = "origin")]
pub mod origin;
pub mod processes;
pub mod services;

pub use cases::{Case, all_cases};
pub use check::{CaseResult, Failure};
pub use factory::{Factory, Persistence, TestContext};
pub use harness::{run, run_each, trials};

#[doc(hidden)]
pub mod __private {
    pub use libtest_mimic;
}

/// Expands to the `main` of a `harness = false` test target that runs the
/// whole suite against the backend the [`Factory`] builds.
#[macro_export]
macro_rules! main {
    ($factory:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::run($factory)
        }
    };
}
