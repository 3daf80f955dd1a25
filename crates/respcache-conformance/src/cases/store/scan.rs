//! Scanning: every entry once, and 100,000 entries streamed.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use respcache_core::{Entry, Key, KeyPart, Select};

use super::{entry, now, open};
use crate::cases::{Case, cases};
use crate::check::CaseResult;
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![scan_returns_every_entry_once, scan_of_100k_entries_streams,]
}

async fn scan_returns_every_entry_once(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let n = 1_000;
    s.put_many(
        (0..n)
            .map(|i| entry(&format!("k{i}"), format!("v{i}"), None))
            .collect(),
    )
    .await?;
    let entries: Vec<Entry> = s.scan(Select::All, now()).try_collect().await?;
    ensure_eq!(entries.len(), n, "scan yields every entry");
    let unique: HashSet<Key> = entries.iter().map(|e| e.key.clone()).collect();
    ensure_eq!(unique.len(), n, "no entry twice");
    for e in &entries {
        let id = e
            .key
            .fields()
            .first()
            .and_then(KeyPart::as_text)
            .unwrap_or_default();
        ensure_eq!(
            e.payload,
            Bytes::from(format!("v{}", id.trim_start_matches('k'))),
            "payload of {id}"
        );
    }
    Ok(())
}

async fn scan_of_100k_entries_streams(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "big-scan").await?;
    let n = 100_000usize;
    for chunk in 0..(n / 5_000) {
        let entries = (chunk * 5_000..(chunk + 1) * 5_000)
            .map(|i| {
                entry(
                    &format!("{i:06}"),
                    Bytes::from_static(b"0123456789abcdef"),
                    None,
                )
            })
            .collect();
        s.put_many(entries).await?;
    }
    // Stopping after a few entries must work and be quick.
    let first: Vec<Entry> = s.scan(Select::All, now()).take(10).try_collect().await?;
    ensure_eq!(first.len(), 10, "a partial scan");

    let started = Instant::now();
    let mut stream = s.scan(Select::All, now());
    let mut first_after = None;
    let mut seen = 0usize;
    while let Some(item) = stream.next().await {
        item?;
        seen += 1;
        if first_after.is_none() {
            first_after = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    ensure_eq!(seen, n, "every entry scanned");
    let first_after = first_after.unwrap_or(total);
    // A scan that loads everything before yielding makes the first item wait
    // for (nearly) the whole scan; a stream yields it after one page.
    ensure!(
        first_after < total / 2,
        "scan is not incremental: first entry after {first_after:?} of {total:?}"
    );
    Ok(())
}
