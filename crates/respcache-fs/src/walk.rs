//! Walks one store's fan-out folders, one directory handle at a time, so
//! memory stays bounded whatever the store's size.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;

use crate::layout::{is_entry_name, is_fanout_name, is_temp_name};

/// A file met by [`walk`].
#[derive(Debug)]
pub(crate) enum Found<'a> {
    /// An entry file (its name is a digest).
    Entry(&'a Path),
    /// A temporary file left by a write in progress or a crashed writer.
    Temp(&'a Path),
    /// Something named like an entry that is not a file (a folder, say):
    /// not respcache's; callers skip it and count it as undecodable.
    Foreign(&'a Path),
}

/// Calls `visit` for every entry and temporary file under `store_dir`
/// (`<store_dir>/<aa>/<bb>/<file>`), until it answers `Break`. Anything else
/// in the folders is ignored. Folders that vanish during the walk (a
/// concurrent `clear` or `drop_store`) are skipped; a missing `store_dir` is
/// an empty store.
///
/// With `prune`, a fan-out folder found empty after its files were visited
/// is removed (a write that needs it again recreates it).
pub(crate) fn walk(
    store_dir: &Path,
    prune: bool,
    mut visit: impl FnMut(Found<'_>) -> io::Result<ControlFlow<()>>,
) -> io::Result<()> {
    let Some(top) = read_dir(store_dir)? else {
        return Ok(());
    };
    for first in top {
        let first = first?;
        if !is_fanout_name(&first.file_name()) || !is_dir(&first) {
            continue;
        }
        let first_path = first.path();
        let Some(middle) = read_dir(&first_path)? else {
            continue;
        };
        for second in middle {
            let second = second?;
            if !is_fanout_name(&second.file_name()) || !is_dir(&second) {
                continue;
            }
            let second_path = second.path();
            let Some(files) = read_dir(&second_path)? else {
                continue;
            };
            for file in files {
                let file = file?;
                let name = file.file_name();
                let path = file.path();
                let found = if is_entry_name(&name) && !is_file(&file) {
                    Found::Foreign(&path)
                } else if is_entry_name(&name) {
                    Found::Entry(&path)
                } else if is_temp_name(&name) {
                    Found::Temp(&path)
                } else {
                    continue;
                };
                if visit(found)?.is_break() {
                    return Ok(());
                }
            }
            if prune {
                // Fails (and is ignored) unless the folder is empty.
                let _ = fs::remove_dir(&second_path);
            }
        }
        if prune {
            let _ = fs::remove_dir(&first_path);
        }
    }
    Ok(())
}

/// Whether a folder entry is a regular file (`true` if it vanished
/// meanwhile: reading it then finds nothing).
fn is_file(entry: &fs::DirEntry) -> bool {
    entry.file_type().map_or(true, |t| t.is_file())
}

/// Whether a folder entry is a folder (`false` if it vanished meanwhile).
fn is_dir(entry: &fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_dir())
}

/// The entries of `dir`; `None` if it does not exist (any more).
fn read_dir(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
