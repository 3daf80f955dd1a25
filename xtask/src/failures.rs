//! Keeping libtest's `failures:` sections so the end of a long run can say again what failed.
//!
//! CI shows only the tail of the output; the failing test's panic message is printed
//! thousands of lines earlier. [`Failures`] keeps those sections (bounded) and
//! [`Failures::recap`] prints them next to the closing line.

/// Lines kept per failing test binary, at most.
const LINES_PER_RUN: usize = 40;
/// Failing test binaries whose sections are kept, at most.
const RUNS_KEPT: usize = 10;

/// The `failures:` sections seen so far.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// One entry per failing run: the lines of its `failures:` section.
    runs: Vec<Vec<String>>,
    /// Whether the current run's `failures:` section is being read.
    inside: bool,
    /// Failing runs seen past [`RUNS_KEPT`].
    left_out: usize,
}

impl Failures {
    /// Reads one line of `cargo test` output.
    pub(crate) fn add_line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\n', '\r']);
        // A run's summary ends its section; so does the next binary's
        // start, when a crashed binary printed no summary.
        if line.trim_start().starts_with("test result:") || is_run_start(line) {
            self.inside = false;
            return;
        }
        if !self.inside {
            if line == "failures:" {
                self.inside = true;
                if self.runs.len() < RUNS_KEPT {
                    self.runs.push(Vec::new());
                } else {
                    self.left_out += 1;
                }
            }
            return;
        }
        if self.left_out > 0 {
            return;
        }
        let Some(run) = self.runs.last_mut() else {
            return;
        };
        // libtest prints `failures:` a second time before the list of names.
        if line == "failures:" || (line.is_empty() && run.last().is_some_and(String::is_empty)) {
            return;
        }
        if run.len() < LINES_PER_RUN {
            run.push(line.to_owned());
        } else if run.len() == LINES_PER_RUN {
            run.push("    … (cut; the whole section is above in the output)".to_owned());
        }
    }

    /// The kept sections, ready to print; empty when nothing failed.
    pub(crate) fn recap(&self) -> String {
        if self.runs.is_empty() {
            return String::new();
        }
        let mut out = String::from("xtask: what failed (repeated from above):\n");
        for run in &self.runs {
            for line in run {
                out.push_str(line);
                out.push('\n');
            }
        }
        if self.left_out > 0 {
            out.push_str(&format!(
                "xtask: … and {} more failing test binaries (see above)\n",
                self.left_out
            ));
        }
        out
    }
}

/// libtest's first line for a binary: `running 12 tests` (or `1 test`).
fn is_run_start(line: &str) -> bool {
    line.strip_prefix("running ")
        .and_then(|rest| rest.split_once(' '))
        .is_some_and(|(n, what)| n.parse::<u64>().is_ok() && (what == "tests" || what == "test"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(output: &str) -> Failures {
        let mut f = Failures::default();
        for line in output.lines() {
            f.add_line(line);
        }
        f
    }

    #[test]
    fn a_failing_run_is_repeated_with_its_panic_message() {
        let f = read(
            "running 3 tests\n\
             test a ... ok\n\
             test b ... FAILED\n\
             \n\
             failures:\n\
             \n\
             ---- b stdout ----\n\
             thread 'b' panicked at src/lib.rs:9:5:\n\
             assertion `left == right` failed\n\
             \n\
             failures:\n\
             \x20   b\n\
             \n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
             running 2 tests\n\
             test c ... ok\n\
             test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        let recap = f.recap();
        assert!(recap.contains("---- b stdout ----"), "{recap}");
        assert!(
            recap.contains("assertion `left == right` failed"),
            "{recap}"
        );
        assert!(recap.contains("    b"), "{recap}");
        assert!(!recap.contains("test c"), "{recap}");
    }

    #[test]
    fn a_crashed_binary_ends_its_section_at_the_next_run() {
        let f = read(
            "failures:\n\
             ---- a stdout ----\n\
             thread 'a' panicked\n\
             running 2 tests\n\
             test c ... ok\n\
             test d ... ok\n\
             test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        let recap = f.recap();
        assert!(recap.contains("thread 'a' panicked"), "{recap}");
        assert!(!recap.contains("test c"), "{recap}");
    }

    #[test]
    fn a_passing_output_has_no_recap() {
        let f = read(
            "running 1 test\ntest a ... ok\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        );
        assert_eq!(f.recap(), "");
    }

    #[test]
    fn long_sections_and_many_runs_are_bounded() {
        let mut output = String::new();
        for run in 0..RUNS_KEPT + 3 {
            output.push_str("failures:\n");
            for i in 0..LINES_PER_RUN * 2 {
                output.push_str(&format!("run {run} line {i}\n"));
            }
            output.push_str(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
            );
        }
        let recap = read(&output).recap();
        assert_eq!(
            recap.lines().filter(|l| l.starts_with("run 0 ")).count(),
            LINES_PER_RUN
        );
        assert!(!recap.contains(&format!("run {RUNS_KEPT} ")), "{recap}");
        assert!(
            recap.contains("and 3 more failing test binaries"),
            "{recap}"
        );
    }
}
