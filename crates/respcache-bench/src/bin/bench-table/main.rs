//! `bench-table`: measures every backend and its raw baselines in one run
//! and prints one Markdown table (operation, backend, median, p99,
//! throughput, ratio to the raw baseline, target, PASS/MISS).
//!
//! ```text
//! cargo run --release -p respcache-bench --bin bench-table -- [--quick] [--backends sqlite,fs] [--output table.md]
//! ```
//!
//! Services come from `RESPCACHE_REDIS_URL`, `RESPCACHE_MONGODB_URL` and
//! `RESPCACHE_DYNAMODB_URL` (defaults: the local ports); a service that
//! does not answer gives `unreachable` rows. The exit status is 1 when an
//! operation failed (a wrong answer, an error), and with `--fail-on-miss`
//! also when a target was missed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use respcache_bench::backends::{self, BackendKind, Connected};
use respcache_bench::front_ends::{LayerHits, ReqwestHits};
use respcache_bench::measure::{self, Plan, Stats};
use respcache_bench::origin::{ETAG, Origin};
use respcache_bench::proxy::{self, ProxyKind};
use respcache_bench::raw::{RawFile, RawHttp, RawSqlite, RawTokioSqlite};
use respcache_bench::report::{self, Outcome, RAW, Row, Table, Target};
use respcache_bench::session::{HIT_URLS, MissSession, Session};
use respcache_bench::store_ops::{Hits, LARGE_STORE, Large, Size, Writes};
use respcache_bench::{BoxError, Result, cpu, data, machine, rss};
use respcache_core::CrossProcess;
use respcache_core::Name;
use respcache_http::CachedClient;

mod front_ends;
mod hits;
mod origin_paths;
mod proxies;
mod targets;

use proxies::proxy_name;
use targets::{notes, with_targets};

/// Measures respcache's backends and `CachedSession` against raw baselines
/// and prints one table.
#[derive(Debug, Parser)]
#[command(name = "bench-table", version)]
struct Args {
    /// Short runs: under 3 minutes on 2 cores (noisier numbers).
    #[arg(long)]
    quick: bool,
    /// Only these backends (comma-separated: memory, sqlite, fs, redis,
    /// mongodb, dynamodb). Default: all.
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// Entries in the store that count, clear and scan run over (default
    /// 100,000; 20,000 with --quick, where the scan memory bound scales
    /// with it).
    #[arg(long)]
    entries: Option<usize>,
    /// Also write the table (with the machine line) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Exit with status 1 when a target is missed.
    #[arg(long)]
    fail_on_miss: bool,
    /// Leave out the storage-economy rows (compression, the SQLite budget).
    #[arg(long)]
    no_economy: bool,
    /// Leave out `respcache serve` against Varnish and nginx.
    #[arg(long)]
    no_proxy: bool,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// Internal: scan a store in a fresh process and report its peak memory.
    #[command(hide = true)]
    ScanChild {
        #[arg(long)]
        backend: String,
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        cache: String,
        #[arg(long)]
        entries: usize,
    },
}

// Operation names: the table's first column, and the keys baselines are
// found by.
const RAW_SQLITE: &str = "rusqlite SELECT (inline)";
const RAW_TOKIO_SQLITE: &str = "rusqlite SELECT (tokio-rusqlite call)";
const RAW_FILE: &str = "std::fs::read";
const RAW_REDIS: &str = "redis GET";
const RAW_HTTP: &str = "hyper GET 1 KB (no cache)";
const RAW_HTTP_304: &str = "hyper GET → 304 (no cache)";
const GET_HIT: &str = "get hit";
const PUT: &str = "put 1 KB";
const GET_MANY: &str = "get_many 1,000";
const PUT_MANY: &str = "put_many 1,000";
const LEASE: &str = "lease acquire + release";
const COUNT: &str = "count(fresh)";
const SCAN: &str = "scan";
const SCAN_MEMORY: &str = "scan: peak extra RSS";
const CLEAR: &str = "clear(expired)";
const HTTP_HIT: &str = "CachedSession hit 1 KB";
const HTTP_MISS: &str = "CachedSession miss + store";
const HTTP_304: &str = "CachedSession 304 revalidation";
const HTTP_CONCURRENT: &str = "CachedSession hit, 64 tasks";
const HTTP_MISS_XP: &str = "CachedSession miss + store, cross_process";
const LAYER_HIT: &str = "CacheLayer over hyper hit 1 KB";
const REQWEST_HIT: &str = "reqwest middleware hit 1 KB";
const PROXY_HIT: &str = "proxy hit 1 KB, 50 connections";
const PROXY_MISS: &str = "proxy miss + store, 50 connections";
const PEER_MOKA: &str = "http-cache-reqwest moka";
const PEER_REDB: &str = "http-cache-reqwest redb";

/// Where each operation sorts in the table (by the longest name it starts
/// with: `scan: peak extra RSS, …` after `scan …`).
fn op_order(op: &str) -> usize {
    const ORDER: [&str; 18] = [
        GET_HIT,
        PUT,
        GET_MANY,
        PUT_MANY,
        LEASE,
        COUNT,
        CLEAR,
        SCAN,
        SCAN_MEMORY,
        HTTP_HIT,
        HTTP_CONCURRENT,
        HTTP_MISS,
        HTTP_MISS_XP,
        HTTP_304,
        LAYER_HIT,
        REQWEST_HIT,
        PROXY_HIT,
        PROXY_MISS,
    ];
    ORDER
        .iter()
        .enumerate()
        .filter(|(_, o)| op.starts_with(**o))
        .max_by_key(|(_, o)| o.len())
        .map_or(ORDER.len(), |(i, _)| i)
}

fn sized(op: &str, size: Size) -> String {
    format!("{op} {}", size.label())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-table: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Child::ScanChild {
        backend,
        location,
        cache,
        entries,
    }) = &args.child
    {
        return match runtime.block_on(scan_child(backend, location.as_deref(), cache, *entries)) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("scan-child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let machine = machine::describe();
    let table = match runtime.block_on(run(&args, started)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench-table: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(runtime);
    let (pass, miss, unjudged) = table.tally();
    let failed = table
        .rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    let mode = if args.quick { "--quick" } else { "full" };
    let text = format!(
        "Machine: {machine}.\n\nRun: `bench-table {mode}`, {} entries for count/clear/scan, {:.0} s, load average at the end {}; \
         targets: {pass} PASS, {miss} MISS, {unjudged} not judged; {failed} failed rows.\n\n{}",
        entries(&args),
        started.elapsed().as_secs_f64(),
        machine::load().unwrap_or_else(|| "?".to_owned()),
        table.markdown()
    );
    println!("{text}");
    if let Some(path) = &args.output
        && let Err(e) = std::fs::write(path, &text)
    {
        eprintln!("bench-table: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if failed > 0 || (args.fail_on_miss && miss > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Entries of the large store: `--entries`, else 100,000 (20,000 quick).
fn entries(args: &Args) -> usize {
    args.entries
        .unwrap_or(if args.quick { 20_000 } else { LARGE_STORE })
}

/// The scan memory bound: 64 MB for 100,000 entries of 1 KB, in proportion
/// for other sizes (so a scan that loads everything still misses it).
fn scan_memory_bound(entries: usize) -> u64 {
    ((64u64 << 20) as f64 * entries as f64 / LARGE_STORE as f64) as u64
}

/// The run: raw HTTP baselines, then each backend in turn.
async fn run(args: &Args, started: Instant) -> Result<Table> {
    let mut kinds = Vec::new();
    if args.backends.is_empty() {
        kinds.extend(BackendKind::ALL);
    } else {
        for name in &args.backends {
            let kind = BackendKind::parse(name.trim())
                .ok_or_else(|| format!("unknown backend {name:?}"))?;
            kinds.push(kind);
        }
    }
    let mut ctx = Ctx {
        quick: args.quick,
        plan: if args.quick { Plan::QUICK } else { Plan::FULL },
        entries: entries(args),
        origin: Origin::start()?,
        http: RawHttp::new(),
        rows: Vec::new(),
        cores: Vec::new(),
        started,
    };
    ctx.raw_http().await;
    if !args.no_economy {
        let started = ctx.started;
        let rows = respcache_bench::economy::rows(ctx.plan, |row| log_row(started, row)).await;
        ctx.rows.extend(rows);
    }
    for kind in kinds {
        if !kind.compiled() {
            let why = format!("feature `{kind}` off");
            for op in ctx.backend_ops(kind) {
                ctx.push(Row::new(op, kind.name(), Outcome::NotBuilt(why.clone())));
            }
            continue;
        }
        ctx.log(kind.name(), "connecting", "");
        match backends::connect(kind).await {
            Ok(connected) => ctx.backend(&connected).await,
            Err(e) => {
                ctx.log(kind.name(), "unreachable", &e.to_string());
                for op in ctx.backend_ops(kind) {
                    ctx.push(Row::new(
                        op,
                        kind.name(),
                        Outcome::Unreachable(e.to_string()),
                    ));
                }
            }
        }
    }
    if args.no_proxy {
        for k in ProxyKind::ALL {
            for op in [PROXY_HIT, PROXY_MISS] {
                ctx.push(
                    Row::new(op, proxy_name(k), Outcome::NotBuilt("--no-proxy".into())).unit("req"),
                );
            }
        }
    } else {
        ctx.proxies().await;
    }
    let cores = std::mem::take(&mut ctx.cores);
    let mut rows = ctx.rows;
    // Raw baselines first, then by operation, then by backend.
    let backend_order = |b: &str| BackendKind::parse(b).map_or(0, |k| k as usize + 1);
    rows.sort_by_key(|r| {
        if r.backend == RAW {
            (0, 0, 0)
        } else {
            (1, op_order(&r.operation), backend_order(&r.backend))
        }
    });
    // Targets and notes go on last, so every row of an operation reads alike.
    let rows = rows
        .into_iter()
        .map(|row| with_targets(row, scan_memory_bound(entries(args))))
        .map(|mut row| {
            let got = cores.iter().find(|(b, _)| *b == row.backend);
            if let (HTTP_CONCURRENT, Some((_, c))) = (row.operation.as_str(), got) {
                let note = row.note.take().unwrap_or_default();
                let per_core = row.outcome.stats().map_or(0.0, |s| s.throughput / c.max(0.01));
                row.note = Some(format!(
                    "{note} In this run the 64 tasks got {c:.2} of the machine's {} cores: {}/s per core.",
                    machine::cores(),
                    report::count(per_core)
                ));
            }
            row
        })
        .collect();
    Ok(Table { rows })
}

/// Prints a row as it is measured.
fn log_row(started: Instant, row: &Row) {
    let what = match &row.outcome {
        Outcome::Measured(s) => format!(
            "median {:>9}  p99 {:>9}  {:>7} {}/s  (n={})",
            report::duration(s.median),
            report::duration(s.p99),
            report::count(s.throughput),
            row.unit,
            s.samples
        ),
        Outcome::Memory(b) => format!("+{}", report::bytes(*b)),
        Outcome::Unreachable(w) => format!("unreachable: {w}"),
        Outcome::NotBuilt(w) => format!("not built: {w}"),
        Outcome::Failed(w) => format!("FAILED: {w}"),
    };
    eprintln!(
        "[{:>6.1}s] {:<8} {:<40} {what}",
        started.elapsed().as_secs_f64(),
        row.backend,
        row.operation
    );
}

struct Ctx {
    quick: bool,
    plan: Plan,
    entries: usize,
    origin: Origin,
    http: RawHttp,
    rows: Vec<Row>,
    /// Cores the 64-task measurement got, per backend.
    cores: Vec<(String, f64)>,
    started: Instant,
}

impl Ctx {
    fn log(&self, backend: &str, op: &str, what: &str) {
        eprintln!(
            "[{:>6.1}s] {backend:<8} {op:<40} {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn push(&mut self, row: Row) {
        log_row(self.started, &row);
        self.rows.push(row);
    }

    /// Pushes a row from a measurement's result.
    fn record(
        &mut self,
        op: impl Into<String>,
        backend: &str,
        result: Result<Stats>,
    ) -> Option<Stats> {
        let op = op.into();
        let (outcome, stats) = match result {
            Ok(s) => (Outcome::Measured(s.clone()), Some(s)),
            Err(e) => (Outcome::Failed(e.to_string()), None),
        };
        let unit = match op.as_str() {
            GET_MANY | PUT_MANY => "entry",
            o if [COUNT, CLEAR, SCAN].iter().any(|p| o.starts_with(p)) => "entry",
            o if ["CachedSession", "hyper", "CacheLayer", "reqwest", "proxy"]
                .iter()
                .any(|p| o.starts_with(p)) =>
            {
                "req"
            }
            _ => "op",
        };
        let mut row = Row::new(op, backend, outcome).unit(unit);
        row.baseline = baseline_of(&row.operation, backend);
        self.push(row);
        stats
    }

    /// Like [`record`](Self::record), with the baseline median measured in
    /// turns with it.
    fn record_paired(
        &mut self,
        op: impl Into<String>,
        backend: &str,
        result: Result<Stats>,
        paired: Option<Duration>,
    ) -> Option<Stats> {
        let stats = self.record(op, backend, result);
        if let (Some(row), Some(p)) = (self.rows.last_mut(), paired)
            && row.baseline.is_some()
        {
            row.paired = Some(p);
        }
        stats
    }

    fn fail_all(&mut self, ops: &[String], backend: &str, why: &str) {
        for op in ops {
            self.push(Row::new(
                op.clone(),
                backend,
                Outcome::Failed(why.to_owned()),
            ));
        }
    }

    /// Every row a backend has (for `unreachable` and `not built`).
    fn backend_ops(&self, _kind: BackendKind) -> Vec<String> {
        let mut ops = vec![sized(GET_HIT, Size::Small), sized(GET_HIT, Size::Large)];
        ops.extend([PUT, GET_MANY, PUT_MANY, LEASE].map(str::to_owned));
        ops.extend(self.large_ops());
        ops.extend(
            [HTTP_HIT, HTTP_CONCURRENT, HTTP_MISS, HTTP_MISS_XP, HTTP_304].map(str::to_owned),
        );
        ops
    }

    fn large_ops(&self) -> Vec<String> {
        let n = thousands(self.entries);
        vec![
            format!("{COUNT} of {n}"),
            format!("{CLEAR} of {n}"),
            format!("{SCAN} {n}"),
            format!("{SCAN_MEMORY}, {n}"),
        ]
    }

    async fn raw_http(&mut self) {
        let http = self.http.clone();
        let url = self.origin.url("/raw");
        let r = measure::measure(self.plan, 1, |_| {
            let (http, url) = (&http, &url);
            async move { http.get(url, &[], 200).await.map(drop) }
        })
        .await;
        self.record(RAW_HTTP, RAW, r);
        let url = self.origin.url("/etag/raw");
        let r = measure::measure(self.plan, 1, |_| {
            let (http, url) = (&http, &url);
            async move {
                http.get(url, &[("if-none-match", ETAG)], 304)
                    .await
                    .map(drop)
            }
        })
        .await;
        self.record(RAW_HTTP_304, RAW, r);
    }

    async fn backend(&mut self, c: &Connected) {
        let name = c.kind.name();
        let cache = match data::run_cache_name(name) {
            Ok(n) => n,
            Err(e) => return self.fail_all(&self.backend_ops(c.kind), name, &e.to_string()),
        };
        self.reads(c, &cache).await;
        self.writes(c, &cache).await;
        self.large(c, &cache).await;
        for repo in [
            "hits",
            "writes",
            Large::REPOSITORY,
            "http",
            "http_redirects",
        ] {
            if let Ok(repo) = Name::new(repo)
                && let Err(e) = c.backend.drop_store(&cache, &repo).await
            {
                self.log(name, "cleanup", &format!("drop_store({repo}): {e}"));
            }
        }
        if let Err(e) = c.backend.close().await {
            self.log(name, "cleanup", &format!("close: {e}"));
        }
    }

    /// Rounds per interleaved measurement.
    fn rounds(&self) -> u32 {
        if self.quick { 8 } else { 20 }
    }

    async fn writes(&mut self, c: &Connected, cache: &Name) {
        let name = c.kind.name();
        let writes = match Writes::seed(c.backend.as_ref(), cache).await {
            Ok(w) => w,
            Err(e) => {
                let ops = [PUT, GET_MANY, PUT_MANY, LEASE].map(str::to_owned);
                return self.fail_all(&ops, name, &e.to_string());
            }
        };
        let r = measure::measure(self.plan, 1, |i| writes.put(writes.entry(i))).await;
        self.record(PUT, name, r);
        let batch = Plan::batch(self.quick);
        let r = measure::measure(batch, 1_000, |_| writes.get_many()).await;
        self.record(GET_MANY, name, r);
        let r = measure::measure_with_setup(
            batch,
            1_000,
            |_| {
                let b = writes.batch();
                async move { Ok(b) }
            },
            |_, b| writes.put_many(b),
        )
        .await;
        self.record(PUT_MANY, name, r);
        // What a miss pays for cross-process single flight: take a free
        // lease, then release it.
        let r = measure::measure(self.plan, 1, |i| writes.lease(i)).await;
        self.record(LEASE, name, r);
    }

    async fn large(&mut self, c: &Connected, cache: &Name) {
        let name = c.kind.name();
        let ops = self.large_ops();
        let t0 = Instant::now();
        let large = match Large::seed(c.backend.as_ref(), cache, self.entries).await {
            Ok(l) => l,
            Err(e) => return self.fail_all(&ops, name, &format!("seeding: {e}")),
        };
        let seeded = t0.elapsed();
        self.log(
            name,
            &format!("seeded {} entries", thousands(self.entries)),
            &format!(
                "{:.1} s ({}/s)",
                seeded.as_secs_f64(),
                report::count(self.entries as f64 / seeded.as_secs_f64())
            ),
        );
        let heavy = Plan::heavy(self.quick);
        let n = large.len() as u64;
        let r = measure::measure(heavy, n, |_| large.count_fresh()).await;
        self.record(ops[0].clone(), name, r);
        let (memory, child_scan) = self.scan_memory(c, cache).await;
        // Quick: the fresh process's one scan is the scan's sample.
        let r = match child_scan {
            Some(d) if self.quick => {
                Stats::from_times(vec![d], n, d).ok_or_else(|| "no sample".into())
            }
            _ => measure::measure(heavy, n, |_| async { large.scan().await.map(drop) }).await,
        };
        self.record(ops[2].clone(), name, r);
        self.push(Row::new(ops[3].clone(), name, memory).unit("entry"));
        let expired = large.expired_len() as u64;
        let r = measure::measure_with_setup(
            heavy,
            expired,
            |_| large.restore_expired(),
            |_, ()| large.clear_expired(),
        )
        .await;
        self.record(ops[1].clone(), name, r);
    }

    /// Scans the large store in a fresh process (the memory store is
    /// filled there, as it lives in one process only) and returns its peak
    /// resident growth, and how long the scan took.
    async fn scan_memory(&self, c: &Connected, cache: &Name) -> (Outcome, Option<Duration>) {
        let result = async {
            let exe = std::env::current_exe()?;
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg("scan-child")
                .args(["--backend", c.kind.name()])
                .args(["--cache", cache.as_str()])
                .args(["--entries", &self.entries.to_string()]);
            if let Some(location) = &c.location {
                cmd.args(["--location", location]);
            }
            let out = cmd.output().await?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                return Err(format!(
                    "scan-child failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            let field = |name: &str| -> Result<u64> {
                let v = stdout
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                    .ok_or_else(|| format!("scan-child said {stdout:?}"))?;
                Ok(v.parse()?)
            };
            let (before, peak) = (field("rss_before")?, field("peak")?);
            self.log(
                c.kind.name(),
                "scan in a fresh process",
                &format!(
                    "{} entries, {:.0} ms, RSS {} → peak {}",
                    field("entries")?,
                    field("ns")? as f64 / 1e6,
                    report::bytes(before),
                    report::bytes(peak)
                ),
            );
            Ok::<_, BoxError>((
                peak.saturating_sub(before),
                Duration::from_nanos(field("ns")?),
            ))
        }
        .await;
        match result {
            Ok((b, d)) => (Outcome::Memory(b), Some(d)),
            Err(e) => (Outcome::Failed(e.to_string()), None),
        }
    }
}

/// The results of one hit family: the raw rows, the `get`, the
/// `CachedSession` hit.
struct Family {
    raws: Vec<(String, Result<Stats>)>,
    get: Result<Stats>,
    hit: Result<Stats>,
}

impl Family {
    /// Every row failed because the raw baseline `raw` could not be set up.
    fn no_baseline(raw: String, e: BoxError) -> Family {
        Family {
            raws: vec![(raw, Err(e))],
            get: Err("no baseline".into()),
            hit: Err("no baseline".into()),
        }
    }
}

/// Splits interleaved results `[raw..., get, hit]` into the raw rows named
/// `raw_names`, the `get` and the `CachedSession` hit (absent: an error).
fn split(result: Result<Vec<Stats>>, raw_names: &[&str]) -> Family {
    match result {
        Ok(mut stats) => {
            let rest = stats.split_off(raw_names.len().min(stats.len()));
            let raws = raw_names
                .iter()
                .map(|n| (*n).to_owned())
                .zip(stats.into_iter().map(Ok))
                .collect();
            let mut rest = rest.into_iter();
            let get = rest.next().ok_or_else(|| BoxError::from("no get"));
            let hit = rest.next().ok_or_else(|| BoxError::from("no hit"));
            Family { raws, get, hit }
        }
        Err(e) => {
            let msg = e.to_string();
            let err = || Err(BoxError::from(msg.clone()));
            Family {
                raws: raw_names.iter().map(|n| ((*n).to_owned(), err())).collect(),
                get: err(),
                hit: err(),
            }
        }
    }
}

/// Splits interleaved results `[raw, subject]` into the raw median and the
/// subject's result.
fn pair(result: Result<Vec<Stats>>) -> (Option<Duration>, Result<Stats>) {
    match result {
        Ok(stats) => match <[Stats; 2]>::try_from(stats) {
            Ok([raw, subject]) => (Some(raw.median), Ok(subject)),
            Err(_) => (None, Err("wrong number of results".into())),
        },
        Err(e) => (None, Err(e)),
    }
}

/// The raw baseline row a row is compared with.
fn baseline_of(op: &str, backend: &str) -> Option<String> {
    let raw = match backend {
        "sqlite" => RAW_SQLITE,
        "fs" => RAW_FILE,
        "redis" => RAW_REDIS,
        _ => "",
    };
    match op {
        HTTP_MISS => Some(RAW_HTTP.to_owned()),
        HTTP_304 => Some(RAW_HTTP_304.to_owned()),
        HTTP_HIT if !raw.is_empty() => Some(sized(raw, Size::Small)),
        op if op.starts_with(GET_HIT) && !raw.is_empty() => {
            let size = if op.ends_with(Size::Large.label()) {
                Size::Large
            } else {
                Size::Small
            };
            Some(sized(raw, size))
        }
        _ => None,
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The child side of [`Ctx::scan_memory`]: connect, open (or, for memory,
/// fill) the large store, reset the peak, scan once, report.
async fn scan_child(
    backend: &str,
    location: Option<&str>,
    cache: &str,
    entries: usize,
) -> Result<String> {
    let kind = BackendKind::parse(backend).ok_or_else(|| format!("unknown backend {backend:?}"))?;
    let connected = backends::connect_at(kind, location).await?;
    let cache = Name::new(cache)?;
    let large = if kind == BackendKind::Memory {
        Large::seed(connected.backend.as_ref(), &cache, entries).await?
    } else {
        Large::open(connected.backend.as_ref(), &cache, entries).await?
    };
    rss::reset_peak()?;
    let before = rss::resident()?;
    let t0 = Instant::now();
    let (seen, _bytes) = large.scan().await?;
    let ns = t0.elapsed().as_nanos();
    let after = rss::resident()?;
    Ok(format!(
        "scan-child entries={seen} ns={ns} rss_before={} peak={}",
        before.current, after.peak
    ))
}

/// `stats`, unless `sent` hits reached the origin.
fn no_origin(stats: Stats, sent: u64) -> Result<Stats> {
    if sent == 0 {
        Ok(stats)
    } else {
        Err(format!("{sent} hits reached the origin").into())
    }
}

fn no_origin_all(stats: Vec<Stats>, sent: u64) -> Result<Vec<Stats>> {
    if sent == 0 {
        Ok(stats)
    } else {
        Err(format!("{sent} hits reached the origin").into())
    }
}
