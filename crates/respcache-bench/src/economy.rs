//! Storage-economy benchmarks: payload compression (ratio, cost per store
//! and per hit) and the cost of the SQLite budget on a hit.
//!
//! Bodies: a generated 1 KiB JSON document (an array of product objects
//! with varied ids, names and prices), a generated 100 KiB HTML page
//! (nested markup, links with distinct ids, text drawn from a 300-word
//! vocabulary), and — when the Rust toolchain's documentation is installed —
//! the first 100 KiB of a real page from it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use respcache_core::budget::Budget;
use respcache_core::compress::{self, Algorithm};
use respcache_core::economy::{Compression, EconomyBackend, EconomyOptions};
use respcache_core::{Backend, DynStore, Key, MemoryBackend, Name};
use respcache_sqlite::SqliteConfig;

use crate::data;
use crate::measure::{self, Plan, Stats};
use crate::report::{Outcome, Row, Target};
use crate::{BoxError, Result};

/// How many distinct keys the hit loops cycle through.
const KEYS: u64 = 100;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &str = "account action address album answer apple area article artist audio author \
    autumn avenue balance band basket battery beach bicycle bird birthday blanket board boat body \
    bottle bottom branch bread breakfast bridge brother budget building button cabinet cable cake \
    camera campaign candle capital captain card career carpet castle catalog ceiling center chair \
    channel chapter chart cheese chicken child chocolate church circle city class client clock \
    cloud coach coast coffee collar college color column comment company computer concert \
    contract corner cottage country county course cousin credit culture cup curtain customer \
    dance danger daughter debate decade degree delivery desert design desk detail device diamond \
    dinner direction doctor document dollar door dragon drawer dream dress driver editor \
    election energy engine entry episode estate evening event example factory family farmer \
    feature field figure film finger fishing flight floor flower forest fortune frame friend \
    future galaxy garage garden gate gift glass glove government grade grammar guitar habit \
    hammer harbor health heart highway history holiday horse hospital hotel house husband idea \
    image income index insect island jacket journal journey judge kettle keyboard kitchen knife \
    ladder language laptop lawyer leader lesson letter library license lift light lion list \
    lobby lunch machine magazine manager market master meadow medal member memory message metal \
    method middle minute mirror mission model moment monitor morning mother mountain movie music \
    nation needle network night notice novel number ocean office onion orange orchestra owner \
    packet painting palace paper parent park partner passage patient pattern payment pencil \
    people pepper period person phone photo piano picture pillow pilot planet player pocket \
    poem police pool portrait potato powder power present price printer problem product profile \
    program project prompt quarter question rabbit radio rainbow reader recipe record region \
    report result river road rocket room route salad sample scene school science screen season \
    secret sector session shadow shelf shirt shoulder signal silver singer sister skill sky \
    smile soup source speaker spirit spring square stage station stomach storage story street \
    student studio subject summer supply surface system table tablet teacher temple tennis \
    theory thunder ticket tiger timber title tomato tongue tooth topic tower track trade \
    traffic train travel treasure tree trial truck tunnel uncle union unit valley vehicle \
    version village violin visitor voice volume wagon wallet water weather wedding weekend \
    window winter woman wonder worker writer yard year youth zone";

/// A 1 KiB JSON document: an array of products (`size` bytes, about).
pub fn json_body(size: usize) -> Bytes {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut out = String::from("[");
    while out.len() + 120 < size {
        if out.len() > 1 {
            out.push(',');
        }
        let id = rng.next() % 1_000_000;
        let name = format!(
            "{} {}",
            words[rng.below(words.len())],
            words[rng.below(words.len())]
        );
        let price = (rng.next() % 100_000) as f64 / 100.0;
        out.push_str(&format!(
            "{{\"id\":{id},\"name\":\"{name}\",\"price\":{price},\"in_stock\":{},\"tags\":[\"{}\"]}}",
            rng.next().is_multiple_of(2),
            words[rng.below(words.len())]
        ));
    }
    out.push(']');
    Bytes::from(out)
}

/// A generated HTML page of `size` bytes.
pub fn html_body(size: usize) -> Bytes {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Catalog</title>\
         <link rel=\"stylesheet\" href=\"/static/site.css\"></head><body><main class=\"content\">",
    );
    while out.len() < size {
        let id = rng.next();
        out.push_str(&format!(
            "<article class=\"card card-{}\" id=\"item-{id:x}\"><h2><a href=\"/items/{id:x}\">",
            rng.below(8)
        ));
        for _ in 0..3 {
            out.push_str(words[rng.below(words.len())]);
            out.push(' ');
        }
        out.push_str("</a></h2><p>");
        for _ in 0..(12 + rng.below(30)) {
            out.push_str(words[rng.below(words.len())]);
            out.push(' ');
        }
        out.push_str(&format!(
            "</p><span class=\"price\">{}.{:02} EUR</span></article>\n",
            rng.next() % 500,
            rng.next() % 100
        ));
    }
    out.truncate(size);
    Bytes::from(out)
}

/// The first `size` bytes of a real HTML page from the installed Rust
/// documentation, if there is one.
pub fn real_html(size: usize) -> Option<(String, Bytes)> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))?;
    let toolchains = std::fs::read_dir(home.join("toolchains")).ok()?;
    for toolchain in toolchains.flatten() {
        let page = toolchain
            .path()
            .join("share/doc/rust/html/std/vec/struct.Vec.html");
        if let Ok(bytes) = std::fs::read(&page)
            && bytes.len() >= size
        {
            let shown = page
                .strip_prefix(toolchain.path())
                .map_or(page.clone(), PathBuf::from);
            return Some((
                shown.display().to_string(),
                Bytes::from(bytes).slice(..size),
            ));
        }
    }
    None
}

/// Compressing and decompressing one body, as the core's store wrapper
/// does (contexts reused per thread).
#[derive(Debug)]
pub struct Codec {
    /// The body.
    pub body: Bytes,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The body as stored.
    pub framed: Bytes,
}

impl Codec {
    /// Frames `body` once to know its stored form.
    pub fn new(body: Bytes, algorithm: Algorithm) -> Result<Self> {
        let framed = compress::frame(&body, Some(algorithm), 0);
        if !compress::is_compressed(&framed) {
            return Err(format!("{} did not compress the body", algorithm.name()).into());
        }
        Ok(Codec {
            body,
            algorithm,
            framed,
        })
    }

    /// The stored size.
    pub fn stored(&self) -> u64 {
        self.framed.len() as u64
    }

    /// Compresses the body.
    pub fn compress(&self) -> Result<()> {
        let out = compress::frame(&self.body, Some(self.algorithm), 0);
        if out.len() != self.framed.len() {
            return Err("compression is not deterministic".into());
        }
        Ok(())
    }

    /// Decompresses the stored body.
    pub fn decompress(&self) -> Result<()> {
        let out = compress::unframe(self.framed.clone());
        if out.len() != self.body.len() {
            return Err("decompressed to the wrong length".into());
        }
        Ok(())
    }
}

/// A store holding [`KEYS`] copies of one body, written through the core's
/// compression wrapper (or not), for hit and put loops.
#[derive(Debug)]
pub struct Bodies {
    store: Arc<DynStore>,
    keys: Vec<Key>,
    body: Bytes,
}

impl Bodies {
    /// Opens repository `repository` of `cache` on `backend` wrapped with
    /// `compression`, and stores the body under every key.
    pub async fn seed(
        backend: Arc<dyn Backend>,
        cache: &Name,
        repository: &str,
        compression: Option<Compression>,
        body: Bytes,
    ) -> Result<Bodies> {
        let mut options = EconomyOptions::default();
        if let Some(c) = compression {
            options = options.with_compression(c);
        }
        let wrapped = EconomyBackend::new(backend, options);
        let store = wrapped.open_store(&data::spec(cache, repository)?).await?;
        let keys: Vec<Key> = (0..KEYS).map(|i| data::key(repository, i)).collect();
        for key in &keys {
            store
                .put(data::fresh_entry(key.clone(), body.clone()))
                .await?;
        }
        Ok(Bodies { store, keys, body })
    }

    /// A hit; checks the body.
    pub async fn get(&self, i: u64) -> Result<()> {
        let key = &self.keys[(i % KEYS) as usize];
        match self.store.get(key).await? {
            Some(e) if e.payload.len() == self.body.len() => Ok(()),
            Some(_) => Err("a hit returned another body".into()),
            None => Err("a hit missed".into()),
        }
    }

    /// A store of the body.
    pub async fn put(&self, i: u64) -> Result<()> {
        let key = self.keys[(i % KEYS) as usize].clone();
        self.store
            .put(data::fresh_entry(key, self.body.clone()))
            .await?;
        Ok(())
    }
}

/// A memory backend (the cheapest store: what compression adds shows).
pub fn memory() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new())
}

/// A SQLite backend on a temporary file, with `budget`.
pub async fn sqlite(budget: Budget) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(
        SqliteConfig::temp().with_budget(budget).connect().await?,
    ))
}

/// Operation names of the economy rows.
pub mod ops {
    /// Compressing the 1 KiB JSON body.
    pub const COMPRESS_JSON: &str = "compress JSON 1 KB";
    /// Decompressing it.
    pub const DECOMPRESS_JSON: &str = "decompress JSON 1 KB";
    /// Compressing the 100 KiB HTML body.
    pub const COMPRESS_HTML: &str = "compress HTML 100 KB";
    /// Decompressing it.
    pub const DECOMPRESS_HTML: &str = "decompress HTML 100 KB";
    /// The stored size of the JSON body.
    pub const STORED_JSON: &str = "stored size, JSON 1 KB";
    /// The stored size of the HTML body.
    pub const STORED_HTML: &str = "stored size, HTML 100 KB";
    /// The stored size of the real HTML page.
    pub const STORED_REAL_HTML: &str = "stored size, real HTML 100 KB";
    /// A memory-store hit on the JSON body, stored plain.
    pub const HIT_JSON_PLAIN: &str = "hit JSON 1 KB, stored plain";
    /// The same, stored compressed.
    pub const HIT_JSON: &str = "hit JSON 1 KB, stored compressed";
    /// A memory-store put of the JSON body, plain.
    pub const PUT_JSON_PLAIN: &str = "put JSON 1 KB, plain";
    /// The same, compressed.
    pub const PUT_JSON: &str = "put JSON 1 KB, compressed";
    /// A memory-store hit on the HTML body, stored plain.
    pub const HIT_HTML_PLAIN: &str = "hit HTML 100 KB, stored plain";
    /// The same, stored compressed.
    pub const HIT_HTML: &str = "hit HTML 100 KB, stored compressed";
    /// A put of the HTML body, plain.
    pub const PUT_HTML_PLAIN: &str = "put HTML 100 KB, plain";
    /// The same, compressed.
    pub const PUT_HTML: &str = "put HTML 100 KB, compressed";
    /// A SQLite hit without a budget.
    pub const SQLITE_HIT_PLAIN: &str = "get hit 1 KB, no budget";
    /// A SQLite hit with a budget.
    pub const SQLITE_HIT_BUDGET: &str = "get hit 1 KB, budget on";
}

/// A measured row, or the failure as a row.
fn measured(op: &str, backend: &str, result: Result<Stats>) -> Row {
    match result {
        Ok(s) => Row::new(op, backend, Outcome::Measured(s)),
        Err(e) => Row::new(op, backend, Outcome::Failed(e.to_string())),
    }
}

/// `(plain, compared)` rows from an interleaved pair; the compared row is
/// judged against the plain one's median of the same run.
fn pair(plain: (&str, &str), compared: (&str, &str), result: Result<Vec<Stats>>) -> (Row, Row) {
    match result {
        Ok(mut stats) if stats.len() == 2 => {
            let second = stats
                .pop()
                .map_or_else(|| Outcome::Failed("no samples".into()), Outcome::Measured);
            let first = stats
                .pop()
                .map_or_else(|| Outcome::Failed("no samples".into()), Outcome::Measured);
            let median = first.stats().map(|s| s.median);
            let mut row = Row::new(compared.0, compared.1, second).baseline(plain.0);
            if let Some(m) = median {
                row = row.paired(m);
            }
            (Row::new(plain.0, plain.1, first), row)
        }
        Ok(_) => (
            Row::new(plain.0, plain.1, Outcome::Failed("no samples".into())),
            Row::new(compared.0, compared.1, Outcome::Failed("no samples".into())),
        ),
        Err(e) => (
            Row::new(plain.0, plain.1, Outcome::Failed(e.to_string())),
            Row::new(compared.0, compared.1, Outcome::Failed(e.to_string())),
        ),
    }
}

/// Every economy row: codec costs and ratios for zstd and lz4, the cost
/// compression adds to a memory-store hit and put, and what the SQLite
/// budget adds to a hit. `log` hears each row as it is made.
pub async fn rows(plan: Plan, mut log: impl FnMut(&Row)) -> Vec<Row> {
    use std::time::Duration;
    let mut out = Vec::new();
    let mut push = |row: Row, out: &mut Vec<Row>| {
        log(&row);
        out.push(row);
    };
    let json = json_body(data::SMALL);
    let html = html_body(data::LARGE);
    let real = real_html(data::LARGE);
    let cache = match data::run_cache_name("economy") {
        Ok(c) => c,
        Err(e) => {
            push(
                Row::new("economy", "-", Outcome::Failed(e.to_string())),
                &mut out,
            );
            return out;
        }
    };
    for algorithm in [Algorithm::Zstd, Algorithm::Lz4, Algorithm::Auto] {
        let name = algorithm.name();
        for (body, compress_op, decompress_op, stored_op) in [
            (
                &json,
                ops::COMPRESS_JSON,
                ops::DECOMPRESS_JSON,
                ops::STORED_JSON,
            ),
            (
                &html,
                ops::COMPRESS_HTML,
                ops::DECOMPRESS_HTML,
                ops::STORED_HTML,
            ),
        ] {
            match Codec::new(body.clone(), algorithm) {
                Ok(codec) => {
                    let c = measure::measure(plan, 1, |_| {
                        let r = codec.compress();
                        async move { r }
                    })
                    .await;
                    push(measured(compress_op, name, c), &mut out);
                    let d = measure::measure(plan, 1, |_| {
                        let r = codec.decompress();
                        async move { r }
                    })
                    .await;
                    push(measured(decompress_op, name, d), &mut out);
                    let ratio = body.len() as f64 / codec.stored() as f64;
                    let label = format!("{stored_op} ({} B): {ratio:.2}× smaller", body.len());
                    let mut row = Row::new(label, name, Outcome::Memory(codec.stored()))
                        .note("the stored size must be at most a third of the body");
                    if stored_op == ops::STORED_HTML {
                        row = row.target(Target::MemoryAtMost(body.len() as u64 / 3));
                    }
                    push(row, &mut out);
                }
                Err(e) => push(
                    Row::new(compress_op, name, Outcome::Failed(e.to_string())),
                    &mut out,
                ),
            }
        }
        if let Some((page, body)) = &real
            && let Ok(codec) = Codec::new(body.clone(), algorithm)
        {
            let ratio = body.len() as f64 / codec.stored() as f64;
            let label = format!(
                "{} ({} B of {page}): {ratio:.2}× smaller",
                ops::STORED_REAL_HTML,
                body.len()
            );
            push(
                Row::new(label, name, Outcome::Memory(codec.stored()))
                    .target(Target::MemoryAtMost(body.len() as u64 / 3))
                    .note("the stored size must be at most a third of the body"),
                &mut out,
            );
        }
        // What compression adds to a hit and a store (memory store: the
        // cheapest, so the added cost shows whole).
        // Every body compressed, whatever its size: these rows measure the
        // compressed path.
        let compression = Compression::new(algorithm).with_min_size(0);
        let backend = memory();
        for (body, tag, hit_plain, hit, put_plain, put) in [
            (
                &json,
                "json",
                ops::HIT_JSON_PLAIN,
                ops::HIT_JSON,
                ops::PUT_JSON_PLAIN,
                ops::PUT_JSON,
            ),
            (
                &html,
                "html",
                ops::HIT_HTML_PLAIN,
                ops::HIT_HTML,
                ops::PUT_HTML_PLAIN,
                ops::PUT_HTML,
            ),
        ] {
            let seeded = async {
                let plain = Bodies::seed(
                    backend.clone(),
                    &cache,
                    &format!("{tag}-plain-{name}"),
                    None,
                    body.clone(),
                )
                .await?;
                let packed = Bodies::seed(
                    backend.clone(),
                    &cache,
                    &format!("{tag}-{name}"),
                    Some(compression),
                    body.clone(),
                )
                .await?;
                Ok::<_, BoxError>((plain, packed))
            }
            .await;
            let (plain, packed) = match seeded {
                Ok(p) => p,
                Err(e) => {
                    push(
                        Row::new(hit, name, Outcome::Failed(e.to_string())),
                        &mut out,
                    );
                    continue;
                }
            };
            let with = format!("memory+{name}");
            let hits =
                measure::measure_interleaved(plan, 10, (|i| plain.get(i), |i| packed.get(i))).await;
            let plain_hit = format!("{hit_plain} (paired with {name})");
            let (a, mut b) = pair((&plain_hit, "memory"), (hit, &with), hits);
            if hit == ops::HIT_JSON {
                b = b
                    .target(Target::AddedAtMost(Duration::from_micros(1)))
                    .note(
                        "a hit decompresses the body: compare the decompress row of the same codec",
                    );
            }
            push(a, &mut out);
            push(b, &mut out);
            let puts =
                measure::measure_interleaved(plan, 10, (|i| plain.put(i), |i| packed.put(i))).await;
            let plain_put = format!("{put_plain} (paired with {name})");
            let (a, b) = pair((&plain_put, "memory"), (put, &with), puts);
            push(a, &mut out);
            push(b, &mut out);
        }
    }
    // The SQLite budget on a hit: hits record their row in memory.
    let sqlite_pair = async {
        let plain = Bodies::seed(
            sqlite(Budget::NONE).await?,
            &cache,
            "hits",
            None,
            json.clone(),
        )
        .await?;
        let bounded = Bodies::seed(
            sqlite(Budget::bytes(1 << 30)).await?,
            &cache,
            "hits",
            None,
            json.clone(),
        )
        .await?;
        Ok::<_, BoxError>((plain, bounded))
    }
    .await;
    match sqlite_pair {
        Ok((plain, bounded)) => {
            let hits =
                measure::measure_interleaved(plan, 10, (|i| plain.get(i), |i| bounded.get(i)))
                    .await;
            let (a, b) = pair(
                (ops::SQLITE_HIT_PLAIN, "sqlite"),
                (ops::SQLITE_HIT_BUDGET, "sqlite"),
                hits,
            );
            push(a, &mut out);
            push(
                b.target(Target::RatioAtMost(1.10)).note(
                    "a hit with a budget records its row in a set (one mutex, one insert); \
                     the use times are written in batches by the writer thread",
                ),
                &mut out,
            );
        }
        Err(e) => push(
            Row::new(
                ops::SQLITE_HIT_BUDGET,
                "sqlite",
                Outcome::Failed(e.to_string()),
            ),
            &mut out,
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_sizes_asked_for_and_compress() -> Result<()> {
        let json = json_body(1024);
        assert!((900..=1024).contains(&json.len()), "{}", json.len());
        assert!(serde_json_valid(&json));
        let html = html_body(100 * 1024);
        assert_eq!(html.len(), 100 * 1024);
        for algorithm in [Algorithm::Zstd, Algorithm::Lz4, Algorithm::Auto] {
            let c = Codec::new(html.clone(), algorithm)?;
            c.compress()?;
            c.decompress()?;
        }
        Ok(())
    }

    fn serde_json_valid(bytes: &[u8]) -> bool {
        bytes.first() == Some(&b'[') && bytes.last() == Some(&b']')
    }
}
