//! Blocking primitives on entry files: atomic replacement, reads, and the
//! in-place expiry update. Everything here runs on a blocking thread (or,
//! for small reads, inline; see [`crate::store`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use respcache_core::envelope::{self, HEADER_LEN, Header};
use respcache_core::{Error, ErrorKind, Result, Timestamp};
use tempfile::{Builder, NamedTempFile};

use crate::layout::TEMP_PREFIX;

/// Opens `path` for reading; `None` if there is no such file.
pub(crate) fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the rest of `file` into `buf`, reserving `len_hint` bytes first.
pub(crate) fn read_rest(file: &mut File, mut buf: Vec<u8>, len_hint: u64) -> io::Result<Vec<u8>> {
    buf.reserve(usize::try_from(len_hint).unwrap_or(0));
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads up to [`HEADER_LEN`] bytes from the start of `file` (fewer if the
/// file is shorter, which then fails to decode).
pub(crate) fn read_header(file: &mut File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(HEADER_LEN);
    Read::by_ref(file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The whole file at `path`; `None` if there is no such file.
pub(crate) fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let Some(mut file) = open(path)? else {
        return Ok(None);
    };
    let len = file.metadata()?.len();
    read_rest(&mut file, Vec::new(), len).map(Some)
}

/// Creates `dir` and its missing parents. A concurrent `drop_store` or
/// `clear` may remove a parent between two steps, hence the retries.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        match fs::create_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

/// Removes the file at `path`; `false` if there was none.
pub(crate) fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        // A folder where the entry belongs is not an entry: left alone.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Removes the entry file at `path` only if `wanted` holds for its header
/// (the first [`HEADER_LEN`] bytes, or fewer if the file is shorter) at the
/// moment it is removed; `false` if there was no file or it was kept.
///
/// Reading the header and then removing `path` would remove a file a
/// concurrent [`write_atomic`] renamed over `path` in between. So the file
/// is claimed first: renamed to a new temporary name in the same folder
/// (`.tmp-…`, which readers and the walk ignore), its header read again
/// there, and then removed, or put back with a hard link when `wanted` no
/// longer holds. Putting back fails when a newer write already took `path`:
/// that write is newer than the claimed file, so it wins. Meanwhile a reader
/// sees no entry for a moment, which only happens when the file changed
/// between the caller's own check and the claim.
pub(crate) fn remove_if(path: &Path, wanted: impl FnOnce(&[u8]) -> bool) -> io::Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "entry path has no folder"))?;
    // A unique name (so concurrent claims never meet), removed on drop.
    let claimed = match Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir) {
        Ok(file) => file.into_temp_path(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match fs::rename(path, &claimed) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let head = File::open(&claimed).and_then(|mut f| read_header(&mut f));
    if let Ok(head) = &head
        && wanted(head)
    {
        claimed.close()?;
        return Ok(true);
    }
    match fs::hard_link(&claimed, path) {
        Ok(()) => claimed.close()?,
        // A newer write took `path`: it wins.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => claimed.close()?,
        // No hard links here (some network or FAT file systems): rename
        // back, which could replace a write made in the last instant.
        Err(_) => fs::rename(&claimed, path)?,
    }
    head.map(|_| false)
}

/// Replaces the file at `path` with `bytes`, atomically: the bytes go to a
/// new temporary file in the same folder (named `.tmp-…`, never mistaken for
/// an entry), which is then renamed over `path`. A reader, or a process that
/// restarts after a crash, sees the old file or the new one, never a mix.
///
/// With `fsync`, the temporary file is flushed to disk before the rename
/// and the folder after it, so the new entry also survives a power loss.
/// Missing fan-out folders are created.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], fsync: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "entry path has no folder"))?;
    let mut tmp = create_temp(dir, fsync)?;
    tmp.write_all(bytes)?;
    // The file's modification time is the entry's use time (`usage.rs`).
    // The kernel stamps writes from its coarse clock (one tick, several
    // milliseconds apart under load), while hits are recorded from the
    // precise one: stamping from the precise clock here keeps one clock
    // for both, so a write after a hit is never older than it. One
    // `futimens`, about a microsecond.
    tmp.as_file().set_modified(std::time::SystemTime::now())?;
    if fsync {
        tmp.as_file().sync_all()?;
    }
    // On failure the temporary file is removed when `tmp` drops.
    tmp.persist(path).map_err(|e| e.error)?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Creates a temporary file in `dir`, creating `dir` (and its parents) when
/// missing. A concurrent `clear` may remove an empty fan-out folder between
/// the two steps, hence the retries.
fn create_temp(dir: &Path, fsync: bool) -> io::Result<NamedTempFile> {
    let mut attempts = 0;
    loop {
        match Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
                ensure_dir(dir)?;
                if fsync {
                    // Make the new folders' own entries durable too.
                    for parent in dir.ancestors().skip(1).take(2) {
                        sync_dir(parent)?;
                    }
                }
            }
            other => return other,
        }
    }
}

/// Flushes a folder's entries (names) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Folders cannot be opened as files here; the rename is already durable
        // once the file's data was synced.
        let _ = dir;
        Ok(())
    }
}

/// What [`set_expiry`] found.
#[derive(Debug)]
pub(crate) enum ExpiryUpdate {
    /// There is no entry file.
    Missing,
    /// The file's header cannot be decoded: a miss.
    Undecodable(Error),
    /// The header now holds the new expiry.
    Done,
}

/// Rewrites the expiry in the header of the file at `path`, in place, with
/// one positioned write inside the file's first 24 bytes.
///
/// Why in place and not a whole-file rewrite: `set_expiry` must not rewrite
/// the payload (entries can be megabytes), and a whole-file rewrite racing
/// with a `put` of the same key could put the old payload back after the
/// `put` returned. Writing into the file that was opened means a racing
/// `put` simply wins (its rename replaces the file, and this write lands in
/// the replaced one), as if `set_expiry` had happened first.
///
/// The changed bytes are one 8-byte write at offset 16 (`expires_at`) when
/// the "expires" flag keeps its value, or one 20-byte write at offset 4
/// (flags through `expires_at`) when it changes. Both lie in the file's
/// first disk sector, so a crash leaves the old or the new header, and any
/// header read back is a valid one.
pub(crate) fn set_expiry(
    path: &Path,
    expires_at: Option<Timestamp>,
    fsync: bool,
) -> io::Result<ExpiryUpdate> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ExpiryUpdate::Missing),
        Err(e) => return Err(e),
    };
    let old = read_header(&mut file)?;
    let (offset, bytes) = match patch_expiry(&old, expires_at) {
        Ok(patch) => patch,
        Err(e) => return Ok(ExpiryUpdate::Undecodable(e)),
    };
    file.seek(SeekFrom::Start(offset as u64))?;
    file.write_all(&bytes)?;
    if fsync {
        file.sync_data()?;
    }
    Ok(ExpiryUpdate::Done)
}

// Offsets in the envelope's fixed header, from the core that defines it.
use respcache_core::envelope::{
    EXPIRES_AT_OFFSET as EXPIRES_AT, EXPIRES_FLAG, FLAGS_OFFSET as FLAGS_AT,
};

/// The bytes to write, and where, to give the header `old` the expiry
/// `expires_at`. Checks the result with the core's own decoder, so a change
/// of the envelope layout is an error, never a corrupt file.
fn patch_expiry(old: &[u8], expires_at: Option<Timestamp>) -> Result<(usize, Vec<u8>)> {
    let header = envelope::decode_header(old)?;
    let mut new = old.get(..HEADER_LEN).unwrap_or_default().to_vec();
    let old_flags = new[FLAGS_AT];
    let flags = match expires_at {
        Some(_) => old_flags | EXPIRES_FLAG,
        None => old_flags & !EXPIRES_FLAG,
    };
    new[FLAGS_AT] = flags;
    let millis = expires_at.map_or(0, Timestamp::as_millis);
    new[EXPIRES_AT..HEADER_LEN].copy_from_slice(&millis.to_be_bytes());
    let expected = Header {
        cached_at: header.cached_at,
        expires_at,
    };
    if envelope::decode_header(&new).ok() != Some(expected) {
        return Err(Error::new(
            ErrorKind::Codec,
            "the envelope header layout is not the one this backend knows",
        ));
    }
    if flags == old_flags {
        Ok((EXPIRES_AT, new[EXPIRES_AT..HEADER_LEN].to_vec()))
    } else {
        Ok((FLAGS_AT, new[FLAGS_AT..HEADER_LEN].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use respcache_core::{Entry, Key};

    fn header_of(expires_at: Option<Timestamp>) -> Vec<u8> {
        let entry = Entry::new(Key::new("GET", []), Timestamp::from_millis(7), "payload")
            .with_name("n")
            .with_expires_at(expires_at);
        envelope::encode(&entry)[..HEADER_LEN].to_vec()
    }

    fn apply(old: &[u8], (at, bytes): (usize, Vec<u8>)) -> Vec<u8> {
        let mut out = old.to_vec();
        out[at..at + bytes.len()].copy_from_slice(&bytes);
        out
    }

    #[test]
    fn patches_match_a_fresh_encoding() {
        let times = [
            None,
            Some(Timestamp::from_millis(-5)),
            Some(Timestamp::from_millis(1 << 40)),
        ];
        for from in times {
            for to in times {
                let old = header_of(from);
                let patch = patch_expiry(&old, to).unwrap();
                let same_flag = from.is_some() == to.is_some();
                assert_eq!(patch.0, if same_flag { 16 } else { 4 });
                assert_eq!(patch.1.len(), if same_flag { 8 } else { 20 });
                assert_eq!(apply(&old, patch), header_of(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_bad_header_is_not_patched() {
        assert!(patch_expiry(b"not an envelope at all, no", None).is_err());
        assert!(patch_expiry(&[], None).is_err());
    }
}
