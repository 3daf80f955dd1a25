//! The `respcache` command against Redis (`RESPCACHE_REDIS_URL`, default
//! `redis://127.0.0.1:6379/`): copy a SQLite cache there, inspect and purge
//! it, and copy it back. An unreachable server reports the tests that need
//! it as *ignored* with the reason (libtest-mimic: a skipped test never
//! counts as passed), or fails them under `CI=true` (the kit's
//! `services::Gate`).

// Test helpers assert: a failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use std::sync::Arc;

use cli_common::*;
use libtest_mimic::{Arguments, Trial};
use respcache::{Backend, Name};
use respcache_conformance::services::{Gate, REDIS};
use serde_json::Value;

/// The Redis URL, and the gate of the tests that need it (closed when the
/// server is unreachable).
fn redis() -> (String, Gate) {
    let url = REDIS.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let probe = rt.block_on(async {
        let backend = respcache::connect(&url).await?;
        backend.list_stores(&Name::new("probe")?).await?;
        backend.close().await
    });
    let probe = probe.map_err(|e| {
        format!("Redis at {url}: {e}; run `cargo xtask services up` or set RESPCACHE_REDIS_URL")
    });
    (url.clone(), Gate::probe("cli_redis: Redis", probe))
}

fn main() {
    let args = Arguments::from_args();
    let (url, gate) = redis();
    let needs_redis = |name: &'static str, test: fn(String)| {
        let url = url.clone();
        gate.trial(name, move || {
            test(url);
            Ok(())
        })
    };
    let trials = vec![
        needs_redis(
            "copy_to_redis_inspect_purge_and_copy_back",
            copy_to_redis_inspect_purge_and_copy_back,
        ),
        needs_redis(
            "a_short_retention_lets_redis_purge_long_stale_entries_at_once",
            a_short_retention_lets_redis_purge_long_stale_entries_at_once,
        ),
        Trial::test(
            "an_unreachable_server_is_one_line_without_the_password",
            || {
                an_unreachable_server_is_one_line_without_the_password();
                Ok(())
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// A cache name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Drops every store of a Redis cache when the test ends, passed or not.
struct DropCache {
    url: String,
    cache: String,
}

impl Drop for DropCache {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Runtime::new() else {
            return;
        };
        let _ = rt.block_on(async {
            let backend: Arc<dyn Backend> = respcache::connect(&self.url).await?;
            let cache = Name::new(self.cache.as_str())?;
            for repository in backend.list_stores(&cache).await? {
                backend.drop_store(&cache, &repository).await?;
            }
            backend.close().await
        });
    }
}

/// `ls --json` without the key field names (Redis does not record them).
fn anonymous(listing: Vec<Value>) -> Vec<Value> {
    listing
        .into_iter()
        .map(|mut e| {
            for f in e["fields"].as_array_mut().unwrap() {
                f["name"] = Value::Null;
            }
            e
        })
        .collect()
}

fn copy_to_redis_inspect_purge_and_copy_back(redis_url: String) {
    let (_dir, sqlite) = sqlite_file();
    let filled = fill(&sqlite, "shop");
    let src = format!("{sqlite}?cache=shop");
    let cache = unique("cli");
    let _cleanup = DropCache {
        url: redis_url.clone(),
        cache: cache.clone(),
    };
    let dst = format!("{redis_url}?cache={cache}&retention=30d");

    // SQLite -> Redis: every entry, stale ones too, as it was
    let run = respcache(&["copy", &src, &dst, "--batch", "3"]);
    let out = run.ok();
    assert!(out.contains("copied 8 entries (6 fresh, 2 stale)"), "{out}");
    assert!(
        !out.contains("stale for longer than the retention"),
        "{out}"
    );
    assert_eq!(stats(&dst), stats(&src));
    assert_eq!(listing(&dst), anonymous(listing(&src)));

    // show by key and by URL
    let show = respcache(&["show", "--cache", &dst, "3:GET|#1"]);
    let out = shown(show.ok());
    assert_eq!(out["repository"], "pages");
    assert_eq!(out["status"], "stale");
    assert_eq!(out["fields"], "1", "Redis does not record field names");
    let url = format!("{}/a/1", filled.origin);
    let payload = respcache(&["show", "--cache", &dst, &url, "--payload"]);
    assert_eq!(payload.raw, b"alpha", "{payload:?}");

    // purge
    let dry = respcache(&["purge", "--cache", &dst, "--expired", "--dry-run"]);
    assert!(rows(dry.ok()).contains(&vec!["total".to_owned(), "2".to_owned()]));
    assert_eq!(stats(&dst)["total"][..3], [8, 6, 2]);
    let purged = respcache(&["purge", "--cache", &dst, "--expired"]);
    assert!(rows(purged.ok()).contains(&vec!["pages".to_owned(), "2".to_owned()]));
    assert_eq!(stats(&dst)["total"][..3], [6, 6, 0]);

    // Redis -> a new SQLite file: SQLite needs the key fields, which Redis
    // does not record; the copy stops before writing anything
    let (_back_dir, back_sqlite) = sqlite_file();
    let back = format!("{back_sqlite}?cache=shop");
    let refused = respcache(&["copy", &dst, &back]);
    let line = refused.error(1);
    assert!(line.contains("--schema pages=FIELD:KIND"), "{line}");
    assert_eq!(stats(&back)["total"], [0, 0, 0, 0]);

    let run = respcache(&[
        "copy",
        &dst,
        &back,
        "--schema",
        "pages=n:int",
        "--schema",
        "tracks=id:text",
    ]);
    assert!(run.ok().contains("copied 6 entries"), "{}", run.stdout);
    assert_eq!(stats(&back), stats(&dst));
    let show = respcache(&["show", "--cache", &back, "3:GET|1:c"]);
    assert_eq!(shown(show.ok())["fields"], "id=\"c\"");

    // everything goes; the repositories stay listed while empty
    let all = respcache(&["purge", "--cache", &dst, "--all"]);
    assert!(all.ok().contains("removed 6 entries"), "{}", all.stdout);
    assert_eq!(stats(&dst)["total"], [0, 0, 0, 0]);
}

fn a_short_retention_lets_redis_purge_long_stale_entries_at_once(redis_url: String) {
    let (_dir, sqlite) = sqlite_file();
    fill(&sqlite, "shop");
    let cache = unique("cli-retention");
    let _cleanup = DropCache {
        url: redis_url.clone(),
        cache: cache.clone(),
    };
    // The source URL's retention is the destination's default.
    let src = format!("{sqlite}?cache=shop&retention=1d");
    let dst = format!("{redis_url}?cache={cache}");
    let run = respcache(&["copy", &src, &dst, "--repository", "pages"]);
    let out = run.ok();
    assert!(out.contains("copied 3 entries (1 fresh, 2 stale)"), "{out}");
    assert!(
        out.contains("2 of them were stale for longer than the retention (1day)"),
        "{out}"
    );
    // page 1 (stale for 9 days) and page 2 (for 1 day) are gone
    assert_eq!(stats(&dst)["pages"][..3], [1, 1, 0]);
}

fn an_unreachable_server_is_one_line_without_the_password() {
    let run = respcache(&[
        "stats",
        "--cache",
        "redis://alice:s3cret@127.0.0.1:1/?cache=x&connect_timeout_ms=300",
    ]);
    let line = run.error(1);
    assert!(!line.contains("s3cret"), "{line}");
    assert!(line.contains("alice:***@127.0.0.1:1"), "{line}");
}
