//! What the `respcache` command tests share: running the binary, reading
//! its tables and JSON lines, and a cache filled through the library.

// Each test binary uses a part of these; helpers assert, so a failed call
// is a failed test.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use respcache::{
    Backend, Entry, Key, KeyPart, ResponseCache, TemplateSettings, TextCodec, Timestamp,
};
use respcache_conformance::origin::{Origin, Reply};
use serde_json::Value;

pub const DAY: Duration = Duration::from_secs(86_400);
pub const HOUR: Duration = Duration::from_secs(3_600);

/// What a run of the command printed, and its exit code.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw: Vec<u8>,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "the command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts a one-line `error: ...` on stderr and exit code `code`;
    /// returns the line.
    #[track_caller]
    pub fn error(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "wrong exit code: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "the error is not one line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        assert!(!self.stderr.contains("backtrace"), "{self:#?}");
        lines[0]
    }
}

/// Runs `respcache ARGS...`.
pub fn respcache(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_respcache"))
        .args(args)
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the respcache binary runs");
    run_of(output)
}

pub fn run_of(output: Output) -> Run {
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        raw: output.stdout,
    }
}

/// The rows of a table (header dropped), cells split on whitespace.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    lines.next().expect("a header line");
    lines
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            !l.starts_with("copied ") && !l.starts_with("removed ") && !l.starts_with("dry run")
        })
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The header of a table, split on whitespace.
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `show`'s `label: value` lines as a map (the first entry's, when several).
pub fn shown(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// One JSON value per line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `stats` as repository -> [entries, fresh, stale, bytes], `total` included.
pub fn stats(url: &str) -> BTreeMap<String, [u64; 4]> {
    let run = respcache(&["stats", "--cache", url]);
    let out = run.ok();
    assert_eq!(
        header(out),
        ["REPOSITORY", "ENTRIES", "FRESH", "STALE", "BYTES"]
    );
    rows(out)
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), 5, "{r:?}");
            let n = |i: usize| r[i].parse::<u64>().expect("a number");
            (r[0].clone(), [n(1), n(2), n(3), n(4)])
        })
        .collect()
}

/// `ls --json` entries sorted by (repository, key), times and sizes included.
pub fn listing(url: &str) -> Vec<Value> {
    let mut entries = json_lines(respcache(&["ls", "--cache", url, "--json"]).ok());
    entries.sort_by_key(|e| (e["repository"].to_string(), e["key"].to_string()));
    entries
}

/// The payloads and names the fixture stores.
pub const TRACKS: [(&str, &str); 3] = [("a", "track a"), ("b", "track b"), ("c", "track c")];

/// What [`fill`] stored over HTTP: (path, body).
pub const PAGES_OVER_HTTP: [(&str, &str); 2] = [("/a/1", "alpha"), ("/b/2", "beta!")];

/// What [`fill`] stored.
pub struct Filled {
    /// The origin's base URL (`http://127.0.0.1:PORT`), gone after `fill`.
    pub origin: String,
    /// When the fill ran.
    pub now: Timestamp,
}

/// Fills `cache` in the backend at `backend_url` through the library:
///
/// - `tracks` (a `ResponseCache` repository, `/v1/tracks/{id}`, 1 h expiry,
///   named payloads): 3 fresh entries.
/// - `pages` (`/pages/{n:int}`), written through its store: page 1 cached
///   10 days ago and stale for 9, page 2 cached 2 days ago and stale for 1,
///   page 3 cached an hour ago, named "third", never stale.
/// - `http` and `http_redirects` (a `CachedClient` over a local origin
///   answering `max-age=3600`): 2 fresh responses with their URL.
pub fn fill(backend_url: &str, cache: &str) -> Filled {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let backend: Arc<dyn Backend> = respcache::connect(backend_url).await.expect("connect");
        let now = Timestamp::now();
        let responses = ResponseCache::<String>::builder(cache)
            .default_expiry(HOUR)
            .create_repository(
                TemplateSettings::new("tracks", "/v1/tracks/{id}", TextCodec)
                    .unwrap()
                    .with_name_of(|p: &String| Some(format!("Title of {p}"))),
            )
            .create_repository(TemplateSettings::new("pages", "/pages/{n:int}", TextCodec).unwrap())
            .connect(backend.clone())
            .await
            .expect("the response cache connects");
        for (id, payload) in TRACKS {
            let req =
                respcache::Request::get(&format!("https://api.example/v1/tracks/{id}")).unwrap();
            assert!(responses.save(&req, &payload.to_owned()).await.unwrap());
        }
        let page = |n: i64| Key::new("GET", [KeyPart::Int(n)]);
        let pages = responses.repository("pages").unwrap().store().clone();
        pages
            .put_many(vec![
                Entry::new(page(1), now.saturating_sub(10 * DAY), "page 1")
                    .with_expires_at(Some(now.saturating_sub(9 * DAY))),
                Entry::new(page(2), now.saturating_sub(2 * DAY), "page 2")
                    .with_expires_at(Some(now.saturating_sub(DAY))),
                Entry::new(page(3), now.saturating_sub(HOUR), "page 3").with_name("third"),
            ])
            .await
            .unwrap();

        let server = start_origin().await;
        let origin = server.url("");
        let client = respcache_http::CachedClient::builder()
            .cache_name(cache)
            .build(backend.clone())
            .await
            .expect("the HTTP client builds");
        for (path, body) in PAGES_OVER_HTTP {
            let r = client.get(&format!("{origin}{path}")).send().await.unwrap();
            assert_eq!(r.text(), body);
        }
        drop(client);
        responses.close().await.unwrap();
        backend.close().await.unwrap();
        drop(server);
        Filled { origin, now }
    })
}

/// A local HTTP origin answering every path with a body from
/// [`PAGES_OVER_HTTP`] (or the path) and `cache-control: max-age=3600`.
async fn start_origin() -> Origin {
    Origin::start(|seen| {
        let body = PAGES_OVER_HTTP
            .iter()
            .find(|(p, _)| *p == seen.path)
            .map_or(seen.path.clone(), |(_, b)| (*b).to_owned());
        Reply::ok(body)
            .header("cache-control", "max-age=3600")
            .header("content-type", "text/plain")
    })
    .await
}

/// A new SQLite file in a temporary folder: (folder guard, backend URL).
pub fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.sqlite").display());
    (dir, url)
}
