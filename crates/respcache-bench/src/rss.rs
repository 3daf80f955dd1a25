//! The process's resident memory, from `/proc/self/status` (Linux): the
//! current size (`VmRSS`) and the peak (`VmHWM`), which writing `5` to
//! `/proc/self/clear_refs` resets to the current size.

use crate::Result;

/// Resident memory of this process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resident {
    /// Resident now (`VmRSS`).
    pub current: u64,
    /// The most resident since start or the last [`reset_peak`] (`VmHWM`).
    pub peak: u64,
}

/// Reads `/proc/self/status`.
///
/// # Errors
///
/// When the file cannot be read or lacks the fields (not Linux).
pub fn resident() -> Result<Resident> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse(&status)
}

/// Resets the peak to the current resident size, so the next [`resident`]
/// shows the peak of what ran in between.
///
/// # Errors
///
/// When `/proc/self/clear_refs` cannot be written (not Linux, or a kernel
/// older than 4.0).
pub fn reset_peak() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

fn parse(status: &str) -> Result<Resident> {
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kb * 1024)
    };
    Ok(Resident {
        current: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse(s).unwrap(),
            Resident {
                current: 1024 * 1024,
                peak: 2048 * 1024
            }
        );
        assert!(parse("Name:\tx\n").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_peak_follows_a_large_allocation_and_resets() {
        reset_peak().unwrap();
        let before = resident().unwrap();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        drop(big);
        let after = resident().unwrap();
        assert!(
            after.peak >= before.current + (60 << 20),
            "{before:?} {after:?}"
        );
        reset_peak().unwrap();
        assert!(resident().unwrap().peak < after.peak);
    }
}
