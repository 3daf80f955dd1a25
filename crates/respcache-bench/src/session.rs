//! `CachedSession` paths against the local [`Origin`]: a hit, a miss that
//! is stored, a `304` revalidation, and hits from many tasks at once. Every
//! call checks how it was answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use respcache_core::{Backend, Name};
use respcache_http::{CacheOutcome, CachedSession};

use crate::Result;
use crate::data::SMALL;
use crate::origin::Origin;

/// How many distinct URLs the hit benchmarks cycle through (and how many
/// tasks the concurrent benchmark runs).
pub const HIT_URLS: u64 = 64;
/// How many distinct URLs the revalidation benchmark cycles through.
pub const ETAG_URLS: u64 = 16;

/// A `CachedSession` over one backend, with its URLs primed.
#[derive(Debug)]
pub struct Session {
    client: CachedSession,
    hit_urls: Vec<String>,
    etag_urls: Vec<String>,
    miss_prefix: String,
    misses: AtomicU64,
}

impl Session {
    /// Builds a session caching in `cache` of `backend`, and primes the hit
    /// and revalidation URLs (one origin request each).
    pub async fn new(backend: Arc<dyn Backend>, cache: &Name, origin: &Origin) -> Result<Session> {
        let client = CachedSession::builder()
            .cache_name(cache.as_str())
            .build(backend)
            .await?;
        let hit_urls: Vec<String> = (0..HIT_URLS)
            .map(|i| origin.url(&format!("/hit/{i}")))
            .collect();
        let etag_urls: Vec<String> = (0..ETAG_URLS)
            .map(|i| origin.url(&format!("/etag/{i}")))
            .collect();
        let session = Session {
            client,
            hit_urls,
            etag_urls,
            miss_prefix: origin.url(&format!("/miss/{}", cache.as_str())),
            misses: AtomicU64::new(0),
        };
        for url in session.hit_urls.iter().chain(&session.etag_urls) {
            let r = session.client.get(url).send().await?;
            expect(r.outcome(), CacheOutcome::Miss, url)?;
            if !r.cache_status().stored() {
                return Err(format!("GET {url} was not stored").into());
            }
        }
        Ok(session)
    }

    /// The client.
    pub fn client(&self) -> &CachedSession {
        &self.client
    }

    /// The URL run `i` of [`hit`](Self::hit) asks for.
    pub fn hit_url(&self, i: u64) -> &str {
        &self.hit_urls[(i % HIT_URLS) as usize]
    }

    /// One request answered from the cache (no origin request), 1 KiB body.
    pub async fn hit(&self, i: u64) -> Result<()> {
        let url = self.hit_url(i);
        let r = self.client.get(url).send().await?;
        expect(r.outcome(), CacheOutcome::Hit, url)?;
        body_len(r.bytes().len())
    }

    /// One request for a URL never asked before: the origin answers and the
    /// answer is stored.
    pub async fn miss_and_store(&self) -> Result<()> {
        let n = self.misses.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/{n}", self.miss_prefix);
        let r = self.client.get(&url).send().await?;
        expect(r.outcome(), CacheOutcome::Miss, &url)?;
        if !r.cache_status().stored() {
            return Err(format!("GET {url} was not stored").into());
        }
        body_len(r.bytes().len())
    }

    /// One request for a stored response that must be revalidated
    /// (`no-cache`): a conditional request, a `304`, the entry freshened
    /// and rewritten, the body from the cache.
    pub async fn revalidate(&self, i: u64) -> Result<()> {
        let url = &self.etag_urls[(i % ETAG_URLS) as usize];
        let r = self.client.get(url).send().await?;
        expect(r.outcome(), CacheOutcome::Revalidated, url)?;
        body_len(r.bytes().len())
    }
}

fn expect(got: CacheOutcome, want: CacheOutcome, url: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("GET {url}: {}, wanted {}", got.as_str(), want.as_str()).into())
    }
}

/// `Ok` when a hit's body has the fixtures' small size (every front-end's
/// rows check their answers with it).
pub(crate) fn body_len(n: usize) -> Result<()> {
    if n == SMALL {
        Ok(())
    } else {
        Err(format!("a {n} B body, wanted {SMALL}").into())
    }
}

/// A client that only misses: every request is for a URL never asked
/// before, answered by the origin and stored. Built from any
/// `CachedClientBuilder`, so the same miss can be measured with and
/// without an option (`cross_process`).
#[derive(Debug)]
pub struct MissSession {
    client: CachedSession,
    prefix: String,
    misses: AtomicU64,
}

impl MissSession {
    /// `builder`'s client caching in `cache` of `backend`; its URLs are
    /// `/miss/<cache>/<tag>/<n>`.
    pub async fn new(
        builder: respcache_http::CachedClientBuilder,
        backend: Arc<dyn Backend>,
        cache: &Name,
        origin: &Origin,
        tag: &str,
    ) -> Result<MissSession> {
        let client = builder.cache_name(cache.as_str()).build(backend).await?;
        Ok(MissSession {
            client,
            prefix: origin.url(&format!("/miss/{}/{tag}", cache.as_str())),
            misses: AtomicU64::new(0),
        })
    }

    /// One request for a new URL: the origin answers and the answer is
    /// stored.
    pub async fn miss_and_store(&self) -> Result<()> {
        let n = self.misses.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/{n}", self.prefix);
        let r = self.client.get(&url).send().await?;
        expect(r.outcome(), CacheOutcome::Miss, &url)?;
        if !r.cache_status().stored() {
            return Err(format!("GET {url} was not stored").into());
        }
        body_len(r.bytes().len())
    }
}
