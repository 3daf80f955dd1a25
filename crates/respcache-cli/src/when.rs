//! Timestamps as people and scripts read them: RFC 3339 in UTC, and
//! "in 5m" / "3h ago" relative to now.

use std::time::Duration;

use respcache::Timestamp;

/// The first millisecond humantime cannot print (year 10000).
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// `2026-11-24T07:30:00Z`; a time outside years 1970–9999 as `@<ms>ms`.
pub(crate) fn seconds(t: Timestamp) -> String {
    if printable(t) {
        humantime::format_rfc3339_seconds(t.to_system_time()).to_string()
    } else {
        format!("@{}ms", t.as_millis())
    }
}

/// `2026-11-24T07:30:00.123Z`; a time outside years 1970–9999 as `@<ms>ms`.
pub(crate) fn millis(t: Timestamp) -> String {
    if printable(t) {
        humantime::format_rfc3339_millis(t.to_system_time()).to_string()
    } else {
        format!("@{}ms", t.as_millis())
    }
}

fn printable(t: Timestamp) -> bool {
    (0..YEAR_10000_MS).contains(&t.as_millis())
}

/// `in 59m 59s` or `3h 2m ago`, to the second.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    if t > now {
        format!("in {}", secs(t.duration_since(now)))
    } else {
        format!("{} ago", secs(now.duration_since(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(seconds(t), "2023-11-14T22:13:20Z");
        assert_eq!(millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(seconds(Timestamp::from_millis(-1)), "@-1ms");
        assert_eq!(
            millis(Timestamp::from_millis(i64::MAX)),
            format!("@{}ms", i64::MAX)
        );
        let later = Timestamp::from_millis(1_700_000_000_123 + 3_600_500);
        assert_eq!(relative(later, t), "in 1h");
        assert_eq!(relative(t, later), "1h ago");
    }
}
