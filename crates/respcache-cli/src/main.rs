//! `respcache`: inspect and manage respcache caches from the command line.
//!
//! The `respcache-cli` package, with the features of the backends it should
//! reach (`sqlite` and `fs` by default): `cargo install respcache-cli`, or
//! `cargo install respcache-cli --features full` for every backend.
//!
//! # Naming a cache
//!
//! Every subcommand works on one cache in one backend, named by a URL:
//! the backend URL as [`respcache::connect`] takes it, plus two parameters
//! the command takes out before connecting:
//!
//! - `cache=NAME`: the cache (required, here or as `--name NAME`; both, and
//!   different, is an error). The HTTP client's default cache is `http_cache`.
//! - `retention=7d`: how long backends with native expiry keep stale
//!   entries the command writes (`copy`); a humantime duration.
//!
//! ```text
//! respcache stats --cache 'sqlite:///var/cache/app/cache.sqlite?cache=spotify'
//! respcache stats --cache redis://127.0.0.1:6379/0 --name spotify
//! ```
//!
//! A scheme whose backend this build lacks is an error naming the Cargo
//! feature to enable (`"mongodb://…" needs the `mongodb` feature…`).
//!
//! # Subcommands
//!
//! - `stats [--repository R]... [--json]`: per repository, `ENTRIES`,
//!   `FRESH`, `STALE` and `BYTES` (payload + HTTP metadata sizes, not the
//!   backend's own overhead), then a `total` row; one scan per repository.
//! - `ls [REPOSITORY] [--stale|--fresh] [--json]`: one row per entry —
//!   `REPOSITORY STATUS CACHED_AT EXPIRES_AT BYTES KEY NAME/URL` — sorted by
//!   repository and key. `KEY` is the encoded key (`Key::encode()`) that
//!   `show` takes; `NAME/URL` is the URL the HTTP layer recorded, else the
//!   entry's name, else `-`. Times are RFC 3339 UTC.
//! - `show KEY|URL [--repository R] [--json|--payload]`: one entry in full.
//!   A KEY is looked up with `get` in every repository (or in `R`). A URL is
//!   matched, by a scan, against the URL the HTTP layer (`CachedClient`)
//!   recorded in each entry's metadata; entries saved through a
//!   `ResponseCache` record no URL and are shown by key. `--payload` writes
//!   the raw payload bytes. No match: exit code 1.
//! - `purge --expired | --older-than 7d | --url GLOB | --all
//!   [--repository R]... [--dry-run]`: removes the matching entries and
//!   prints a `REPOSITORY REMOVED` table (`WOULD_REMOVE` with `--dry-run`,
//!   which removes nothing). `--expired`, `--older-than` (cached longer ago
//!   than the duration) and `--url` (a glob on the recorded URL; `*` also
//!   matches `/`) combine: every given one must match. `--all` empties every
//!   repository; the repositories themselves stay.
//! - `copy SRC_URL DST_URL [--repository R]... [--batch N]
//!   [--schema REPO=FIELD:KIND,...]...`: copies every entry of the source
//!   cache, fresh and stale, with its times, name and metadata, into the
//!   destination (another backend, or another cache name), streaming
//!   `scan` into `put_many` batches of `N` (500). A progress bar is drawn on
//!   stderr when stdout is a terminal; a `REPOSITORY COPIED FRESH STALE`
//!   table and a summary line follow. Puts replace whole entries, so an
//!   interrupted copy is finished by running it again. The destination
//!   retention is its URL's `retention=`, else the source URL's. Writing to
//!   SQLite needs each repository's key fields: they come from the source
//!   when it records them (SQLite does), from the destination's existing
//!   store, from respcache's own repositories (`kv`, `http`,
//!   `http_redirects`), or from `--schema`.
//! - `serve --upstream URL [--listen 127.0.0.1:8080] [--shared]
//!   [--max-body-size BYTES] [--timeout 60s] [--max-connections N]
//!   [--header-timeout D] [--idle-timeout D] [--body-timeout D]
//!   [--buffer-budget BYTES] [--metrics ADDR] [--workers N]`: a caching
//!   reverse proxy, on `--workers` threads (default: half the cores, at
//!   least one), in
//!   front of `URL`, on the HTTP layer (`CachedClient`): every method,
//!   body and end-to-end header is forwarded (hop-by-hop ones are not),
//!   redirects are passed back, answers are cached by the HTTP rules alone
//!   (private cache, or shared with `--shared`) and carry a `Cache-Status`
//!   header; a failing upstream gives 502 (504 after `--timeout`) unless a
//!   stale answer may stand in. Only bodies the cache needs whole are held
//!   in memory: GET/HEAD request bodies (over `--max-body-size`: 413) and
//!   storable responses up to that size; everything else streams. Hardened
//!   for exposure: paths are normalised and never leave the upstream's
//!   base path (400); one `Host` on HTTP/1.1 (400); no `CONNECT` (501);
//!   `OPTIONS *` answered locally; `--max-connections` (1024, or what
//!   the open-file limit leaves room for),
//!   `--header-timeout` (10s), `--idle-timeout` (60s), `--body-timeout`
//!   (30s, 408) and a shared `--buffer-budget` (256 MiB; over it request
//!   bodies get 503, responses go unstored). One line on start names the
//!   address, upstream and cache; SIGINT (Ctrl-C) or SIGTERM stops it
//!   cleanly (exit code 0). The cache file is created if missing. With
//!   `--metrics 127.0.0.1:9100`, `GET /metrics` on that address gives the
//!   cache's counters and histograms in Prometheus text form
//!   (`respcache_http_*`: requests by outcome, stored, not stored by
//!   reason, cache errors, circuit breaker, store and origin latency).
//!
//! `--json` prints one JSON object per line. Errors are one line,
//! `error: …`, on stderr, with passwords and secret-looking query
//! parameters of the command line's URLs redacted; exit codes are 0
//! (success), 1 (error, or nothing found by `show`) and 2 (bad usage).
//! Closing stdout early (`respcache ls | head`) ends the command quietly.

mod args;
mod cache;
mod copy;
mod failure;
mod location;
mod ls;
mod metrics;
mod purge;
mod redact;
mod schema;
mod serve;
mod show;
mod stats;
mod table;
mod trim;
mod view;
mod when;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::cache::Cache;
use crate::failure::{CliResult, Failure, one_line};
use crate::location::Location;

fn main() -> ExitCode {
    let cli = Cli::parse();
    redact::install(&cli.command.urls());
    let mut builder = match cli.command.threads() {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(Failure::new(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

/// Prints a failure as one line and picks the exit code.
fn report(failure: Failure) -> ExitCode {
    match failure {
        Failure::BrokenPipe => ExitCode::SUCCESS,
        Failure::Error(message) => {
            let message = redact::scrub(&message);
            let _ = writeln!(io::stderr(), "error: {}", one_line(&message));
            ExitCode::FAILURE
        }
    }
}

/// Prints a remark that is not an error on stderr.
pub(crate) fn note(message: &str) {
    let message = redact::scrub(message);
    let _ = writeln!(io::stderr(), "note: {}", one_line(&message));
}

async fn run(cli: Cli) -> CliResult<()> {
    let mut out = BufWriter::new(io::stdout());
    match cli.command.cache_args() {
        None => {
            if let Command::Copy(args) = &cli.command {
                copy::run(args, &mut out).await?;
            }
        }
        Some(cache_args) => {
            let location = Location::parse(&cache_args.url, cache_args.name.as_deref())?;
            // `serve` connects (and creates) its cache itself, starting
            // degraded when the backend is down; the others must not
            // invent a cache, and need it now.
            if let Command::Serve(args) = &cli.command {
                serve::run(&location, args, &mut out).await?;
                out.flush()?;
                return Ok(());
            }
            let cache = Cache::connect(location, true).await?;
            let result = match &cli.command {
                Command::Stats(args) => stats::run(&cache, args, &mut out).await,
                Command::Ls(args) => ls::run(&cache, args, &mut out).await,
                Command::Show(args) => show::run(&cache, args, &mut out).await,
                Command::Purge(args) => purge::run(&cache, args, &mut out).await,
                Command::Serve(_) | Command::Copy(_) => Ok(()),
            };
            let closed = cache.close().await;
            result.and(closed)?;
        }
    }
    out.flush()?;
    Ok(())
}
