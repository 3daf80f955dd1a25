//! `respcache purge --to SIZE`: trims the whole backend to a size, least
//! recently used entries first, with a progress bar on long work.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use respcache::budget::{Budget, TrimProgress};
use respcache::size::format_size;

use crate::cache::Cache;
use crate::failure::{CliResult, Failure};

/// Runs `purge --to size`.
pub(crate) async fn run(cache: &Cache, size: u64, out: &mut impl Write) -> CliResult<()> {
    let Some(eviction) = cache.eviction() else {
        return Err(Failure::new(format!(
            "{}: purge --to needs a backend that counts its size (memory, sqlite, fs); \
             {} bounds itself: use the server's own limits (Redis: maxmemory with \
             maxmemory-policy allkeys-lru)",
            cache.location(),
            cache.backend_name()
        )));
    };
    let before = eviction.usage().await.map_err(|e| cache.fail(e))?;
    let bar = progress_bar(before.bytes.saturating_sub(size));
    let report = |p: TrimProgress| {
        bar.set_position(p.freed);
        bar.set_message(format!("{} entries", p.removed));
    };
    let done = eviction
        .trim_to(Budget::bytes(size), &report)
        .await
        .map_err(|e| cache.fail(e))?;
    bar.finish_and_clear();
    let after = eviction.usage().await.map_err(|e| cache.fail(e))?;
    writeln!(
        out,
        "removed {} entries ({}) least recently used first from {}: {} in {} entries before, {} in {} entries now (target {})",
        done.removed,
        format_size(done.freed),
        cache.location(),
        format_size(before.bytes),
        before.entries,
        format_size(after.bytes),
        after.entries,
        format_size(size),
    )?;
    Ok(())
}

/// A progress bar in bytes on stderr, drawn only when stdout is a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(
        "trimming [{bar:30}] {binary_bytes}/{binary_total_bytes} freed, {msg}, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
