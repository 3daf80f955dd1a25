//! What the memory backend's own structures cost per entry on the heap,
//! beyond the entry's payload and metadata (which it keeps as they were
//! given): its table slot, the encoded key, the entry's fields and its
//! place in the recency order. A budget counts an entry at
//! [`entry_size`] (payload, meta, name, key and 64 bytes, the same for
//! every backend), so this is what a bounded memory backend holds beyond
//! its budget per entry: 411–513 bytes when this test was written, 287–377
//! once the encoded key was held once (an `Arc<str>`) instead of three
//! times. An overwrite adds nothing of its own (it kept a second copy of
//! the key until the table reused the one it holds).
//!
//! A test binary of its own: it counts live heap bytes with dhat's global
//! allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use bytes::Bytes;
use respcache_core::budget::entry_size;
use respcache_core::{
    Backend, Entry, FieldKind, Key, KeyPart, KeySchema, MemoryBackend, Name, StoreSpec, Timestamp,
};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[tokio::test(flavor = "current_thread")]
async fn an_entry_costs_the_memory_backend_under_448_bytes_of_its_own() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let live = || dhat::HeapStats::get().curr_bytes;
    let backend = Arc::new(MemoryBackend::new());
    let schema = KeySchema::new([("id", FieldKind::Text)]).unwrap();
    let spec = StoreSpec::new(Name::new("c").unwrap(), Name::new("http").unwrap(), schema);
    let store = backend.open_store(&spec).await.unwrap();
    // Bytes of the backend's own per entry, above which a change made
    // every entry dearer.
    const OWN_AT_MOST: u64 = 448;
    for (payload, meta) in [(1024usize, 200usize), (100, 50), (16 * 1024, 300)] {
        const N: usize = 500;
        let entries = entries(N, payload, meta, 1);
        let charged: u64 = entries.iter().map(entry_size).sum();
        let before = live();
        for entry in entries {
            store.put(entry).await.unwrap();
        }
        // The payloads and metas were allocated before: what grew is the
        // backend's own.
        let own = (live() - before) as u64 / N as u64;
        println!(
            "payload {payload} B, meta {meta} B: {own} B of the backend's own per entry, charged {} B",
            charged / N as u64
        );
        assert!(
            own <= OWN_AT_MOST,
            "{own} B per entry (payload {payload} B)"
        );
    }
    // Overwriting an entry (a refetch after expiry) frees the old payload
    // and meta and costs nothing of the backend's own: the key stays held
    // once (the table, the tag index and the recency order share it).
    const N: usize = 500;
    let (payload, meta) = (1024usize, 200usize);
    let again = entries(N, payload, meta, 2);
    // The vector's own buffer is freed by the loop too.
    let vector = (again.capacity() * std::mem::size_of::<Entry>() / N) as i64;
    let before = live() as i64;
    for entry in again {
        store.put(entry).await.unwrap();
    }
    let grew = (live() as i64 - before) / N as i64;
    // What the replaced entry frees: its payload, its meta and its key's
    // own heap (measured on a key like it); and the vector's share.
    let key = key(payload, 0);
    let with_key = live() as i64;
    drop(key);
    let key_heap = with_key - live() as i64;
    let freed = (payload + meta) as i64 + key_heap + vector;
    println!("overwrite: {grew} B per entry ({freed} B of the old entry freed)");
    assert!(
        grew <= -freed + 24,
        "an overwrite kept {} B per entry of the backend's own",
        grew + freed
    );
}

/// `n` entries with `payload` and `meta` bytes, stamped `at` (ms), under
/// keys that depend only on `payload` and the index (so a second call
/// overwrites the first's).
fn entries(n: usize, payload: usize, meta: usize, at: i64) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            Entry::new(
                key(payload, i),
                Timestamp::from_millis(at),
                Bytes::from(vec![b'x'; payload]),
            )
            .with_meta(Bytes::from(vec![b'm'; meta]))
            .with_expires_at(Some(Timestamp::from_millis(at)))
        })
        .collect()
}

/// The key of entry `i` of the entries with `payload` bytes.
fn key(payload: usize, i: usize) -> Key {
    Key::new("GET", [KeyPart::Text(format!("{payload}-{i:0>40}"))])
}
