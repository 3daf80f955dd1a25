//! CPU time this process used, from `/proc/self/task/*/schedstat` (Linux,
//! nanoseconds on a CPU per thread): over a wall-clock interval it tells
//! how many cores a measurement actually got on a shared machine.

use std::time::Duration;

/// On-CPU time of the process's live threads so far; `None` when the
/// kernel does not expose it.
pub fn process_cpu_time() -> Option<Duration> {
    let mut total: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total = total.saturating_add(ns);
        }
    }
    Some(Duration::from_nanos(total))
}

/// Cores used on average between two readings taken `wall` apart.
pub fn cores_used(before: Duration, after: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_loop_shows_up_as_cpu_time() {
        let before = process_cpu_time().unwrap();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = process_cpu_time().unwrap();
        assert!(
            after.saturating_sub(before) >= Duration::from_millis(10),
            "{before:?} {after:?}"
        );
        assert!(
            (cores_used(
                Duration::ZERO,
                Duration::from_secs(3),
                Duration::from_secs(2)
            ) - 1.5)
                .abs()
                < 1e-9
        );
    }
}
