//! `respcache copy SRC_URL DST_URL`: every entry of a cache, stale ones
//! too, with their times and metadata, streamed into another cache or
//! backend in batches (`scan` + `put_many`).
//!
//! A put replaces a whole entry, so an interrupted copy loses nothing and
//! running it again finishes the job. Entries already in the destination
//! stay; those under the same key are replaced.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use respcache::futures::StreamExt;
use respcache::{Entry, KeySchema, Select, Timestamp};

use crate::args::CopyArgs;
use crate::cache::{Cache, Repo};
use crate::failure::{CliResult, Failure};
use crate::location::Location;
use crate::schema::{self, Decision};
use crate::table::{Align, Table};

/// One repository to copy.
struct Plan {
    repo: Repo,
    schema: KeySchema,
    entries: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Copied {
    fresh: u64,
    stale: u64,
    /// Stale for longer than the destination's retention already: a
    /// backend with native expiry may purge them at once.
    past_retention: u64,
}

/// Runs `copy`.
pub(crate) async fn run(args: &CopyArgs, out: &mut impl Write) -> CliResult<()> {
    let started = Instant::now();
    let src = Location::parse(&args.src, args.name.as_deref())?;
    let mut dst = Location::parse(&args.dst, args.name.as_deref())?;
    if dst.retention.is_none() {
        dst.retention = src.retention;
    }
    if src.same_cache(&dst) {
        return Err(Failure::new(format!(
            "the source and the destination are the same cache ({src})"
        )));
    }
    let overrides = schema::parse_overrides(&args.schema)?;
    let src = Cache::connect(src, true).await?;
    let dst = Cache::connect(dst, false).await?;
    let result = copy(&src, &dst, args, &overrides, started, out).await;
    let closed_src = src.close().await;
    let closed_dst = dst.close().await;
    result?;
    closed_src?;
    closed_dst
}

async fn copy(
    src: &Cache,
    dst: &Cache,
    args: &CopyArgs,
    overrides: &schema::Overrides,
    started: Instant,
    out: &mut impl Write,
) -> CliResult<()> {
    let now = Timestamp::now();
    let undecodable_before = respcache::stats::undecodable_entries();
    let names = src.repositories(&args.repository).await?;
    if names.is_empty() {
        crate::note(&format!("{} has no repositories", src.location()));
    }
    // Plan everything first, so a repository that cannot be copied stops
    // the command before anything is written.
    let mut plans = Vec::with_capacity(names.len());
    for name in &names {
        let repo = src.open(name).await?;
        let entries = repo
            .store
            .count(Select::All, now)
            .await
            .map_err(|e| src.fail(e))?;
        let first = match repo.store.scan(Select::All, now).next().await {
            Some(entry) => Some(entry.map_err(|e| src.fail(e))?.key),
            None => None,
        };
        let recorded = repo.schema.as_ref();
        match schema::decide(src, dst, name, recorded, overrides, first.as_ref()).await? {
            Decision::Copy(schema) => plans.push(Plan {
                repo,
                schema,
                entries,
            }),
            Decision::Skip(why) => crate::note(&why),
        }
    }
    let progress = progress_bar(plans.iter().map(|p| p.entries).sum());
    let mut table = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("COPIED", Align::Right),
        ("FRESH", Align::Right),
        ("STALE", Align::Right),
    ]);
    let mut total = Copied::default();
    for plan in plans {
        progress.set_message(plan.repo.name.as_str().to_owned());
        let copied = copy_one(src, dst, &plan, args.batch, now, &progress).await;
        let copied = match copied {
            Ok(c) => c,
            Err(e) => {
                progress.abandon();
                return Err(e);
            }
        };
        total.fresh += copied.fresh;
        total.stale += copied.stale;
        total.past_retention += copied.past_retention;
        table.push(cells(plan.repo.name.as_str(), copied));
    }
    progress.finish_and_clear();
    table.push(cells("total", total));
    table.write(out)?;
    writeln!(
        out,
        "copied {} entries ({} fresh, {} stale) from {} to {} in {:.2?}",
        total.fresh + total.stale,
        total.fresh,
        total.stale,
        src.location(),
        dst.location(),
        started.elapsed()
    )?;
    if let (Some(retention), n @ 1..) = (dst.location().retention, total.past_retention) {
        writeln!(
            out,
            "{n} of them were stale for longer than the retention ({}) already: a backend with \
             native expiry purges them at once",
            humantime::format_duration(retention)
        )?;
    }
    let undecodable = respcache::stats::undecodable_entries().saturating_sub(undecodable_before);
    if undecodable > 0 {
        writeln!(
            out,
            "skipped {undecodable} entries the source could not decode (corrupt, or written by \
             another version)"
        )?;
    }
    Ok(())
}

async fn copy_one(
    src: &Cache,
    dst: &Cache,
    plan: &Plan,
    batch: u32,
    now: Timestamp,
    progress: &ProgressBar,
) -> CliResult<Copied> {
    let target = dst.open_with(&plan.repo.name, plan.schema.clone()).await?;
    let batch = usize::try_from(batch).unwrap_or(usize::MAX);
    let mut chunks = plan.repo.store.scan(Select::All, now).chunks(batch);
    let mut copied = Copied::default();
    while let Some(chunk) = chunks.next().await {
        let entries: Vec<Entry> = chunk
            .into_iter()
            .collect::<respcache::Result<_>>()
            .map_err(|e| src.fail(e))?;
        let retention = dst.location().retention;
        let n = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        for entry in &entries {
            if entry.is_fresh(now) {
                copied.fresh += 1;
            } else {
                copied.stale += 1;
            }
            let purge_at = entry
                .expires_at
                .zip(retention)
                .map(|(e, r)| e.saturating_add(r));
            if purge_at.is_some_and(|p| p <= now) {
                copied.past_retention += 1;
            }
        }
        target.put_many(entries).await.map_err(|e| dst.fail(e))?;
        progress.inc(n);
    }
    Ok(copied)
}

fn cells(name: &str, c: Copied) -> Vec<String> {
    vec![
        name.to_owned(),
        (c.fresh + c.stale).to_string(),
        c.fresh.to_string(),
        c.stale.to_string(),
    ]
}

/// A progress bar on stderr, drawn only when stdout is a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:16} [{bar:30}] {human_pos}/{human_len} entries, {per_sec:0}, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
