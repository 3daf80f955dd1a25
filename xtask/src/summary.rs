//! Adding up libtest's `test result:` lines (one per test binary and doctest run).

/// Counts summed over every `test result:` line seen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Number of `test result:` lines (test binaries and doctest runs).
    pub(crate) runs: u64,
    /// Runs whose status was not `ok`.
    pub(crate) failed_runs: u64,
    /// Tests that passed.
    pub(crate) passed: u64,
    /// Tests that failed.
    pub(crate) failed: u64,
    /// Tests that were ignored (including backends whose service was unreachable).
    pub(crate) ignored: u64,
    /// Tests left out by a filter.
    pub(crate) filtered_out: u64,
}

impl Totals {
    /// Adds `line` if it is a libtest summary line; returns whether it was one.
    pub(crate) fn add_line(&mut self, line: &str) -> bool {
        let Some(r) = parse_result_line(line) else {
            return false;
        };
        self.runs += 1;
        self.failed_runs += u64::from(!r.ok);
        self.passed += r.passed;
        self.failed += r.failed;
        self.ignored += r.ignored;
        self.filtered_out += r.filtered_out;
        true
    }

    /// Adds every summary line in `output`.
    #[cfg(test)]
    pub(crate) fn from_output(output: &str) -> Self {
        let mut totals = Self::default();
        for line in output.lines() {
            totals.add_line(line);
        }
        totals
    }

    /// The closing line CI reads: `N passed, N failed`.
    pub(crate) fn closing_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// One `test result:` line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunResult {
    ok: bool,
    passed: u64,
    failed: u64,
    ignored: u64,
    filtered_out: u64,
}

/// Parses `test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; …`
/// (libtest, libtest-mimic and doctests print the same form). Colour codes are ignored.
pub(crate) fn parse_result_line(line: &str) -> Option<RunResult> {
    let line = strip_ansi(line);
    let rest = line.trim_start().strip_prefix("test result:")?.trim_start();
    let (status, counts) = rest.split_once('.')?;
    let mut result = RunResult {
        ok: status.trim() == "ok",
        ..RunResult::default()
    };
    let (mut saw_passed, mut saw_failed) = (false, false);
    for part in counts.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let [n, label, ..] = words[..] else { continue };
        let Ok(n) = n.parse::<u64>() else { continue };
        match label {
            "passed" => (result.passed, saw_passed) = (n, true),
            "failed" => (result.failed, saw_failed) = (n, true),
            "ignored" => result.ignored = n,
            "filtered" => result.filtered_out = n,
            _ => {}
        }
    }
    (saw_passed && saw_failed).then_some(result)
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSING_RUN: &str = "\
     Running unittests src/lib.rs (target/debug/deps/respcache_core-1234abcd)

running 3 tests
test key::tests::encode_is_injective ... ok
test key::tests::decode_round_trips ... ok
test entry::tests::freshness ... ignored, slow

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/conformance.rs (target/debug/deps/conformance-5678ef90)

running 40 tests
test conformance::redis::get_missing ... ignored, service unreachable
test result: ok. 0 passed; 0 failed; 40 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests respcache_core

running 5 tests
test crates/respcache-core/src/key.rs - key::Key (line 10) ... ok
test crates/respcache-core/src/lib.rs - (line 3) - compile ... ok
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; all doctests ran in 0.52s; merged doctests compilation took 0.40s
";

    const FAILING_RUN: &str = "\
running 3 tests
test a ... ok
test b ... FAILED
test c ... ok

failures:

---- b stdout ----
thread 'b' panicked at src/lib.rs:9:5:
assertion `left == right` failed

failures:
    b

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.02s

error: test failed, to rerun pass `-p respcache-core --lib`
";

    #[test]
    fn sums_unit_test_libtest_mimic_and_doctest_results() {
        let t = Totals::from_output(PASSING_RUN);
        assert_eq!(
            t,
            Totals {
                runs: 3,
                failed_runs: 0,
                passed: 7,
                failed: 0,
                ignored: 41,
                filtered_out: 0
            }
        );
        assert_eq!(t.closing_line(), "7 passed, 0 failed");
    }

    #[test]
    fn a_failed_run_counts_its_failures() {
        let t = Totals::from_output(FAILING_RUN);
        assert_eq!(
            t,
            Totals {
                runs: 1,
                failed_runs: 1,
                passed: 2,
                failed: 1,
                ignored: 0,
                filtered_out: 4
            }
        );
        assert_eq!(t.closing_line(), "2 passed, 1 failed");
    }

    #[test]
    fn runs_add_up_across_outputs() {
        let t = Totals::from_output(&format!("{PASSING_RUN}{FAILING_RUN}"));
        assert_eq!(
            (t.runs, t.failed_runs, t.passed, t.failed, t.ignored),
            (4, 1, 9, 1, 41)
        );
    }

    #[test]
    fn doctest_line_with_extra_timing_fields_parses() {
        let line = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; \
                    all doctests ran in 1.10s; merged doctests compilation took 0.90s";
        let r = parse_result_line(line).unwrap();
        assert_eq!((r.ok, r.passed, r.failed, r.ignored), (true, 12, 0, 3));
    }

    #[test]
    fn coloured_line_parses() {
        let line = "test result: \u{1b}[31mFAILED\u{1b}[0m. 0 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s";
        let r = parse_result_line(line).unwrap();
        assert_eq!((r.ok, r.passed, r.failed), (false, 0, 3));
    }

    #[test]
    fn other_lines_are_not_results() {
        for line in [
            "",
            "running 3 tests",
            "test result ... ok",
            "test tests::test_result_parser ... ok",
            "error: test failed, to rerun pass `--lib`",
            "test result: ok.",
            "   Doc-tests respcache",
        ] {
            assert_eq!(parse_result_line(line), None, "{line:?}");
        }
        assert_eq!(Totals::from_output("no tests here\n"), Totals::default());
    }

    #[test]
    fn empty_test_binary_counts_as_a_run() {
        let t = Totals::from_output(
            "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert_eq!((t.runs, t.passed, t.failed), (1, 0, 0));
    }
}
