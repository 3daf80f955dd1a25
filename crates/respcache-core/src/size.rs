//! Byte sizes as people write them: `500MB`, `1.5GiB`, `64k`, `100000`.
//!
//! Decimal units are powers of 1000 (`kB`/`KB`/`k`, `MB`/`M`, `GB`/`G`,
//! `TB`/`T`), binary units powers of 1024 (`KiB`, `MiB`, `GiB`, `TiB`), as
//! the SI and IEC define them; case is ignored, spaces between the number
//! and the unit are allowed, and a bare number is bytes. The same rules
//! read every size option (`max_bytes=`, `compress_min=`, `purge --to`).

use crate::error::{Error, ErrorKind, Result};

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", 1000),
    ("kb", 1000),
    ("m", 1000 * 1000),
    ("mb", 1000 * 1000),
    ("g", 1000 * 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("t", 1000 * 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a byte size (see the module docs).
///
/// ```
/// use respcache_core::size::parse_size;
/// assert_eq!(parse_size("500MB")?, 500_000_000);
/// assert_eq!(parse_size("1.5 GiB")?, 1_610_612_736);
/// assert_eq!(parse_size("64k")?, 64_000);
/// assert_eq!(parse_size("4096")?, 4096);
/// assert!(parse_size("lots").is_err());
/// # Ok::<(), respcache_core::Error>(())
/// ```
///
/// # Errors
///
/// [`ErrorKind::Configuration`] naming the text, for anything else
/// (negative, unknown unit, overflow).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::new(
            ErrorKind::Configuration,
            format!("{text:?} is not a size (e.g. 500MB, 1.5GiB, 64KiB, 100000)"),
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(bad)?
    };
    if number.is_empty() {
        return Err(bad());
    }
    match number.split_once('.') {
        None => number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .ok_or_else(bad),
        Some((whole, fraction)) => {
            if fraction.is_empty() || fraction.len() > 9 || fraction.contains('.') {
                return Err(bad());
            }
            let whole: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let scale = 10u64.pow(fraction.len() as u32);
            let fraction: u64 = fraction.parse().map_err(|_| bad())?;
            let whole_bytes = whole.checked_mul(multiplier).ok_or_else(bad)?;
            let fraction_bytes = u128::from(fraction) * u128::from(multiplier) / u128::from(scale);
            u64::try_from(fraction_bytes)
                .ok()
                .and_then(|f| whole_bytes.checked_add(f))
                .ok_or_else(bad)
        }
    }
}

/// A size for people: bytes below 1 KiB, else one decimal in binary units
/// (`1.5 MiB`).
///
/// ```
/// use respcache_core::size::format_size;
/// assert_eq!(format_size(512), "512 B");
/// assert_eq!(format_size(1_572_864), "1.5 MiB");
/// ```
pub fn format_size(bytes: u64) -> String {
    const NAMES: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < NAMES.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", NAMES[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_forms() -> Result<()> {
        assert_eq!(parse_size("0")?, 0);
        assert_eq!(parse_size("10b")?, 10);
        assert_eq!(parse_size("50MB")?, 50_000_000);
        assert_eq!(parse_size("50 mb")?, 50_000_000);
        assert_eq!(parse_size("50MiB")?, 50 << 20);
        assert_eq!(parse_size("2G")?, 2_000_000_000);
        assert_eq!(parse_size("0.5KiB")?, 512);
        assert_eq!(parse_size(".5k")?, 500);
        assert_eq!(parse_size(" 7 TiB ")?, 7 << 40);
        Ok(())
    }

    #[test]
    fn bad_sizes_are_configuration_errors() {
        for text in [
            "",
            "MB",
            "-1",
            "1.2.3",
            "1.",
            "5 parsecs",
            "99999999999999TB",
            "1e6",
        ] {
            let e = parse_size(text).err().map(|e| e.kind());
            assert_eq!(e, Some(ErrorKind::Configuration), "{text:?}");
        }
    }

    #[test]
    fn formats_round_numbers() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(50 << 20), "50.0 MiB");
    }
}
