//! Runs every case as a libtest-mimic trial on one shared runtime.
//!
//! Every case is listed for every backend, so the output always shows the
//! whole suite: a case the backend cannot run is reported *ignored* with
//! the reason, never left out —
//!
//! - the service is unreachable (a failure under `CI=true`);
//! - the case reopens the backend and the factory declared
//!   [`not_persistent`](Factory::not_persistent) (also ignored under CI:
//!   such a backend cannot persist), or declared nothing (a failure under
//!   CI: a forgotten [`persistent`](Factory::persistent));
//! - a budget case and the factory has no
//!   [`with_budget`](Factory::with_budget) (budgets are optional);
//! - the case found out while running that it does not apply
//!   ([`TestContext::ignore`]: leases on a backend without them).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use respcache_core::Name;

use crate::cases::{Case, all_cases};
use crate::factory::{Factory, Persistence, TestContext};
use crate::services::{Gate, under_ci};

/// Why budget cases do not run on a factory without a budget.
const NO_BUDGET: &str = "factory has no .with_budget(): budget cases not run";

fn unique_cache(case: &str) -> String {
    let suffix: u32 = rand::random();
    // Names are at most 64 bytes: keep the case name's head.
    let head: String = case.chars().take(40).collect::<String>().replace('_', "-");
    format!("t-{head}-{suffix:08x}")
}

/// Runs the suite against `factory`'s backend with the command line's
/// libtest arguments (filters, `--list`, `--test-threads`...).
pub fn run(factory: Factory) -> ExitCode {
    run_each([factory])
}

/// Runs the suite against each factory's backend in one run (their cases
/// named by each factory's name): one backend in several configurations.
pub fn run_each(factories: impl IntoIterator<Item = Factory>) -> ExitCode {
    let args = Arguments::from_args();
    let mut all = Vec::new();
    for factory in factories {
        match trials(factory) {
            Ok(trials) => all.extend(trials),
            Err(e) => {
                eprintln!("conformance: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    libtest_mimic::run(&args, all).exit_code()
}

/// The suite's trials against `factory`'s backend: one per case, every
/// case listed, those the backend cannot run ignored with the reason (see
/// the module's documentation). Probes the backend once.
///
/// # Errors
///
/// When no tokio runtime can be started.
pub fn trials(factory: Factory) -> Result<Vec<Trial>, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let backend_name = factory.name().to_owned();

    // One probe up front: is the service reachable at all?
    let probe = runtime.block_on(async {
        let backend = factory.connect().await?;
        backend.close().await
    });
    let gate = Gate::probe(format!("conformance::{backend_name}: the backend"), probe);

    let budget_cases = crate::cases::budget::cases();
    let trials = all_cases()
        .into_iter()
        .map(|case| (case, None))
        .chain(budget_cases.into_iter().map(|case| {
            let skip = (!factory.supports_budget()).then_some(NO_BUDGET);
            (case, skip)
        }))
        .map(|(case, skip)| {
            let name = format!("conformance::{backend_name}::{}", case.name);
            let runtime = Arc::clone(&runtime);
            let factory = factory.clone();
            gate.ignorable_trial(name, move || {
                if let Some(reason) = skip {
                    return Ok(Completion::ignored_with(reason));
                }
                if case.needs_persistence {
                    let persistence = factory.persistence();
                    if let Some(reason) = persistence.why_not_run() {
                        if persistence == Persistence::Undeclared && under_ci() {
                            return Err(Failed::from(format!("{reason} (CI=true)")));
                        }
                        return Ok(Completion::ignored_with(reason));
                    }
                }
                runtime.block_on(run_case(case, factory))
            })
        })
        .collect();
    Ok(trials)
}

/// Runs `case` on a new handle in a cache of its own, then drops the
/// cache's stores, whatever the outcome.
async fn run_case(case: Case, factory: Factory) -> Result<Completion, Failed> {
    let backend = factory
        .connect()
        .await
        .map_err(|e| Failed::from(format!("connect failed: {e}")))?;
    let cache = Name::new(unique_cache(case.name)).map_err(|e| Failed::from(e.to_string()))?;
    let ignored = Arc::new(Mutex::new(None));
    let ctx = TestContext {
        backend: Arc::clone(&backend),
        cache: cache.clone(),
        factory,
        ignored: Arc::clone(&ignored),
    };
    let outcome = (case.run)(ctx).await;
    // Leave nothing behind, whatever the outcome.
    if let Ok(stores) = backend.list_stores(&cache).await {
        for store in stores {
            let _ = backend.drop_store(&cache, &store).await;
        }
    }
    let _ = backend.close().await;
    outcome.map_err(|f| Failed::from(f.0))?;
    let reason = ignored.lock().ok().and_then(|mut slot| slot.take());
    Ok(reason.map_or(Completion::Completed, Completion::ignored_with))
}
