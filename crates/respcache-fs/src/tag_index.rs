//! The on-disk tag index of one store: `<store>/_tags/<tag digest>/<entry
//! file name>`, one empty marker file per (tag, entry).
//!
//! `_tags` is not a fan-out folder's name (two hex digits), so the walks of
//! `count`, `scan`, `clear` and the budget never see it; `drop_store`
//! removes it with the store's folder.
//!
//! Why a purge never misses an entry: `put` writes (or touches) the markers
//! of an entry's tags *before* it renames the entry file into place, so an
//! entry file that carries a tag always has its marker, even after a crash
//! between the two steps. The reverse does not hold and need not: a marker
//! whose entry was deleted, replaced by one without the tag, or never
//! written (a crash) is stale and harmless, because a purge reads each
//! entry and deletes it only if its own tags contain the tag. An entry
//! rewritten between that read and the delete is deleted too: a later
//! miss, never a stale hit (claiming each file first, as `clear` does,
//! made a purge of 1,000 entries take seconds).
//!
//! A purge removes the stale markers it meets, and the markers of the
//! entries it deleted, once they are older than [`MARKER_SETTLE`]: a
//! younger marker may belong to a `put` between its marker and its rename.
//! Markers of entries deleted by other means stay until the next purge of
//! their tag (an empty file each).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use respcache_core::{Tags, envelope, tags};

use crate::file;
use crate::layout::{entry_path_of_name, is_entry_name};

/// The index's folder in a store's folder.
const INDEX_DIR: &str = "_tags";

/// How old a marker must be before a purge may remove it while its entry
/// is absent or untagged (a `put` writes its markers, then its entry, well
/// within this).
pub(crate) const MARKER_SETTLE: Duration = Duration::from_secs(60);

/// The folder of `tag`'s markers.
fn tag_dir(store_dir: &Path, tag: &str) -> PathBuf {
    store_dir.join(INDEX_DIR).join(tags::digest_hex(tag))
}

/// Writes (or refreshes the time of) the marker of `entry_path` for every
/// tag; call it before the entry file is renamed into place. With `fsync`,
/// the tag folders are flushed too.
pub(crate) fn mark(
    store_dir: &Path,
    entry_path: &Path,
    tags: &Tags,
    fsync: bool,
) -> io::Result<()> {
    let Some(name) = entry_path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "entry path has no file name",
        ));
    };
    for tag in tags {
        let dir = tag_dir(store_dir, tag);
        file::ensure_dir(&dir)?;
        let marker = dir.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&marker)?;
        f.set_modified(SystemTime::now())?;
        if fsync {
            File::open(&dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Deletes every entry of the store at `store_dir` whose tags contain
/// `tag`; how many.
pub(crate) fn purge(store_dir: &Path, tag: &str) -> io::Result<u64> {
    let dir = tag_dir(store_dir, tag);
    let markers = match fs::read_dir(&dir) {
        Ok(markers) => markers,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for marker in markers {
        let marker = marker?;
        let name = marker.file_name();
        if !is_entry_name(&name) {
            continue;
        }
        let path = entry_path_of_name(store_dir, &name);
        let carries = |bytes: &[u8]| envelope::decode(bytes).is_ok_and(|e| e.tags.contains(tag));
        let carried = match file::read_file(&path) {
            Ok(bytes) => bytes.is_some_and(|b| carries(&b)),
            // A folder where the entry belongs is not an entry.
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => false,
            Err(e) => return Err(e),
        };
        if carried && file::remove(&path)? {
            removed += 1;
        }
        let settled = marker
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age > MARKER_SETTLE);
        if settled {
            match fs::remove_file(marker.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    // Fails (and is ignored) unless the folder is empty.
    let _ = fs::remove_dir(&dir);
    Ok(removed)
}
