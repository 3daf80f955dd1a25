//! HTTP dates (RFC 9110 §5.6.7): the preferred IMF-fixdate and the two
//! obsolete forms a recipient must accept — RFC 850 and ANSI C's asctime.
//! Anything else is invalid: RFC 9111 §5.3 says an invalid `Expires` means
//! "already expired", and an invalid `Date` is ignored. Names of days and
//! months and `GMT` match without case, as RFC 9111 §4.2 asks of a cache.

use std::cell::Cell;

use respcache_core::Timestamp;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The length of an IMF-fixdate.
const FIXDATE_LEN: usize = 29;

thread_local! {
    /// The last IMF-fixdate this thread parsed, and its time: a server's
    /// `Date` changes once a second, and its answers in between repeat it.
    static LAST_FIXDATE: Cell<Option<([u8; FIXDATE_LEN], Timestamp)>> =
        const { Cell::new(None) };
}

/// Parses an HTTP-date; `None` when it is not one of the three forms.
pub(crate) fn parse(text: &str) -> Option<Timestamp> {
    let t = text.trim_matches(|c| c == ' ' || c == '\t');
    // Every form is ASCII; checking once makes the byte slicing below safe.
    if !t.is_ascii() {
        return None;
    }
    let fixdate = <[u8; FIXDATE_LEN]>::try_from(t.as_bytes()).ok();
    if let (Some(this), Some((last, at))) = (fixdate, LAST_FIXDATE.get())
        && this == last
    {
        return Some(at);
    }
    let at = imf_fixdate(t).or_else(|| rfc850(t)).or_else(|| asctime(t));
    if let (Some(this), Some(at)) = (fixdate, at) {
        LAST_FIXDATE.set(Some((this, at)));
    }
    at
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(t: &str) -> Option<Timestamp> {
    let (day, rest) = t.split_once(", ")?;
    if !named(&DAYS, day) || rest.len() != 24 {
        return None;
    }
    let b = rest.as_bytes();
    if b[2] != b' ' || b[6] != b' ' || b[11] != b' ' || !rest[20..].eq_ignore_ascii_case(" GMT") {
        return None;
    }
    let mday = digits(&rest[0..2])?;
    let month = month(&rest[3..6])?;
    let year = digits(&rest[7..11])?;
    let (h, m, s) = clock(&rest[12..20])?;
    build(year, month, mday, h, m, s)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit year more than 50 years
/// in the future means the past century, RFC 9110 §5.6.7; we read 00–69
/// as 20xx and 70–99 as 19xx, which is that rule for dates near now).
fn rfc850(t: &str) -> Option<Timestamp> {
    let (day, rest) = t.split_once(", ")?;
    if !named(&LONG_DAYS, day) || rest.len() != 22 {
        return None;
    }
    let b = rest.as_bytes();
    if b[2] != b'-' || b[6] != b'-' || b[9] != b' ' || !rest[18..].eq_ignore_ascii_case(" GMT") {
        return None;
    }
    let mday = digits(&rest[0..2])?;
    let month = month(&rest[3..6])?;
    let yy = digits(&rest[7..9])?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    let (h, m, s) = clock(&rest[10..18])?;
    build(year, month, mday, h, m, s)
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(t: &str) -> Option<Timestamp> {
    if t.len() != 24 {
        return None;
    }
    let b = t.as_bytes();
    if !named(&DAYS, &t[0..3]) || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    let month = month(&t[4..7])?;
    let mday = match (b[8], b[9]) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => digits(&t[8..10])?,
    };
    let (h, m, s) = clock(&t[11..19])?;
    let year = digits(&t[20..24])?;
    build(year, month, mday, h, m, s)
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

fn named(names: &[&str], s: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(s))
}

fn clock(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if s.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn build(year: u32, month: u32, mday: u32, h: u32, m: u32, s: u32) -> Option<Timestamp> {
    // A leap second (60) is allowed by the grammar.
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let y = i64::from(year);
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(month as usize - 1)?;
    if mday == 0 || mday > max_day {
        return None;
    }
    let days = days_from_civil(y, i64::from(month), i64::from(mday));
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
    Some(Timestamp::from_millis(secs.checked_mul(1000)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats `at` as an IMF-fixdate.
#[cfg(test)]
pub(crate) fn format(at: Timestamp) -> String {
    let secs = at.as_millis().div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = DAYS[(days + 3).rem_euclid(7) as usize];
    format!(
        "{weekday}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 §5.6.7's own example, in its three forms.
    #[test]
    fn rfc9110_example_dates_in_all_three_forms() {
        let want = Some(Timestamp::from_millis(784_111_777_000));
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(
            format(Timestamp::from_millis(784_111_777_000)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for bad in [
            "0",
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +1000",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08.49.37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT, Thu, 01 Jan 1970 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
            "Sün Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_match_without_case() {
        let want = Some(Timestamp::from_millis(784_111_777_000));
        assert_eq!(parse("sun, 06 NOV 1994 08:49:37 gmt"), want);
        assert_eq!(parse("SUNDAY, 06-nov-94 08:49:37 GMT"), want);
    }

    #[test]
    fn a_repeated_date_parses_as_the_first_time() {
        let first = "Sun, 06 Nov 1994 08:49:37 GMT";
        let next = "Sun, 06 Nov 1994 08:49:38 GMT";
        for _ in 0..2 {
            assert_eq!(parse(first), Some(Timestamp::from_millis(784_111_777_000)));
            assert_eq!(parse(next), Some(Timestamp::from_millis(784_111_778_000)));
            // 29 bytes like the one before, but no date.
            assert_eq!(parse("Sun, 06 Nov 1994 08:49:38 UTC"), None);
            assert_eq!(parse(" Sun, 06 Nov 1994 08:49:38 GMT\t"), parse(next));
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0_i64, 951_782_400_000, 1_798_761_599_000, 4_102_444_800_000] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(parse(&format(t)), Some(t), "{}", format(t));
        }
    }
}
