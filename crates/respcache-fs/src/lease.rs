//! Leases on disk: `<store>/.leases/<digest-hex>`, a small file holding the
//! lease's expiry (milliseconds since the epoch) and its holder's token.
//!
//! Every change to a store's leases happens under an exclusive `flock` on
//! `<store>/.leases/.lock`, held for one check-and-write (microseconds):
//!
//! - acquire: a lease file whose expiry has not passed means *held*;
//!   otherwise (none, or expired) the new lease is written to a temporary
//!   file created with `O_EXCL` and renamed over the lease file, so a
//!   reader never sees a half-written lease and an expired one is taken
//!   over in one atomic step;
//! - release: the file is removed only if it holds the caller's token and
//!   has not expired.
//!
//! The lock makes a takeover safe between processes (two processes that
//! both saw an expired lease cannot both replace it), which `O_EXCL` alone
//! cannot. `flock` works between processes on one machine; on network
//! filesystems it depends on the server. Expiry uses the system clock:
//! processes sharing the folder must agree on the time to well within a
//! lease's length. The `.leases` folder is not a fan-out folder, so
//! walks (count, scan, clear) never see it; dropping the store removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use respcache_core::{Key, LeaseToken, Timestamp};

use crate::layout::TEMP_PREFIX;

/// The folder of a store's leases.
const LEASES: &str = ".leases";
/// The lock file inside it.
const LOCK: &str = ".lock";

/// The lease file of `key` in the store at `store_dir`.
pub(crate) fn lease_path(store_dir: &Path, key: &Key) -> PathBuf {
    store_dir.join(LEASES).join(key.digest().to_hex().as_str())
}

/// Holds the store's lease lock until dropped (closing the file unlocks).
fn lock(store_dir: &Path) -> io::Result<File> {
    let dir = store_dir.join(LEASES);
    fs::create_dir_all(&dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK))?;
    file.lock()?;
    Ok(file)
}

/// The expiry and token in a lease file; `None` if there is none. A file
/// that cannot be parsed (not written by this code) counts as expired.
fn read(path: &Path) -> io::Result<Option<(Timestamp, String)>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let expires = lines.next().and_then(|l| l.parse::<i64>().ok());
    let token = lines.next().unwrap_or_default().to_owned();
    Ok(Some((
        Timestamp::from_millis(expires.unwrap_or(i64::MIN)),
        token,
    )))
}

/// Takes the lease at `path` until `expires` for `token` unless an
/// unexpired one is held; `true` when taken.
pub(crate) fn acquire(
    store_dir: &Path,
    path: &Path,
    token: &LeaseToken,
    expires: Timestamp,
    now: Timestamp,
) -> io::Result<bool> {
    let _lock = lock(store_dir)?;
    if let Some((held_until, _)) = read(path)?
        && held_until > now
    {
        return Ok(false);
    }
    let temp = path.with_file_name(format!("{TEMP_PREFIX}{token}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let written = file
        .write_all(format!("{}\n{token}\n", expires.as_millis()).as_bytes())
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map(|()| true)
}

/// Frees the lease at `path` if `token` holds it and it has not expired.
pub(crate) fn release(
    store_dir: &Path,
    path: &Path,
    token: &LeaseToken,
    now: Timestamp,
) -> io::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let _lock = lock(store_dir)?;
    match read(path)? {
        Some((held_until, holder)) if holder == token.as_str() && held_until > now => {
            match fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        }
        _ => Ok(false),
    }
}
