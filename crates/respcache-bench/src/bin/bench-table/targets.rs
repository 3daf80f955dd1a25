//! The targets of the issues on the rows they concern, and the notes printed
//! under the table for the rows that miss them.

use super::*;

/// The targets, on the rows they concern. The hit targets apply
/// to both levels: the store's `get` (what the backend adds to its raw
/// read) and the `CachedSession` hit (what a program sees).
pub(crate) fn with_targets(row: Row, scan_bound: u64) -> Row {
    let us = Duration::from_micros;
    let store_hit = row.operation == sized(GET_HIT, Size::Small);
    let http_hit = row.operation == HTTP_HIT;
    let level_note = |store: &'static str, http: &'static str| if store_hit { store } else { http };
    match (row.operation.as_str(), row.backend.as_str()) {
        (_, "sqlite") if store_hit || http_hit => row
            .target(Target::MedianAtMost(us(8)))
            .target(Target::RatioAtMost(3.0))
            .note(level_note(notes::STORE_HIT, notes::HTTP_HIT)),
        (_, "redis") if store_hit || http_hit => row
            .target(Target::RatioAtMost(1.3))
            .note(level_note(notes::STORE_HIT, notes::HTTP_HIT_REDIS)),
        (_, "fs") if store_hit || http_hit => row
            .target(Target::RatioAtMost(2.0))
            .note(level_note(notes::STORE_HIT, notes::HTTP_HIT)),
        (_, "memory") if store_hit || http_hit => row
            .target(Target::MedianAtMost(us(2)))
            .note(level_note(notes::STORE_HIT, notes::HTTP_HIT)),
        (HTTP_CONCURRENT, "sqlite") => row
            .target(Target::ThroughputAtLeast(250_000.0))
            .note(notes::SQLITE_CONCURRENT),
        (HTTP_MISS, "memory") => row.target(Target::AddedAtMost(us(15))).note(notes::MISS),
        (HTTP_MISS, "sqlite") => row.target(Target::AddedAtMost(us(25))).note(notes::MISS),
        (PUT_MANY, "sqlite") => row
            .target(Target::ThroughputAtLeast(100_000.0))
            .note(notes::SQLITE_PUT_MANY),
        (op, _) if op.starts_with(SCAN_MEMORY) => row
            .target(Target::MemoryAtMost(scan_bound))
            .note(notes::SCAN_MEMORY),
        _ => row,
    }
}

/// Why a target is missed and what would reach it, printed under the table
/// for MISS rows. From profiles of this workspace on the project's 2-core
/// VM (`perf record --call-graph dwarf` on the 64-task hit loop, memory
/// backend); the README's "Performance" section and ARCHITECTURE.md have
/// the details.
pub(crate) mod notes {
    pub(crate) const STORE_HIT: &str = "the store's own read path: compare with its raw baseline on the same run; profile with `perf record --call-graph dwarf` on `bench-table --backends <name>`.";
    pub(crate) const HTTP_HIT: &str = "the HTTP layer's CPU per hit comes on top of the store's read. Callgrind (`cargo run --release -p respcache-reqwest --example hit_profile -- client N memory`, the difference of two N, 2026-12-07): ~13.1k instructions per CachedClient hit (34.9k before the body check moved to XXH3, keys became shared pointers, the request and the lookup's find were boxed and URLs, Cache-Control values and decoded stored heads came from per-thread memos). The largest parts left: malloc/free of about 18 allocations ~2.2k, futures and responses moved ~1.7k (memcpy), the request digest (BLAKE3 + hex) ~1.3k, the body check (XXH3 of 1 KiB) ~0.8k, the stored head's header map cloned from the memo ~0.6k. On fs the store's get alone is ~1.8× a std::fs::read: the HTTP hit reaches 2× only if the HTTP layer costs under ~0.4 µs.";
    pub(crate) const HTTP_HIT_REDIS: &str = "a hit is one GET round trip plus ~1.7 µs of HTTP-layer CPU; on loopback the round trip is 15–70 µs depending on how loaded the machine is, so the ratio swings.";
    pub(crate) const SQLITE_CONCURRENT: &str = "throughput is cores × (1 / CPU per hit): at ~3.6 µs of CPU per hit, 250k hits/s needs 0.9 free cores, and the machine is shared (the count below says how many cores this run got). On SQLite the 64 tasks keep ~1.6 of the 2 cores busy against ~1.9 on memory and fs; SQLite's global memory-statistics mutex is not why (a build with SQLITE_DEFAULT_MEMSTATUS=0 measured the same). What is (perf, context switches with call graphs, hit_profile with 64 tasks): 97 % of the workers' sleeps are in SQLite's unixShmLock, whose per-file mutex is held across the fcntl that takes or drops the process's lock on a WAL read mark — each read transaction's start and end, two fcntl per hit (strace) — so the two workers' readers queue on it and sleep. Every multi-process-safe WAL reader pays it; single-process locking (locking_mode=EXCLUSIVE) would lift it and lock out the CLI and other processes.";
    pub(crate) const MISS: &str = "issue 20: a miss + store may add at most 15 µs (memory) or 25 µs (SQLite) to the uncached GET measured in turns with it. On one task (`hit_profile miss` against `raw`, current-thread runtime) a memory miss adds ~16 µs to a 13 µs GET (callgrind: 82.0k against 40.8k instructions; 87.9k before the twelfth session's cuts) and a SQLite miss ~75 µs; on the bench's multi-thread runtime the same GET takes ~80 µs (thread wake-ups on this VM, DEPENDENCIES.md §4) and the miss adds 20–45 µs (memory): with the origin on a thread of its own, as here, the miss's extra ~45k instructions run on a vCPU that has just woken (perf stat, one task: 91 µs of CPU per miss against 53 µs per GET, the same two context switches each). SQLite's part (perf, 20,000 misses): 44 % of the time in the kernel — pwrite of the WAL frames 15 % (11 per miss: one row is 5–6 pages of 4 KiB), checkpoint fsync 8 %, pread 6 %, fcntl locks 5 % — and in SQLite its WAL checksums and page-cache resets. Dropping the used_at index measured no gain. What would reach it: group commits across concurrent misses (nothing to group for one sequential client) or a write that does not hold the answer back.";
    pub(crate) const LEASE_REDIS: &str = "issue 17: the lease should cost a miss about one Redis round trip to acquire and one to release (target: at most 2.5 raw GETs of this run over the plain miss measured in turns with it).";
    pub(crate) const LAYER: &str = "issue 15: a hit through CacheLayer over a plain hyper-util client may cost at most 10 % more than CachedClient's, measured in turns (both on the memory backend, the same engine underneath). Callgrind (hit_profile layer vs client, twelfth session): 17.5k against 11.7k instructions (18.6k against 13.0k before the key digest memo and the head clone cut both by the same 1.4k) (19.1k before the engine's answer became an http::Response in one step; 34.5k for the CachedClient hit of the day the target was set). The boxed future is 912 bytes now (under glibc's 1 KiB thread cache); the difference left is the layer's contract: the caller builds an http::Request (its Uri parsed, ~0.8k), the URI turned back into a URL string, the response's three extensions (four allocations, ~0.9k) and its Cache-Status header (~0.6k), the Oneshot and Map futures, the caller's body collect (~0.5k). Every cut to the shared engine makes the ratio larger.";
    pub(crate) const REQWEST: &str = "issue 15: a hit through respcache-reqwest must be at least 2× faster than http-cache-reqwest 1.0.0-alpha.10's, with its moka manager and its default redb manager, measured in turns on the same origin.";
    pub(crate) const PROXY: &str = "issue 20: `respcache serve` hits (memory, SQLite) must reach Varnish's and nginx's requests/s and stay under their p99, and SQLite misses must reach nginx's requests/s, all with 50 keep-alive connections from the bench's own load generator on the same 2 cores. nginx's proxy_cache is on tmpfs (on this machine's ext4 its file-per-answer misses fell 10× for minutes after any mass deletion, so a disk cache made its row depend on what ran before). A serve hit is ~29k instructions (callgrind, memory, one worker, twelfth session: the engine's hit ~12k, hyper's server ~10k, ~3.6k of memcpy moving large futures; 30.9k before the key digest memo, 33.6k before stored answers lost their hop-by-hop headers, 59.8k before the path check's shortcut and the watchdog that is never woken); SQLite misses are written with group commit (serve's default); its requests/s on these 2 cores also depend on how the load generator and serve's workers share them (`--workers 1` measured a lower p99 here, README).";
    pub(crate) const SQLITE_PUT_MANY: &str = "one transaction for 1,000 upserts; below target means per-row cost (statement, index updates) or an fsync on commit dominates.";
    pub(crate) const SCAN_MEMORY: &str = "the scan must page through the store; growth near the store size (about 1.1 KB per entry) means it loaded everything.";
}
