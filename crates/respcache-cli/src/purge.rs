//! `respcache purge`: remove entries — stale ones, old ones, by URL glob,
//! by tag, or all — and print how many per repository.
//!
//! `--expired` alone and `--all` use the store's native `clear` (`count`
//! with `--dry-run`); `--tag` alone the store's tag index (`purge_tag`).
//! Filters the store cannot apply itself (`--older-than`, `--url`, a
//! combination, or `--tag` with `--dry-run`: every given filter must match)
//! scan the store, collect the matching keys, then delete them in batches —
//! so a scan never sees its own deletions.

use std::io::Write;

use globset::{Glob, GlobMatcher};
use respcache::futures::StreamExt;
use respcache::{DynStore, Key, Select, Timestamp};

use crate::args::PurgeArgs;
use crate::cache::Cache;
use crate::failure::{CliResult, Failure};
use crate::table::{Align, Table};
use crate::view::EntryView;

/// Keys per `delete_many`.
const DELETE_BATCH: usize = 500;

/// Which entries go.
struct Filter {
    expired: bool,
    cached_before: Option<Timestamp>,
    url: Option<GlobMatcher>,
    tag: Option<String>,
}

impl Filter {
    /// Whether `view` matches every given condition.
    fn matches(&self, view: &EntryView) -> bool {
        (!self.expired || !view.fresh)
            && self.cached_before.is_none_or(|t| view.cached_at < t)
            && self
                .url
                .as_ref()
                .is_none_or(|g| view.url.as_deref().is_some_and(|u| g.is_match(u)))
    }
}

/// Runs `purge`.
pub(crate) async fn run(cache: &Cache, args: &PurgeArgs, out: &mut impl Write) -> CliResult<()> {
    if let Some(size) = args.to {
        return crate::trim::run(cache, size, out).await;
    }
    let now = Timestamp::now();
    let url = match &args.url {
        Some(pattern) => Some(
            Glob::new(pattern)
                .map_err(|e| Failure::new(format!("--url {pattern:?}: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    if let Some(tag) = &args.tag {
        respcache::tags::validate_tag(tag)
            .map_err(|e| Failure::new(format!("--tag {tag:?}: {}", e.message())))?;
    }
    let tag_alone = args.tag.is_some()
        && !args.expired
        && args.older_than.is_none()
        && url.is_none()
        && !args.dry_run;
    let native = if args.all {
        Some(Select::All)
    } else if args.expired && args.older_than.is_none() && url.is_none() && args.tag.is_none() {
        Some(Select::Expired)
    } else {
        None
    };
    let filter = Filter {
        expired: args.expired,
        cached_before: args.older_than.map(|d| now.saturating_sub(d)),
        url,
        tag: args.tag.clone(),
    };
    let names = cache.repositories(&args.repository).await?;
    let header = if args.dry_run {
        "WOULD_REMOVE"
    } else {
        "REMOVED"
    };
    let mut table = Table::new(&[("REPOSITORY", Align::Left), (header, Align::Right)]);
    let mut total = 0u64;
    for name in &names {
        let repo = cache.open(name).await?;
        let store = repo.store.as_ref();
        let removed = match (native, args.dry_run) {
            _ if tag_alone => {
                let tag = filter.tag.as_deref().unwrap_or_default();
                store.purge_tag(tag).await.map_err(|e| cache.fail(e))?
            }
            (Some(select), true) => store.count(select, now).await.map_err(|e| cache.fail(e))?,
            (Some(select), false) => store.clear(select, now).await.map_err(|e| cache.fail(e))?,
            (None, dry_run) => {
                let keys = matching_keys(cache, &repo, &filter, now).await?;
                if dry_run {
                    u64::try_from(keys.len()).unwrap_or(u64::MAX)
                } else {
                    delete(cache, store, &keys).await?
                }
            }
        };
        total += removed;
        table.push(vec![name.as_str().to_owned(), removed.to_string()]);
    }
    table.push(vec!["total".to_owned(), total.to_string()]);
    table.write(out)?;
    let repositories = names.len();
    if args.dry_run {
        writeln!(
            out,
            "dry run: {total} entries in {repositories} repositories of {} would be removed",
            cache.location()
        )?;
    } else {
        writeln!(
            out,
            "removed {total} entries from {repositories} repositories of {}",
            cache.location()
        )?;
    }
    Ok(())
}

async fn matching_keys(
    cache: &Cache,
    repo: &crate::cache::Repo,
    filter: &Filter,
    now: Timestamp,
) -> CliResult<Vec<Key>> {
    let select = if filter.expired {
        Select::Expired
    } else {
        Select::All
    };
    let mut keys = Vec::new();
    let mut entries = repo.store.scan(select, now);
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| cache.fail(e))?;
        let tagged = filter.tag.as_deref().is_none_or(|t| entry.tags.contains(t));
        if tagged && filter.matches(&EntryView::new(&repo.name, None, &entry, now)) {
            keys.push(entry.key);
        }
    }
    Ok(keys)
}

async fn delete(cache: &Cache, store: &DynStore, keys: &[Key]) -> CliResult<u64> {
    let mut removed = 0;
    for batch in keys.chunks(DELETE_BATCH) {
        removed += store.delete_many(batch).await.map_err(|e| cache.fail(e))?;
    }
    Ok(removed)
}
