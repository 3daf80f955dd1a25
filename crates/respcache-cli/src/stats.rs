//! `respcache stats`: per repository, how many entries, fresh and stale,
//! and their bytes (payload + metadata), from one scan at one `now`.

use std::io::Write;

use respcache::futures::StreamExt;
use respcache::size::format_size;
use respcache::{Select, Timestamp};
use serde_json::json;

use crate::args::StatsArgs;
use crate::cache::Cache;
use crate::failure::CliResult;
use crate::table::{Align, Table};

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    entries: u64,
    fresh: u64,
    stale: u64,
    bytes: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.entries += other.entries;
        self.fresh += other.fresh;
        self.stale += other.stale;
        self.bytes += other.bytes;
    }

    fn cells(&self, name: &str) -> Vec<String> {
        vec![
            name.to_owned(),
            self.entries.to_string(),
            self.fresh.to_string(),
            self.stale.to_string(),
            self.bytes.to_string(),
        ]
    }
}

/// Notes on stderr how many entries the scans since `before` (a reading of
/// [`respcache::stats::undecodable_entries`]) skipped as undecodable —
/// corrupt, another version's, or not an entry at all (a folder inside a
/// filesystem store) — so a damaged entry neither stops the command nor
/// passes unnoticed.
pub(crate) fn note_skipped(before: u64) {
    let skipped = respcache::stats::undecodable_entries().saturating_sub(before);
    if skipped > 0 {
        let entries = if skipped == 1 { "entry" } else { "entries" };
        crate::note(&format!(
            "skipped {skipped} {entries} the store could not decode (corrupt, written by \
             another version, or not an entry; the log has each one)"
        ));
    }
}

/// Runs `stats`.
pub(crate) async fn run(cache: &Cache, args: &StatsArgs, out: &mut impl Write) -> CliResult<()> {
    let now = Timestamp::now();
    let undecodable_before = respcache::stats::undecodable_entries();
    let names = cache.repositories(&args.repository).await?;
    if names.is_empty() {
        crate::note(&format!("{} has no repositories", cache.location()));
    }
    let mut table = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("ENTRIES", Align::Right),
        ("FRESH", Align::Right),
        ("STALE", Align::Right),
        ("BYTES", Align::Right),
    ]);
    let mut total = Counts::default();
    for name in &names {
        let repo = cache.open(name).await?;
        let mut counts = Counts::default();
        let mut entries = repo.store.scan(Select::All, now);
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| cache.fail(e))?;
            counts.entries += 1;
            if entry.is_fresh(now) {
                counts.fresh += 1;
            } else {
                counts.stale += 1;
            }
            let size = entry.payload.len() + entry.meta.as_ref().map_or(0, |m| m.len());
            counts.bytes += u64::try_from(size).unwrap_or(u64::MAX);
        }
        total.add(counts);
        if args.json {
            let line = json!({
                "repository": name.as_str(),
                "entries": counts.entries,
                "fresh": counts.fresh,
                "stale": counts.stale,
                "bytes": counts.bytes,
            });
            writeln!(out, "{line}")?;
        } else {
            table.push(counts.cells(name.as_str()));
        }
    }
    if !args.json {
        table.push(total.cells("total"));
        table.write(out)?;
    }
    note_skipped(undecodable_before);
    budget(cache, args, out).await
}

/// The backend's budget and how full it is (the local backends count
/// every cache in their file, folder or memory). With `--json`, one more
/// line, `{"budget": {...}, "usage": {...}}`, only when the URL sets a
/// budget.
async fn budget(cache: &Cache, args: &StatsArgs, out: &mut impl Write) -> CliResult<()> {
    let Some(eviction) = cache.eviction() else {
        if !args.json {
            writeln!(
                out,
                "\nbudget: {} bounds itself (Redis: maxmemory with an LRU maxmemory-policy)",
                cache.backend_name()
            )?;
        }
        return Ok(());
    };
    let budget = eviction.budget();
    if args.json && !budget.is_limited() {
        // One object per repository and line, as before budgets existed.
        return Ok(());
    }
    let usage = eviction.usage().await.map_err(|e| cache.fail(e))?;
    if args.json {
        let line = json!({
            "budget": {
                "max_bytes": budget.max_bytes,
                "max_entries": budget.max_entries,
            },
            "usage": {"bytes": usage.bytes, "entries": usage.entries},
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }
    let percent = |used: u64, max: u64| {
        if max == 0 {
            100.0
        } else {
            used as f64 * 100.0 / max as f64
        }
    };
    let bytes = match budget.max_bytes {
        Some(max) => format!(
            "{} of {} ({:.0} %)",
            format_size(usage.bytes),
            format_size(max),
            percent(usage.bytes, max)
        ),
        None => format!("{} (no max_bytes)", format_size(usage.bytes)),
    };
    let entries = match budget.max_entries {
        Some(max) => format!(
            "{} of {max} entries ({:.0} %)",
            usage.entries,
            percent(usage.entries, max)
        ),
        None => format!("{} entries (no max_entries)", usage.entries),
    };
    writeln!(
        out,
        "\nbudget of the whole {} backend (every cache in it): {bytes}, {entries}",
        cache.backend_name()
    )?;
    Ok(())
}
