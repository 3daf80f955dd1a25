//! `respcache ls`: the stored entries, as a table sorted by repository and
//! key, or as JSON lines streamed in the backend's order.

use std::io::Write;

use respcache::futures::StreamExt;
use respcache::{Select, Timestamp};

use crate::args::LsArgs;
use crate::cache::Cache;
use crate::failure::CliResult;
use crate::table::{Align, Table};
use crate::view::EntryView;
use crate::when;

/// Runs `ls`.
pub(crate) async fn run(cache: &Cache, args: &LsArgs, out: &mut impl Write) -> CliResult<()> {
    let now = Timestamp::now();
    let undecodable_before = respcache::stats::undecodable_entries();
    let only: Vec<String> = args.repository.iter().cloned().collect();
    let names = cache.repositories(&only).await?;
    if names.is_empty() {
        crate::note(&format!("{} has no repositories", cache.location()));
    }
    let select = if args.stale {
        Select::Expired
    } else if args.fresh {
        Select::Fresh
    } else {
        Select::All
    };
    let mut views = Vec::new();
    for name in &names {
        let repo = cache.open(name).await?;
        let mut entries = repo.store.scan(select, now);
        let mut here = Vec::new();
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| cache.fail(e))?;
            let view = EntryView::new(&repo.name, repo.schema.as_ref(), &entry, now);
            if args.json {
                writeln!(out, "{}", view.to_json())?;
            } else {
                here.push(view);
            }
        }
        here.sort_by(|a, b| a.key.cmp(&b.key));
        views.append(&mut here);
    }
    crate::stats::note_skipped(undecodable_before);
    if args.json {
        return Ok(());
    }
    let mut table = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("STATUS", Align::Left),
        ("CACHED_AT", Align::Left),
        ("EXPIRES_AT", Align::Left),
        ("BYTES", Align::Right),
        ("KEY", Align::Left),
        ("NAME/URL", Align::Left),
    ]);
    for v in &views {
        table.push(vec![
            v.repository.clone(),
            v.status().to_owned(),
            when::seconds(v.cached_at),
            v.expires_at
                .map_or_else(|| "never".to_owned(), when::seconds),
            v.bytes().to_string(),
            v.key.clone(),
            v.url
                .clone()
                .or_else(|| v.name.clone())
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.write(out)?;
    Ok(())
}
