//! The table runner end to end, on the embedded backends (no service
//! needed) and on a service that is not there. These check what the table
//! says, never how fast anything is.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn bench_table(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench-table"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn row<'a>(table: &'a str, operation: &str, backend: &str) -> &'a str {
    let prefix = format!("| {operation} | {backend} |");
    table
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row {prefix} in\n{table}"))
}

#[test]
fn embedded_backends_fill_every_row_with_checked_numbers() {
    let (ok, table, log) = bench_table(
        &[
            "--quick",
            "--backends",
            "memory,sqlite",
            "--entries",
            "2000",
            "--no-proxy",
        ],
        &[],
    );
    assert!(ok, "{log}\n{table}");
    assert!(!table.contains("| failed |"), "{table}");
    // Every operation of both backends has numbers.
    for backend in ["memory", "sqlite"] {
        for op in [
            "get hit 1 KB",
            "get hit 100 KB",
            "put 1 KB",
            "get_many 1,000",
            "put_many 1,000",
            "count(fresh) of 2,000",
            "clear(expired) of 2,000",
            "scan 2,000",
            "CachedSession hit 1 KB",
            "CachedSession hit, 64 tasks",
            "CachedSession miss + store",
            "CachedSession miss + store, cross_process",
            "CachedSession 304 revalidation",
        ] {
            let line = row(&table, op, backend);
            assert!(
                line.contains(" µs |") || line.contains(" ms |") || line.contains(" ns |"),
                "{line}"
            );
        }
        assert!(row(&table, "scan: peak extra RSS, 2,000", backend).contains("| +"));
    }
    // The raw baselines ran, and SQLite's rows are compared with them.
    for raw in [
        "rusqlite SELECT (inline) 1 KB",
        "rusqlite SELECT (tokio-rusqlite call) 1 KB",
        "hyper GET 1 KB (no cache)",
    ] {
        assert!(row(&table, raw, "raw").contains(" µs |"), "{raw}");
    }
    assert!(row(&table, "get hit 1 KB", "sqlite").contains("× of "));
    assert!(row(&table, "CachedSession miss + store", "sqlite").contains("× of "));
    assert!(
        row(
            &table,
            "CachedSession miss + store, cross_process",
            "sqlite"
        )
        .contains("over the plain miss")
    );
    // The front-ends (memory only), each judged against its comparison.
    let layer = row(&table, "CacheLayer over hyper hit 1 KB", "memory");
    assert!(layer.contains("× CachedClient's"), "{layer}");
    assert!(layer.contains("PASS") || layer.contains("MISS"), "{layer}");
    for peer in ["http-cache-reqwest moka", "http-cache-reqwest redb"] {
        assert!(row(&table, "reqwest middleware hit 1 KB", peer).contains(" µs |"));
    }
    let ours = row(&table, "reqwest middleware hit 1 KB", "memory");
    assert!(ours.contains("faster than moka"), "{ours}");
    assert!(ours.contains("PASS") || ours.contains("MISS"), "{ours}");
    // Left out on request, and said so.
    for server in ["serve memory", "serve sqlite", "varnish", "nginx"] {
        let line = row(&table, "proxy hit 1 KB, 50 connections", server);
        assert!(
            line.contains("| not built |") && line.contains("--no-proxy"),
            "{line}"
        );
    }
    // Target rows are judged.
    let judged = row(&table, "put_many 1,000", "sqlite");
    assert!(
        judged.contains("| PASS |") || judged.contains("| **MISS** |"),
        "{judged}"
    );
    assert!(table.contains("targets: "), "{table}");
}

#[cfg(feature = "redis")]
#[test]
fn an_unreachable_service_gives_unreachable_rows() {
    let (ok, table, log) = bench_table(
        &[
            "--quick",
            "--backends",
            "redis",
            "--entries",
            "100",
            "--no-proxy",
        ],
        &[("RESPCACHE_REDIS_URL", "redis://127.0.0.1:9/")],
    );
    assert!(ok, "{log}\n{table}");
    for op in ["get hit 1 KB", "CachedSession hit 1 KB", "scan 100"] {
        assert!(row(&table, op, "redis").contains("| unreachable |"), "{op}");
    }
    // A target row without numbers is not judged, and never passes.
    assert!(row(&table, "CachedSession hit 1 KB", "redis").contains("| n/a |"));
    assert_eq!(
        table.matches("- redis: unreachable: ").count(),
        1,
        "{table}"
    );
}
