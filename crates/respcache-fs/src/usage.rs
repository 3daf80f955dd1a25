//! The budget of an fs root: sizes, use times and the trim, least recently
//! used first — without walking the folder on every write.
//!
//! - **Size**: a running estimate. It is counted by one walk the first time
//!   a write needs it and again at every trim; each write adds its file's
//!   size, and deletes and replacements leave it high until the next count,
//!   so it errs on the side of trimming early, never late. Another
//!   process's writes are seen at the next count.
//! - **Use times**: a file's modification time. A write sets it; a hit
//!   only records the path in memory, and the recorded times are written to
//!   the files' modification times in one batch before a count or trim and
//!   once [`FLUSH_TOUCHED_AT`] paths have gathered — never a write per hit.
//! - **Trim**: when a write takes the estimate over the budget, one walk
//!   collects every entry's use time and size (16 bytes each, no paths), the
//!   cut-off time that frees enough is chosen, and a second walk removes
//!   the files used before it and, of those used at it (file times are
//!   coarse: several entries can share one), just as many as the count
//!   needs — down to [`Budget::low_water`], never further.
//!
//! An entry counts its file's length plus [`FILE_OVERHEAD`] (about what the
//! core's `entry_size` adds to an envelope's length). On disk a file also
//! rounds up to the file system's block (4 KiB on ext4).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use respcache_core::budget::{Budget, ProgressFn, TrimProgress, Usage};
use respcache_core::{Name, Result};
use tokio::sync::mpsc;

use crate::backend::{Shared, blocking};
use crate::error::{At, map_io_error};
use crate::walk::{Found, walk};

/// Bytes an entry is charged beyond its file's length.
pub(crate) const FILE_OVERHEAD: u64 = 16;

/// How many paths read since the last flush start a flush.
pub(crate) const FLUSH_TOUCHED_AT: usize = 4096;

/// The budget and what the backend knows of its size and uses.
#[derive(Debug, Default)]
pub(crate) struct Accounting {
    pub(crate) budget: Budget,
    estimate: Mutex<Option<Usage>>,
    trimming: AtomicBool,
    /// Paths read since the last flush, with when.
    touched: Mutex<HashMap<PathBuf, SystemTime>>,
}

impl Accounting {
    /// Accounting for `budget`.
    pub(crate) fn new(budget: Budget) -> Self {
        Accounting {
            budget,
            ..Accounting::default()
        }
    }

    /// Records a hit on the file at `path`; whether a flush is due.
    pub(crate) fn touch(&self, path: PathBuf) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        touched.insert(path, SystemTime::now());
        touched.len() >= FLUSH_TOUCHED_AT
    }

    /// Takes the recorded hits.
    fn take_touched(&self) -> HashMap<PathBuf, SystemTime> {
        std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a write of `bytes` in `entries` files; whether a trim is due.
    fn add(&self, bytes: u64, entries: u64) -> bool {
        if !self.budget.is_limited() {
            return false;
        }
        let mut estimate = self.estimate.lock().unwrap_or_else(PoisonError::into_inner);
        match estimate.as_mut() {
            None => true,
            Some(usage) => {
                usage.bytes = usage.bytes.saturating_add(bytes);
                usage.entries = usage.entries.saturating_add(entries);
                self.budget.is_exceeded_by(*usage)
            }
        }
    }

    fn set(&self, usage: Usage) {
        *self.estimate.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }
}

/// What an entry file is charged.
pub(crate) fn charged(file_len: usize) -> u64 {
    file_len as u64 + FILE_OVERHEAD
}

/// Writes recorded hits as modification times (best effort: a file gone
/// since is skipped).
pub(crate) fn flush(touched: HashMap<PathBuf, SystemTime>) {
    for (path, when) in touched {
        if let Ok(f) = File::open(&path) {
            let _ = f.set_modified(when);
        }
    }
}

/// Every store folder under `root`: `<root>/<cache>/<repository>`.
fn store_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for cache in read_named(root)? {
        out.extend(read_named(&cache)?);
    }
    Ok(out)
}

/// The sub-folders of `dir` whose names are valid respcache names.
fn read_named(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| Name::new(n).is_ok());
        if named && entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// A file's use time in microseconds since the epoch, and its charge.
fn use_and_size(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match fs::metadata(path) {
        Ok(m) => {
            let used = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            Ok(Some((used, m.len() + FILE_OVERHEAD)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One walk over every entry under `root`: their (use time, charge).
fn survey(root: &Path) -> io::Result<Vec<(u64, u64)>> {
    let mut found = Vec::new();
    for dir in store_dirs(root)? {
        walk(&dir, false, |f| {
            if let Found::Entry(path) = f
                && let Some(item) = use_and_size(path)?
            {
                found.push(item);
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(found)
}

fn usage_of(items: &[(u64, u64)]) -> Usage {
    Usage {
        bytes: items.iter().map(|(_, s)| s).sum(),
        entries: items.len() as u64,
    }
}

/// Where a trim cuts: every entry used before `used` goes, and `at_cut` of
/// the entries used exactly at `used`. File systems keep use times at their
/// own granularity (a clock tick, 2 s on FAT), so several entries can share
/// the cut's time; removing all of them would trim more than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    used: u64,
    at_cut: u64,
}

/// The cut whose removals (oldest use first) bring `items` within
/// `target`; `None` if nothing needs to go.
fn cut_off(items: &mut [(u64, u64)], target: Budget) -> Option<Cut> {
    let mut usage = usage_of(items);
    if !target.is_exceeded_by(usage) {
        return None;
    }
    items.sort_unstable();
    let mut cut = Cut { used: 0, at_cut: 0 };
    for (used, size) in items.iter() {
        usage.bytes = usage.bytes.saturating_sub(*size);
        usage.entries = usage.entries.saturating_sub(1);
        cut.at_cut = if *used == cut.used { cut.at_cut + 1 } else { 1 };
        cut.used = *used;
        if !target.is_exceeded_by(usage) {
            break;
        }
    }
    Some(cut)
}

/// The second walk: removes the entries used before the cut and the cut's
/// share of those used at it, sending progress after every `batch`
/// removals.
fn remove_used_before(
    root: &Path,
    mut cut: Cut,
    batch: u64,
    tx: &mpsc::UnboundedSender<TrimProgress>,
) -> io::Result<TrimProgress> {
    let mut done = TrimProgress::default();
    for dir in store_dirs(root)? {
        walk(&dir, true, |f| {
            let Found::Entry(path) = f else {
                return Ok(ControlFlow::Continue(()));
            };
            let Some((used, size)) = use_and_size(path)? else {
                return Ok(ControlFlow::Continue(()));
            };
            let goes = used < cut.used || (used == cut.used && cut.at_cut > 0);
            if goes && crate::file::remove(path)? {
                if used == cut.used {
                    cut.at_cut -= 1;
                }
                done.removed += 1;
                done.freed += size;
                if done.removed.is_multiple_of(batch) {
                    let _ = tx.send(done);
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(done)
}

impl Shared {
    fn root_error(&self, e: io::Error, doing: &str) -> respcache_core::Error {
        map_io_error(e, At::Root, format_args!("{doing} {}", self.root.display()))
    }

    /// Records a hit; flushes the recorded hits in the background once
    /// enough have gathered.
    pub(crate) fn touched(&self, path: PathBuf) {
        if self.accounting.touch(path) {
            let touched = self.accounting.take_touched();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn_blocking(move || flush(touched));
            }
        }
    }

    /// Writes recorded hits as modification times (on close).
    pub(crate) async fn flush_touched(&self) -> Result<()> {
        let touched = self.accounting.take_touched();
        if touched.is_empty() {
            return Ok(());
        }
        blocking(move || flush(touched)).await
    }

    /// Flushes recorded hits, then counts every entry under the root.
    pub(crate) async fn count_usage(&self) -> Result<Usage> {
        let touched = self.accounting.take_touched();
        let root = self.root.clone();
        let items = blocking(move || {
            flush(touched);
            survey(&root)
        })
        .await?
        .map_err(|e| self.root_error(e, "counting the entries under"))?;
        let usage = usage_of(&items);
        self.accounting.set(usage);
        Ok(usage)
    }

    /// Removes the least recently used entries under the root until
    /// `target` holds.
    pub(crate) async fn trim_to(
        &self,
        target: Budget,
        progress: ProgressFn<'_>,
    ) -> Result<TrimProgress> {
        let touched = self.accounting.take_touched();
        let root = self.root.clone();
        let (usage, cut) = blocking(move || {
            flush(touched);
            let mut items = survey(&root)?;
            let usage = usage_of(&items);
            Ok::<_, io::Error>((usage, cut_off(&mut items, target)))
        })
        .await?
        .map_err(|e| self.root_error(e, "surveying the entries under"))?;
        let Some(cut) = cut else {
            self.accounting.set(usage);
            return Ok(TrimProgress::default());
        };
        let to_free = target
            .max_bytes
            .map_or(0, |max| usage.bytes.saturating_sub(max));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let root = self.root.clone();
        let work = tokio::task::spawn_blocking(move || remove_used_before(&root, cut, 256, &tx));
        while let Some(mut step) = rx.recv().await {
            step.to_free = to_free;
            progress(step);
        }
        let mut done = work
            .await
            .map_err(crate::error::map_join_error)?
            .map_err(|e| self.root_error(e, "trimming the entries under"))?;
        done.to_free = to_free;
        progress(done);
        self.accounting.set(Usage {
            bytes: usage.bytes.saturating_sub(done.freed),
            entries: usage.entries.saturating_sub(done.removed),
        });
        Ok(done)
    }

    /// After a write of `bytes` in `entries` files: trims to the low-water
    /// mark when the budget is passed (unless a trim already runs).
    pub(crate) async fn after_write(&self, bytes: u64, entries: u64) -> Result<()> {
        if !self.accounting.add(bytes, entries)
            || self.accounting.trimming.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let budget = self.accounting.budget;
        let outcome = async {
            let usage = self.count_usage().await?;
            if budget.is_exceeded_by(usage) {
                self.trim_to(budget.low_water(), &|_| {}).await?;
            }
            Ok(())
        }
        .await;
        self.accounting.trimming.store(false, Ordering::Release);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_frees_just_enough_oldest_first() {
        let mut items = vec![(30, 10), (10, 10), (20, 10), (40, 10)];
        let at = |used, at_cut| Some(Cut { used, at_cut });
        assert_eq!(cut_off(&mut items, Budget::bytes(25)), at(20, 1));
        assert_eq!(cut_off(&mut items, Budget::entries(3)), at(10, 1));
        assert_eq!(cut_off(&mut items, Budget::bytes(100)), None);
        assert_eq!(cut_off(&mut items, Budget::bytes(0)), at(40, 1));
    }

    #[test]
    fn a_cut_through_tied_use_times_takes_only_its_share() {
        let mut items = vec![(10, 10), (20, 10), (20, 10), (20, 10), (30, 10)];
        let cut = cut_off(&mut items, Budget::entries(3));
        assert_eq!(
            cut,
            Some(Cut {
                used: 20,
                at_cut: 1
            })
        );
        let cut = cut_off(&mut items, Budget::entries(0));
        assert_eq!(
            cut,
            Some(Cut {
                used: 30,
                at_cut: 1
            })
        );
        let mut tied = vec![(5, 10); 4];
        assert_eq!(
            cut_off(&mut tied, Budget::entries(0)),
            Some(Cut { used: 5, at_cut: 4 })
        );
    }
}
