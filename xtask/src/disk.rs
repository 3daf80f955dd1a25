//! The free disk space where a test run writes (the build's target folder,
//! the temporary folder), said before the run: a suite that writes 100,000
//! files fails in odd places on a full disk, and CI's log should say so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Below this much free space a run is warned.
const LOW_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// Prints the free space on the filesystems holding the target folder and
/// the temporary folder, with a warning when one is low. Says nothing when
/// `df` cannot tell (the run goes on).
pub(crate) fn report(target: &Path) {
    let mut seen = Vec::new();
    for path in [target.to_path_buf(), std::env::temp_dir()] {
        let Some((filesystem, free)) = free_space(&existing_ancestor(&path)) else {
            continue;
        };
        if seen.contains(&filesystem) {
            continue;
        }
        let gb = free as f64 / (1024.0 * 1024.0 * 1024.0);
        eprintln!(
            "xtask: {gb:.1} GB free on {} ({filesystem})",
            path.display()
        );
        if free < LOW_BYTES {
            eprintln!(
                "xtask: warning: under 10 GB free on {}: the build and the file-heavy suites (fs conformance) may fail for lack of space",
                path.display()
            );
        }
        seen.push(filesystem);
    }
}

/// `path`, or its nearest ancestor that exists (`df` needs one).
fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(path)
        .to_path_buf()
}

/// The filesystem holding `path` and its free bytes, from `df -Pk`.
fn free_space(path: &Path) -> Option<(String, u64)> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_df(&String::from_utf8_lossy(&out.stdout))
}

/// The filesystem and free bytes in POSIX `df -Pk` output (a header, then
/// `Filesystem 1024-blocks Used Available Capacity Mounted-on`).
fn parse_df(text: &str) -> Option<(String, u64)> {
    let line = text.lines().nth(1)?;
    let mut fields = line.split_whitespace();
    let filesystem = fields.next()?.to_owned();
    let available: u64 = fields.nth(2)?.parse().ok()?;
    Some((filesystem, available.checked_mul(1024)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_posix_df_output() {
        let text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                    /dev/vda         264091648 18874368  77594624      20% /\n";
        assert_eq!(
            parse_df(text),
            Some(("/dev/vda".to_owned(), 77_594_624 * 1024))
        );
    }

    #[test]
    fn other_output_says_nothing() {
        assert_eq!(parse_df(""), None);
        assert_eq!(parse_df("Filesystem 1024-blocks Used Available\n"), None);
        assert_eq!(parse_df("header\n/dev/x 10 5 many 50% /\n"), None);
    }

    #[test]
    fn a_missing_folder_is_asked_about_through_its_parent() {
        let missing = std::env::temp_dir().join("respcache-xtask-no-such-folder/below");
        assert_eq!(existing_ancestor(&missing), std::env::temp_dir());
    }
}
