//! Age (RFC 9111 §4.2.3, §5.1): how old a response was when it arrived,
//! and how old it is now.

use std::time::Duration;

use http::HeaderMap;
use http::header::{AGE, DATE};
use respcache_core::Timestamp;

use super::date;

/// The largest age a cache sends (RFC 9111 §1.2.2: 2^31 seconds stands for
/// "practically forever"); larger values and overflows are capped to it.
pub(crate) const MAX_AGE_SECS: u64 = 2_147_483_648;

/// The `Age` header's value (§5.1): the first value of the first field line,
/// a non-negative integer; anything else (negative, a fraction, text) is
/// ignored. A value too large to represent counts as [`MAX_AGE_SECS`].
pub(crate) fn header(headers: &HeaderMap) -> Option<u64> {
    let line = headers.get(AGE)?.to_str().ok()?;
    let first = line.split(',').next()?.trim();
    delta_seconds(first)
}

/// Delta-seconds (§1.2.2): digits only; too large means [`MAX_AGE_SECS`].
pub(crate) fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u64>()
            .map_or(MAX_AGE_SECS, |v| v.min(MAX_AGE_SECS)),
    )
}

/// The response's `Date`, when valid.
pub(crate) fn date_of(headers: &HeaderMap) -> Option<Timestamp> {
    let mut lines = headers.get_all(DATE).iter();
    let first = lines.next()?.to_str().ok()?;
    if lines.next().is_some() {
        return None;
    }
    date::parse(first)
}

/// The corrected initial age of a response (§4.2.3), in seconds: the larger
/// of its apparent age (`response_time` − `Date`) and its `Age` value plus
/// the time the request took (`response_time` − `request_time`).
pub(crate) fn initial(
    headers: &HeaderMap,
    request_time: Timestamp,
    response_time: Timestamp,
) -> u64 {
    let apparent = date_of(headers).map_or(0, |d| {
        let ms = response_time
            .as_millis()
            .saturating_sub(d.as_millis())
            .max(0);
        u64::try_from(ms / 1000).unwrap_or(0)
    });
    let delay = u64::try_from(
        response_time
            .as_millis()
            .saturating_sub(request_time.as_millis())
            .max(0)
            / 1000,
    )
    .unwrap_or(0);
    let corrected = header(headers).unwrap_or(0).saturating_add(delay);
    apparent.max(corrected).min(MAX_AGE_SECS)
}

/// The current age at `now` of a response whose corrected initial age is
/// `initial` seconds and that arrived at `response_time` (§4.2.3).
pub(crate) fn current(initial: u64, response_time: Timestamp, now: Timestamp) -> Duration {
    Duration::from_secs(initial).saturating_add(now.duration_since(response_time))
}

/// The `Age` value to send for `age` (whole seconds, capped).
pub(crate) fn to_header(age: Duration) -> u64 {
    age.as_secs().min(MAX_AGE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    /// §5.1: the first value counts; what is not delta-seconds is ignored.
    #[test]
    fn age_header_parsing_follows_rfc9111_5_1() {
        assert_eq!(header(&with(&[("age", "7200, 0")])), Some(7200));
        assert_eq!(header(&with(&[("age", "0, 7200")])), Some(0));
        assert_eq!(header(&with(&[("age", "7200"), ("age", "0")])), Some(7200));
        assert_eq!(header(&with(&[("age", "-7200")])), None);
        assert_eq!(header(&with(&[("age", "7200.0")])), None);
        assert_eq!(header(&with(&[("age", "old")])), None);
        assert_eq!(header(&with(&[("age", "2147483649")])), Some(MAX_AGE_SECS));
        assert_eq!(
            header(&with(&[("age", "99999999999999999999999")])),
            Some(MAX_AGE_SECS)
        );
    }

    /// §4.2.3: a `Date` in the past makes a response old on arrival even
    /// without `Age`; an `Age` larger than the apparent age wins.
    #[test]
    fn corrected_initial_age_takes_the_larger_of_apparent_and_age() {
        let now = Timestamp::from_millis(1_000_000_000);
        let an_hour_ago = date::format(Timestamp::from_millis(1_000_000_000 - 3_600_000));
        let mut h = HeaderMap::new();
        h.insert(DATE, HeaderValue::from_str(&an_hour_ago).unwrap());
        assert_eq!(initial(&h, now, now), 3600);
        h.insert(AGE, HeaderValue::from_static("7200"));
        assert_eq!(initial(&h, now, now), 7200);
        let asked = Timestamp::from_millis(1_000_000_000 - 5_000);
        h.insert(AGE, HeaderValue::from_static("3599"));
        assert_eq!(initial(&h, asked, now), 3604);
        assert_eq!(
            current(10, now, Timestamp::from_millis(1_000_005_000)).as_secs(),
            15
        );
    }
}
