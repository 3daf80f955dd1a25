//! Every case is listed for every backend: a factory that did not declare
//! `.persistent()` shows the cases that reopen the backend as *ignored*
//! with the reason (failed under `CI=true`), and one that declared
//! `.not_persistent()` shows them ignored even under CI — never absent.

// Test helpers assert: a failed call is a failed test.
#![allow(clippy::unwrap_used)]

use libtest_mimic::{Arguments, Conclusion};
use respcache_conformance::services::under_ci;
use respcache_conformance::{Factory, Persistence, trials};
use respcache_core::MemoryBackend;

/// The cases that reopen the backend (`needs_persistence`).
const REOPENING: [&str; 3] = [
    "reopened_backend_sees_its_data",
    "kv_values_survive_a_new_backend_handle",
    "reopened_backend_purges_by_tag",
];

fn memory() -> Factory {
    Factory::new("memory", || async { Ok(MemoryBackend::new()) })
}

fn names(factory: Factory) -> Vec<String> {
    trials(factory)
        .unwrap()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

/// Runs the one trial named `conformance::memory::<case>` of `factory`,
/// its report written to a log file: the inner harness writes to the
/// process's stdout directly, past the test's capture, and a "FAILED" line
/// this test expects would read as a failure to whoever reads the output
/// (the `xtask test` summary does).
fn run_one(factory: Factory, case: &str) -> Conclusion {
    let dir = tempfile::tempdir().unwrap();
    let args = Arguments {
        filter: Some(format!("conformance::memory::{case}")),
        exact: true,
        test_threads: Some(1),
        logfile: Some(dir.path().join("trials.log").display().to_string()),
        ..Arguments::default()
    };
    libtest_mimic::run(&args, trials(factory).unwrap())
}

#[test]
fn every_case_is_listed_whatever_the_factory_declares() {
    let undeclared = names(memory());
    let not_persistent = names(memory().not_persistent());
    let persistent = names(memory().persistent());
    assert_eq!(undeclared, persistent);
    assert_eq!(not_persistent, persistent);
    for case in REOPENING {
        let name = format!("conformance::memory::{case}");
        assert!(undeclared.contains(&name), "{name} is not listed");
    }
}

#[test]
fn a_factory_without_persistent_reports_the_reopening_cases_ignored_with_the_reason() {
    let factory = memory();
    assert_eq!(factory.persistence(), Persistence::Undeclared);
    let reason = factory.persistence().why_not_run().unwrap();
    assert!(
        reason.contains("factory has no .persistent(): reopening cases not run"),
        "{reason}"
    );
    for case in REOPENING {
        let c = run_one(memory(), case);
        assert_eq!(
            c.num_filtered_out + 1,
            trials(memory()).unwrap().len() as u64
        );
        if under_ci() {
            // Under CI a forgotten declaration is a failure.
            assert_eq!(
                (c.num_failed, c.num_ignored, c.num_passed),
                (1, 0, 0),
                "{case}"
            );
        } else {
            assert_eq!(
                (c.num_failed, c.num_ignored, c.num_passed),
                (0, 1, 0),
                "{case}"
            );
        }
    }
}

#[test]
fn a_factory_not_persistent_by_nature_reports_them_ignored_even_under_ci() {
    let factory = memory().not_persistent();
    assert_eq!(factory.persistence(), Persistence::NotByNature);
    for case in REOPENING {
        let c = run_one(memory().not_persistent(), case);
        assert_eq!(
            (c.num_failed, c.num_ignored, c.num_passed),
            (0, 1, 0),
            "{case}"
        );
    }
}

#[test]
fn a_case_that_needs_nothing_runs_and_passes() {
    let c = run_one(memory().not_persistent(), "empty_payload_round_trips");
    assert_eq!((c.num_failed, c.num_ignored, c.num_passed), (0, 0, 1));
}

#[test]
fn budget_cases_are_listed_ignored_without_a_budget() {
    let listed = names(memory().not_persistent());
    let budget: Vec<_> = listed
        .iter()
        .filter(|n| n.contains("least_recently_used"))
        .collect();
    assert!(!budget.is_empty(), "no budget case listed: {listed:?}");
    let case = budget[0]
        .trim_start_matches("conformance::memory::")
        .to_owned();
    let c = run_one(memory().not_persistent(), &case);
    assert_eq!(
        (c.num_failed, c.num_ignored, c.num_passed),
        (0, 1, 0),
        "{case}"
    );
}
