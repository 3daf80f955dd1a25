//! The command line, as clap reads it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Inspect and manage respcache caches: what is stored, how fresh it is,
/// purge entries, copy a whole cache to another backend, or serve one as a
/// caching reverse proxy.
#[derive(Debug, Parser)]
#[command(name = "respcache", version)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Per repository: entries, fresh, stale and bytes (payload + metadata).
    Stats(StatsArgs),
    /// List the stored entries: repository, status, times, size, key, name or URL.
    Ls(LsArgs),
    /// Show the entry under an encoded key, or the entries the HTTP layer stored for a URL.
    Show(ShowArgs),
    /// Remove entries: expired ones, old ones, by URL, or all.
    Purge(PurgeArgs),
    /// Copy every entry of a cache to another cache or backend (idempotent: re-run to finish).
    Copy(CopyArgs),
    /// Run a caching reverse proxy in front of one upstream (bodies stream;
    /// only bodies it may store, up to --max-body-size, are held in memory).
    Serve(ServeArgs),
}

impl Command {
    /// The cache the subcommand works on (`copy` names two, as arguments).
    pub(crate) fn cache_args(&self) -> Option<&CacheArgs> {
        match self {
            Command::Stats(a) => Some(&a.cache),
            Command::Ls(a) => Some(&a.cache),
            Command::Show(a) => Some(&a.cache),
            Command::Purge(a) => Some(&a.cache),
            Command::Serve(a) => Some(&a.cache),
            Command::Copy(_) => None,
        }
    }
}

/// The cache a subcommand works on.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// The backend URL, with the cache name as a parameter:
    /// sqlite:///var/cache/app.sqlite?cache=spotify, redis://127.0.0.1:6379/0?cache=spotify
    #[arg(long = "cache", id = "cache_url", value_name = "URL")]
    pub(crate) url: String,
    /// The cache name, for a URL without ?cache=NAME.
    #[arg(long, value_name = "CACHE")]
    pub(crate) name: Option<String>,
}

/// `stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Only this repository (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Vec<String>,
    /// One JSON object per repository and line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Only this repository.
    pub(crate) repository: Option<String>,
    /// Only stale entries.
    #[arg(long, conflicts_with = "fresh")]
    pub(crate) stale: bool,
    /// Only fresh entries.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// One JSON object per entry and line, in the order the backend returns them.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// An encoded key as `ls` prints it (3:GET|2:v1|5:track), or a URL the
    /// HTTP layer stored a response for.
    #[arg(value_name = "KEY|URL")]
    pub(crate) target: String,
    /// Look only in this repository.
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Option<String>,
    /// One JSON object per matching entry and line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the raw payload bytes of the (one) matching entry instead.
    #[arg(long, conflicts_with = "json")]
    pub(crate) payload: bool,
}

/// `purge`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("which")
        .required(true)
        .multiple(true)
        .args(["expired", "older_than", "url", "tag", "all", "to"])
))]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Entries that are stale now.
    #[arg(long)]
    pub(crate) expired: bool,
    /// Entries cached longer ago than this (7d, 12h, 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) older_than: Option<Duration>,
    /// Entries whose URL, as the HTTP layer recorded it, matches this glob
    /// (`*` also matches `/`): `'https://api.example.com/v1/*'`.
    #[arg(long, value_name = "GLOB")]
    pub(crate) url: Option<String>,
    /// Entries tagged TAG (by the HTTP layer, from a `Cache-Tag` or
    /// `Surrogate-Key` response header); alone, through each backend's tag
    /// index.
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Option<String>,
    /// Every entry (the repositories stay, empty).
    #[arg(long, conflicts_with_all = ["expired", "older_than", "url", "tag"])]
    pub(crate) all: bool,
    /// Trim the whole backend (every cache in the file or folder) to this
    /// size, least recently used entries first: 500MB, 1.5GiB, 64MiB.
    /// Local backends only (memory, sqlite, fs).
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = parse_size,
        conflicts_with_all = ["expired", "older_than", "url", "tag", "all", "repository", "dry_run"]
    )]
    pub(crate) to: Option<u64>,
    /// Only this repository (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Vec<String>,
    /// Count what would be removed, remove nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `copy`.
#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The cache to read: a backend URL with ?cache=NAME.
    #[arg(value_name = "SRC_URL")]
    pub(crate) src: String,
    /// The cache to write: a backend URL with ?cache=NAME (and
    /// &retention=7d for backends with native expiry; default: the
    /// source URL's retention).
    #[arg(value_name = "DST_URL")]
    pub(crate) dst: String,
    /// The cache name, for a URL without ?cache=NAME.
    #[arg(long, value_name = "CACHE")]
    pub(crate) name: Option<String>,
    /// Only this repository (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    pub(crate) repository: Vec<String>,
    /// Entries per write (put_many).
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: u32,
    /// The key fields of a repository whose source does not record them
    /// (needed when writing to SQLite from another backend):
    /// tracks=version:text,id:text (repeatable).
    #[arg(long, value_name = "REPO=FIELD:KIND,...")]
    pub(crate) schema: Vec<String>,
}

/// `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// The origin: `http://127.0.0.1:8000` or `https://api.example.com/v1`
    /// (each request's path and query are appended).
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: String,
    /// The address to listen on (port 0: any free port; the start line
    /// names the one taken).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Cache as a shared cache (s-maxage counts; private answers and
    /// answers to requests with credentials — Authorization, X-API-Key,
    /// api_key — are not reused unless public) instead of a
    /// private one. Use it when more than one user goes through the proxy:
    /// a private cache keys answers without their credentials.
    #[arg(long)]
    pub(crate) shared: bool,
    /// The largest response body stored (and so held in memory); larger
    /// ones stream through, not stored. Also the largest GET/HEAD request
    /// body (part of the cache key; larger: 413); other methods' bodies
    /// stream to the upstream whatever their size.
    #[arg(long, value_name = "BYTES", default_value_t = respcache_http::proxy::DEFAULT_MAX_BODY_SIZE)]
    pub(crate) max_body_size: usize,
    /// The time limit of each upstream request (then 504).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// The most client connections open at once; more wait in the
    /// listen backlog until one closes. Default: 1024, or less when the
    /// open-file limit (`ulimit -n`, raised to its hard limit on start)
    /// does not leave 64 descriptors for upstream connections and the
    /// cache besides.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: Option<u32>,
    /// How long a client may take to send a request head once it has
    /// started one (then the connection is closed).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub(crate) header_timeout: Duration,
    /// How long a connection may sit idle between requests, or a client
    /// leave an answer unread, before it is closed.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub(crate) idle_timeout: Duration,
    /// How long a client may take to send the whole body of a GET or HEAD
    /// request (read whole for the cache key; then 408).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub(crate) body_timeout: Duration,
    /// The most memory held at once by buffered bodies: GET/HEAD request
    /// bodies (over it: 503 with Retry-After) and response bodies read
    /// whole to be stored (over it: passed on unstored).
    #[arg(long, value_name = "BYTES", default_value_t = respcache_http::proxy::DEFAULT_BUFFER_BUDGET)]
    pub(crate) buffer_budget: usize,
    /// Serve the cache's metrics in Prometheus text form at
    /// http://ADDR/metrics (e.g. 127.0.0.1:9100; port 0: any free port,
    /// named in the start line).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
    /// The threads that serve connections. Default: half the cores, at
    /// least one (the rest is left to the cache's own threads and to
    /// clients on the same machine).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) workers: Option<u16>,
}

impl Command {
    /// The threads the command runs on: `serve`'s workers (default: half
    /// the cores, at least one); one for every other command (one job
    /// each).
    ///
    /// Why half: on the 2-core machine of the project's bench, where the
    /// load generator shares the cores, one worker answered 50 connections'
    /// hits with a p99 of 1.5–1.6 ms against 1.9–2.0 ms for two, at the same
    /// requests/s (SQLite: 2.1–2.3 ms against 3.0–4.3 ms); a proxy that
    /// shares its machine with clients, a SQLite writer thread or Redis does
    /// better leaving them cores.
    pub(crate) fn threads(&self) -> usize {
        match self {
            Command::Serve(a) => a.workers.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
                usize::from,
            ),
            _ => 1,
        }
    }

    /// The URLs given on the command line (their secrets are kept out of
    /// every message).
    pub(crate) fn urls(&self) -> Vec<&str> {
        match self {
            Command::Copy(a) => vec![a.src.as_str(), a.dst.as_str()],
            Command::Serve(a) => vec![a.cache.url.as_str(), a.upstream.as_str()],
            other => other
                .cache_args()
                .map(|c| c.url.as_str())
                .into_iter()
                .collect(),
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 7d, 12h, 30m)"))
}

/// A duration that is not zero (a zero time limit would close everything).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 10s, 500ms, 2m)"))?;
    if d.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(d)
}

/// A size: 500MB, 1.5GiB, 4096.
fn parse_size(text: &str) -> Result<u64, String> {
    respcache::size::parse_size(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
