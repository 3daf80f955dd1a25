//! Concurrent writers and readers: no torn or lost entries.

use std::sync::Arc;

use bytes::Bytes;
use respcache_core::Select;

use super::{entry, get_payload, key, now, open};
use crate::cases::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![
        concurrent_writers_on_one_key,
        concurrent_writers_and_readers_on_many_keys,
    ]
}

async fn concurrent_writers_on_one_key(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let writers: Vec<_> = (0..100)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let payload = format!("version-{i:03}-").repeat(100);
                s.put(entry("hot", payload, None)).await?;
                s.get(&key("hot")).await
            })
        })
        .collect();
    for w in writers {
        let read = w
            .await
            .map_err(|e| Failure(format!("task failed: {e}")))??;
        let payload = read
            .ok_or_else(|| Failure("a reader saw no entry after its own write".into()))?
            .payload;
        ensure!(
            is_whole_version(&payload),
            "a reader saw a torn payload of {} bytes",
            payload.len()
        );
    }
    ensure_eq!(s.count(Select::All, now()).await?, 1, "one key, one entry");
    let last = get_payload(s.as_ref(), "hot").await?.unwrap_or_default();
    ensure!(
        is_whole_version(&last),
        "final payload is one whole version"
    );
    Ok(())
}

fn is_whole_version(payload: &[u8]) -> bool {
    payload.len() == 1200
        && payload.chunks(12).all(|c| c == &payload[..12])
        && payload.starts_with(b"version-")
}

async fn concurrent_writers_and_readers_on_many_keys(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "r").await?;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let id = format!("key-{i}");
                s.put(entry(&id, format!("value-{i}"), None)).await?;
                let own = s.get(&key(&id)).await?;
                let other = s.get(&key(&format!("key-{}", (i + 50) % 100))).await?;
                Ok::<_, respcache_core::Error>((i, own, other))
            })
        })
        .collect();
    for t in tasks {
        let (i, own, other) = t
            .await
            .map_err(|e| Failure(format!("task failed: {e}")))??;
        ensure_eq!(
            own.map(|e| e.payload),
            Some(Bytes::from(format!("value-{i}"))),
            "read-your-write of key-{i}"
        );
        if let Some(other) = other {
            let j = (i + 50) % 100;
            ensure_eq!(
                other.payload,
                Bytes::from(format!("value-{j}")),
                "a concurrent read of key-{j}"
            );
        }
    }
    ensure_eq!(s.count(Select::All, now()).await?, 100, "no write lost");
    Ok(())
}
