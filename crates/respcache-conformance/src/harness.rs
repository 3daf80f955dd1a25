//! Runs every case as a libtest-mimic trial on one shared runtime.

use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use respcache_core::Name;

use crate::cases::all_cases;
use crate::factory::{Factory, TestContext};

/// Whether the run is under CI (`CI=true`): an unreachable service fails.
pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn unique_cache(case: &str) -> String {
    let suffix: u32 = rand::random();
    // Names are at most 64 bytes: keep the case name's head.
    let head: String = case.chars().take(40).collect::<String>().replace('_', "-");
    format!("t-{head}-{suffix:08x}")
}

/// Runs the suite against `factory`'s backend with the command line's
/// libtest arguments (filters, `--list`, `--test-threads`...).
pub fn run(factory: Factory) -> ExitCode {
    let args = Arguments::from_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            eprintln!("conformance: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let backend_name = factory.name().to_owned();

    // One probe up front: is the service reachable at all?
    let unavailable = match runtime.block_on(factory.connect()) {
        Ok(backend) => {
            let _ = runtime.block_on(backend.close());
            None
        }
        Err(e) => Some(e.to_string()),
    };
    let ci = under_ci();
    if let Some(reason) = &unavailable {
        if ci {
            eprintln!(
                "conformance::{backend_name}: backend unreachable under CI=true, every case fails: {reason}"
            );
        } else {
            eprintln!(
                "conformance::{backend_name}: backend unreachable, every case is ignored: {reason}"
            );
        }
    }

    let budget_cases = if factory.supports_budget() {
        crate::cases::budget::cases()
    } else {
        Vec::new()
    };
    let trials = all_cases()
        .into_iter()
        .chain(budget_cases)
        .filter(|case| !case.needs_persistence || factory.is_persistent())
        .map(|case| {
            let name = format!("conformance::{backend_name}::{}", case.name);
            let runtime = Arc::clone(&runtime);
            let factory = factory.clone();
            let unavailable = unavailable.clone();
            let ignored = unavailable.is_some() && !ci;
            Trial::test(name, move || {
                if let Some(reason) = unavailable {
                    return Err(Failed::from(format!("backend unreachable: {reason}")));
                }
                runtime.block_on(async move {
                    let backend = factory
                        .connect()
                        .await
                        .map_err(|e| Failed::from(format!("connect failed: {e}")))?;
                    let cache = Name::new(unique_cache(case.name))
                        .map_err(|e| Failed::from(e.to_string()))?;
                    let ctx = TestContext {
                        backend: Arc::clone(&backend),
                        cache: cache.clone(),
                        factory,
                    };
                    let outcome = (case.run)(ctx).await;
                    // Leave nothing behind, whatever the outcome.
                    if let Ok(stores) = backend.list_stores(&cache).await {
                        for store in stores {
                            let _ = backend.drop_store(&cache, &store).await;
                        }
                    }
                    let _ = backend.close().await;
                    outcome.map_err(|f| Failed::from(f.0))
                })
            })
            .with_ignored_flag(ignored)
        })
        .collect();

    libtest_mimic::run(&args, trials).exit_code()
}
