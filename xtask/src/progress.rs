//! One line of progress per step, with its duration: `installing redis-server (apt)… 8.1s`.

use std::io::Write;
use std::time::{Duration, Instant};

/// Runs `work` as a step called `label`, printing the label, then its duration
/// (or `failed after …`) on the same line of stderr.
pub(crate) fn step<T, E>(label: &str, work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    eprint!("{label}… ");
    let _ = std::io::stderr().flush();
    let start = Instant::now();
    let outcome = work();
    match &outcome {
        Ok(_) => eprintln!("{}", secs(start.elapsed())),
        Err(_) => eprintln!("failed after {}", secs(start.elapsed())),
    }
    outcome
}

/// A duration as `8.1s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
