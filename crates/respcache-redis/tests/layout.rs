//! What the backend writes to Redis, checked from a raw connection to the
//! shared server at `RESPCACHE_REDIS_URL`: key layout, native expiry, no
//! index, isolation between caches, undecodable values, close.

// Test helpers outside #[test] fns assert too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use redis::AsyncCommands;
use respcache_core::envelope;
use respcache_core::stats::undecodable_entries;
use respcache_core::{Backend, Entry, ErrorKind, Name, Select, Store, Timestamp};
use respcache_redis::RedisBackend;

use common::{key, raw, shared_url, spec, unique_cache};

async fn backend() -> RedisBackend {
    RedisBackend::connect(&shared_url())
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {}: {e}", shared_url()))
}

async fn keys_under(con: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut it = con
        .scan_match::<_, String>(format!("{prefix}*"))
        .await
        .unwrap();
    let mut keys = Vec::new();
    while let Some(k) = it.next_item().await {
        keys.push(k.unwrap());
    }
    // SCAN may return a key more than once (Redis documents it; seen here
    // while expired keys were being removed during the scan), as the
    // backend's own scans know (`Seen`).
    keys.sort();
    keys.dedup();
    keys
}

async fn cleanup(b: &RedisBackend, cache: &Name) {
    for store in b.list_stores(cache).await.unwrap() {
        b.drop_store(cache, &store).await.unwrap();
    }
}

#[tokio::test]
async fn one_string_key_per_entry_under_cache_and_repository() {
    let b = backend().await;
    let cache = unique_cache("layout");
    let store = b.store(&spec(&cache, "tracks")).await.unwrap();
    let now = Timestamp::now();
    let entry = Entry::new(key("a:b|*?[x]"), now, "payload")
        .with_name("n")
        .with_meta("m");
    store.put(entry.clone()).await.unwrap();

    let mut con = raw(&shared_url()).await;
    let expected_key = format!("{cache}:tracks:3:GET|9:a:b|*?[x]");
    assert_eq!(store.redis_key(&entry.key), expected_key);
    let value: Vec<u8> = con.get(&expected_key).await.unwrap();
    assert_eq!(
        envelope::decode(&value).unwrap(),
        entry,
        "the value is the envelope"
    );
    assert_eq!(
        keys_under(&mut con, &format!("{cache}:")).await,
        vec![format!("{cache}:_stores"), expected_key],
        "one key per entry plus the store registry, nothing else"
    );
    cleanup(&b, &cache).await;
    assert!(keys_under(&mut con, &format!("{cache}:")).await.is_empty());
}

#[tokio::test]
async fn native_expiry_is_expires_at_plus_retention_in_milliseconds() {
    let b = backend().await;
    let cache = unique_cache("pexpire");
    let retention = Duration::from_millis(3_600_123);
    let with = b
        .store(&spec(&cache, "kept").with_retention(Some(retention)))
        .await
        .unwrap();
    let without = b.store(&spec(&cache, "forever")).await.unwrap();
    let mut con = raw(&shared_url()).await;
    let expires = Timestamp::now().saturating_add(Duration::from_millis(60_007));
    let e = Entry::new(key("k"), Timestamp::now(), "v").with_expires_at(Some(expires));

    let pexpiretime = |k: String| {
        let mut con = con.clone();
        async move {
            redis::cmd("PEXPIRETIME")
                .arg(k)
                .query_async::<i64>(&mut con)
                .await
                .unwrap()
        }
    };
    with.put(e.clone()).await.unwrap();
    assert_eq!(
        pexpiretime(with.redis_key(&e.key)).await,
        expires.as_millis() + 3_600_123,
        "PXAT at expires_at + retention, to the millisecond"
    );
    without.put(e.clone()).await.unwrap();
    assert_eq!(
        pexpiretime(without.redis_key(&e.key)).await,
        -1,
        "no retention: no native expiry"
    );

    let never = Entry::new(key("never"), Timestamp::now(), "v");
    with.put(never.clone()).await.unwrap();
    assert_eq!(
        pexpiretime(with.redis_key(&never.key)).await,
        -1,
        "never expires: no native expiry"
    );

    // set_expiry moves the native expiry with the entry's.
    let later = expires.saturating_add(Duration::from_secs(10));
    assert!(with.set_expiry(&e.key, Some(later)).await.unwrap());
    assert_eq!(
        pexpiretime(with.redis_key(&e.key)).await,
        later.as_millis() + 3_600_123
    );
    assert!(with.set_expiry(&e.key, None).await.unwrap());
    assert_eq!(
        pexpiretime(with.redis_key(&e.key)).await,
        -1,
        "never: PERSIST"
    );
    assert!(with.set_expiry(&never.key, Some(later)).await.unwrap());
    assert_eq!(
        pexpiretime(with.redis_key(&never.key)).await,
        later.as_millis() + 3_600_123
    );

    // A put without expiry replaces the old native expiry too.
    with.put(Entry::new(e.key.clone(), Timestamp::now(), "v2"))
        .await
        .unwrap();
    assert_eq!(pexpiretime(with.redis_key(&e.key)).await, -1);
    let _: () = con.del(with.redis_key(&e.key)).await.unwrap();
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn stale_entries_stay_readable_until_redis_purges_them() {
    let b = backend().await;
    let cache = unique_cache("purge");
    let store = b
        .store(&spec(&cache, "r").with_retention(Some(Duration::from_millis(700))))
        .await
        .unwrap();
    let t0 = Timestamp::now();
    let expires = t0.saturating_add(Duration::from_millis(200));
    store
        .put(Entry::new(key("k"), t0, "v").with_expires_at(Some(expires)))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(400)).await;
    let now = Timestamp::now();
    assert!(now > expires && now < expires.saturating_add(Duration::from_millis(700)));
    let stale = store.get(&key("k")).await.unwrap();
    assert_eq!(
        stale.map(|e| e.payload),
        Some(Bytes::from("v")),
        "stale, still readable"
    );
    assert!(
        !store.contains(&key("k"), now).await.unwrap(),
        "but not fresh"
    );
    assert_eq!(store.count(Select::Expired, now).await.unwrap(), 1);

    // Redis drops it at expires_at + retention (plus its own lateness).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store.get(&key("k")).await.unwrap().is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        Timestamp::now() >= expires.saturating_add(Duration::from_millis(700)),
        "purged early"
    );
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn nothing_outlives_the_entries_redis_purges() {
    // No index: once Redis has purged every entry, the cache's only key left
    // is the small registry of repository names.
    let b = backend().await;
    let cache = unique_cache("noindex");
    let store = b
        .store(&spec(&cache, "r").with_retention(Some(Duration::from_millis(100))))
        .await
        .unwrap();
    let now = Timestamp::now();
    let entries = (0..500)
        .map(|i| {
            Entry::new(key(&format!("k{i}")), now, "v")
                .with_expires_at(Some(now.saturating_add(Duration::from_millis(100))))
        })
        .collect();
    store.put_many(entries).await.unwrap();
    assert_eq!(store.count(Select::All, now).await.unwrap(), 500);
    let mut con = raw(&shared_url()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Touching every key makes Redis expire it at once (lazy expiry).
        let left = store.count(Select::All, Timestamp::now()).await.unwrap();
        let _: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys_under(&mut con, &format!("{cache}:r:")).await)
            .arg(format!("{cache}:none"))
            .query_async(&mut con)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} entries never purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        keys_under(&mut con, &format!("{cache}:")).await,
        vec![format!("{cache}:_stores")]
    );
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn caches_with_different_names_never_see_each_other() {
    let b = backend().await;
    // "c" is a prefix of "c-x" as text, never as a key prefix.
    let c = unique_cache("iso");
    let c_x = Name::new(format!("{c}-x")).unwrap();
    let s1 = b.store(&spec(&c, "r")).await.unwrap();
    let s2 = b.store(&spec(&c_x, "r")).await.unwrap();
    let s3 = b.store(&spec(&c_x, "other")).await.unwrap();
    let now = Timestamp::now();
    for (store, payload) in [(&s1, "one"), (&s2, "two"), (&s3, "three")] {
        store
            .put(Entry::new(key("same"), now, payload))
            .await
            .unwrap();
        store
            .put(Entry::new(key(payload), now, payload))
            .await
            .unwrap();
    }
    assert_eq!(s1.get(&key("same")).await.unwrap().unwrap().payload, "one");
    assert_eq!(s2.get(&key("same")).await.unwrap().unwrap().payload, "two");
    assert!(s1.get(&key("two")).await.unwrap().is_none());
    assert_eq!(s1.count(Select::All, now).await.unwrap(), 2);
    assert_eq!(
        b.list_stores(&c).await.unwrap(),
        vec![Name::new("r").unwrap()]
    );
    assert_eq!(
        b.list_stores(&c_x).await.unwrap(),
        vec![Name::new("other").unwrap(), Name::new("r").unwrap()]
    );

    assert_eq!(s2.clear(Select::All, now).await.unwrap(), 2);
    assert_eq!(
        s1.count(Select::All, now).await.unwrap(),
        2,
        "clearing another cache leaves this one"
    );
    assert_eq!(
        s3.count(Select::All, now).await.unwrap(),
        2,
        "and the other repository"
    );
    b.drop_store(&c, &Name::new("r").unwrap()).await.unwrap();
    assert_eq!(s3.count(Select::All, now).await.unwrap(), 2);
    assert_eq!(s2.count(Select::All, now).await.unwrap(), 0);
    assert!(b.list_stores(&c).await.unwrap().is_empty());
    cleanup(&b, &c_x).await;
}

#[tokio::test]
async fn undecodable_values_are_misses_never_errors() {
    let b = backend().await;
    let cache = unique_cache("garbage");
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    let now = Timestamp::now();
    store.put(Entry::new(key("good"), now, "v")).await.unwrap();
    let mut con = raw(&shared_url()).await;
    let bad = store.redis_key(&key("bad"));
    let garbage = b"RCE\x09 written by a future version, or torn".to_vec();
    let _: () = con.set(&bad, &garbage).await.unwrap();
    // A value that decodes but belongs to another key is not returned either.
    let moved = store.redis_key(&key("moved"));
    let good_bytes: Vec<u8> = con.get(store.redis_key(&key("good"))).await.unwrap();
    let _: () = con.set(&moved, &good_bytes).await.unwrap();

    let before = undecodable_entries();
    assert!(store.get(&key("bad")).await.unwrap().is_none());
    assert!(store.get(&key("moved")).await.unwrap().is_none());
    assert!(!store.contains(&key("bad"), now).await.unwrap());
    assert!(!store.set_expiry(&key("bad"), None).await.unwrap());
    let got = store.get_many(&[key("bad"), key("good")]).await.unwrap();
    assert!(got[0].is_none() && got[1].is_some());
    assert_eq!(
        store.count(Select::Fresh, now).await.unwrap(),
        2,
        "good + moved (decodable header)"
    );
    assert_eq!(
        store.count(Select::All, now).await.unwrap(),
        3,
        "All counts keys"
    );
    let scanned: Vec<Entry> = store.scan(Select::All, now).try_collect().await.unwrap();
    assert_eq!(scanned.len(), 2, "scan skips the garbage");
    assert!(undecodable_entries() >= before + 5, "each miss is counted");
    let still: Vec<u8> = con.get(&bad).await.unwrap();
    assert_eq!(
        still, garbage,
        "set_expiry left the foreign value untouched"
    );
    assert_eq!(
        store.clear(Select::Expired, now).await.unwrap(),
        0,
        "clear(Expired) spares it"
    );
    assert_eq!(store.clear(Select::All, now).await.unwrap(), 3);
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn clear_expired_keeps_an_entry_rewritten_after_it_was_judged() {
    // The compare-and-delete: clear(Expired) deletes a key only if its
    // header is still the stale one it read.
    let b = backend().await;
    let cache = unique_cache("cas");
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    let now = Timestamp::now();
    let past = Some(now.saturating_sub(Duration::from_secs(5)));
    let entries: Vec<Entry> = (0..300)
        .map(|i| Entry::new(key(&format!("k{i}")), now, "v").with_expires_at(past))
        .collect();
    store.put_many(entries).await.unwrap();
    let writer = {
        let store = b.store(&spec(&cache, "r")).await.unwrap();
        tokio::spawn(async move {
            for i in 0..300 {
                store
                    .put(Entry::new(key(&format!("k{i}")), now, "fresh"))
                    .await
                    .unwrap();
            }
        })
    };
    store.clear(Select::Expired, now).await.unwrap();
    writer.await.unwrap();
    // Whatever the interleaving, the writer's last word on every key is a
    // fresh entry: a clear that deleted a key after it was rewritten would
    // lose it.
    assert_eq!(
        store.count(Select::All, now).await.unwrap(),
        300,
        "no rewritten entry lost"
    );
    assert_eq!(store.count(Select::Fresh, now).await.unwrap(), 300);
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn db_number_from_the_url_is_used() {
    let base = shared_url();
    let mut parsed = url::Url::parse(&base).unwrap();
    parsed.set_path("/5");
    let url = parsed.to_string();
    let b = RedisBackend::connect(&url).await.unwrap();
    let cache = unique_cache("db");
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .unwrap();
    let rk = store.redis_key(&key("k"));
    let mut db5 = raw(&url).await;
    let mut db0 = raw(&base).await;
    assert!(db5.exists::<_, bool>(&rk).await.unwrap());
    assert!(!db0.exists::<_, bool>(&rk).await.unwrap());
    cleanup(&b, &cache).await;
}

#[tokio::test]
async fn after_close_every_call_is_closed() {
    let b = backend().await;
    let cache = unique_cache("closed");
    let other = backend().await;
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    let guarded = b.open_store(&spec(&cache, "r")).await.unwrap();
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .unwrap();
    b.close().await.unwrap();
    b.close().await.unwrap();
    assert!(b.is_closed());
    assert!(format!("{b:?}").contains("closed: true"));
    let now = Timestamp::now();
    let k = key("k");
    let kinds = vec![
        store.get(&k).await.err().map(|e| e.kind()),
        store
            .get_many(std::slice::from_ref(&k))
            .await
            .err()
            .map(|e| e.kind()),
        store.get_many(&[]).await.err().map(|e| e.kind()),
        store
            .put(Entry::new(k.clone(), now, "v"))
            .await
            .err()
            .map(|e| e.kind()),
        store.put_many(vec![]).await.err().map(|e| e.kind()),
        store.delete(&k).await.err().map(|e| e.kind()),
        store.delete_many(&[]).await.err().map(|e| e.kind()),
        store.contains(&k, now).await.err().map(|e| e.kind()),
        store
            .count(Select::Fresh, now)
            .await
            .err()
            .map(|e| e.kind()),
        store.clear(Select::All, now).await.err().map(|e| e.kind()),
        store.set_expiry(&k, None).await.err().map(|e| e.kind()),
        store
            .scan(Select::All, now)
            .try_collect::<Vec<_>>()
            .await
            .err()
            .map(|e| e.kind()),
        b.open_store(&spec(&cache, "r2"))
            .await
            .err()
            .map(|e| e.kind()),
        b.list_stores(&cache).await.err().map(|e| e.kind()),
        b.drop_store(&cache, &Name::new("r").unwrap())
            .await
            .err()
            .map(|e| e.kind()),
        b.connection().err().map(|e| e.kind()),
    ];
    assert!(
        kinds.iter().all(|k| *k == Some(ErrorKind::Closed)),
        "{kinds:?}"
    );
    // The typed store fails because the connection is gone; the store
    // `open_store` returned is behind the backend's guard, whose errors
    // also name the repository and the operation.
    let err = store.get(&k).await.unwrap_err();
    assert_eq!(err.backend(), Some("redis"));
    let err = guarded.get(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(err.backend(), Some("redis"));
    assert_eq!(err.repository(), Some("r"));
    assert_eq!(err.operation(), Some(respcache_core::Operation::Get));
    // Another handle is unaffected and cleans up.
    assert!(
        other
            .store(&spec(&cache, "r"))
            .await
            .unwrap()
            .get(&k)
            .await
            .unwrap()
            .is_some()
    );
    cleanup(&other, &cache).await;
}

/// Another program sharing the database left a value of another type
/// under `<cache>:_stores`, where respcache keeps a set: stores of that
/// cache still open and work (they are just not listed), `list_stores`
/// says what is wrong, and other caches never notice.
#[tokio::test]
async fn a_foreign_value_under_the_registry_key_does_not_stop_open_store() {
    let b = backend().await;
    let mut con = raw(&shared_url()).await;
    for foreign in ["string", "hash"] {
        let cache = unique_cache("foreign-registry");
        let registry = format!("{cache}:_stores");
        match foreign {
            "string" => con.set::<_, _, ()>(&registry, "not a set").await.unwrap(),
            _ => con.hset::<_, _, _, ()>(&registry, "f", "v").await.unwrap(),
        }
        let store = b
            .store(&spec(&cache, "tracks"))
            .await
            .unwrap_or_else(|e| panic!("open_store with a foreign {foreign} registry: {e}"));
        let entry = Entry::new(key("a"), Timestamp::now(), "payload");
        store.put(entry.clone()).await.unwrap();
        assert_eq!(store.get(&entry.key).await.unwrap(), Some(entry));

        let err = b.list_stores(&cache).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
        assert!(err.to_string().contains(&registry), "{err}");

        // Dropping the store still removes its entries.
        b.drop_store(&cache, &Name::new("tracks").unwrap())
            .await
            .unwrap_or_else(|e| panic!("drop_store with a foreign {foreign} registry: {e}"));
        assert!(
            keys_under(&mut con, &format!("{cache}:tracks:"))
                .await
                .is_empty()
        );

        // The value belongs to the other program: left as it was.
        let kind: String = redis::cmd("TYPE")
            .arg(&registry)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(kind, foreign);
        con.del::<_, ()>(&registry).await.unwrap();

        let other = unique_cache("foreign-registry-other");
        b.store(&spec(&other, "tracks")).await.unwrap();
        cleanup(&b, &other).await;
    }
}

#[tokio::test]
async fn a_tag_is_a_set_of_entry_keys_written_with_the_entry() {
    let b = backend().await;
    let cache = unique_cache("tagset");
    let store = b.store(&spec(&cache, "tracks")).await.unwrap();
    let tags = respcache_core::Tags::new(["album:7"]).unwrap();
    let entry = Entry::new(key("a"), Timestamp::now(), "p").with_tags(tags);
    store.put(entry.clone()).await.unwrap();
    let mut con = raw(&shared_url()).await;
    let set = format!("{cache}:_tag:tracks:album:7");
    let members: Vec<String> = con.smembers(&set).await.unwrap();
    assert_eq!(members, vec![store.redis_key(&entry.key)]);
    let value: Vec<u8> = con.get(store.redis_key(&entry.key)).await.unwrap();
    assert_eq!(
        &value[..4],
        b"RCE\x02",
        "a tagged entry is envelope format 2"
    );

    // Rewritten untagged, then a purge: nothing deleted, the stale member dropped.
    store
        .put(Entry::new(key("a"), Timestamp::now(), "q"))
        .await
        .unwrap();
    assert_eq!(store.purge_tag("album:7").await.unwrap(), 0);
    assert!(store.get(&key("a")).await.unwrap().is_some());
    let left: bool = con.exists(&set).await.unwrap();
    assert!(
        !left,
        "the purge dropped the stale member (and so the empty set)"
    );

    // set_expiry patches a format-2 header in place and keeps the tags.
    let t = respcache_core::Tags::new(["t"]).unwrap();
    store
        .put(Entry::new(key("b"), Timestamp::now(), "p").with_tags(t.clone()))
        .await
        .unwrap();
    let later = Some(Timestamp::now().saturating_add(Duration::from_secs(60)));
    assert!(store.set_expiry(&key("b"), later).await.unwrap());
    let got = store.get(&key("b")).await.unwrap().unwrap();
    assert_eq!((got.expires_at, got.tags), (later, t));

    // clear(All) removes the tag sets with the entries.
    store.clear(Select::All, Timestamp::now()).await.unwrap();
    let sets = keys_under(&mut con, &format!("{cache}:_tag:")).await;
    assert!(sets.is_empty(), "{sets:?}");
    cleanup(&b, &cache).await;
    assert!(keys_under(&mut con, &format!("{cache}:")).await.is_empty());
}

/// Purges 1,000 tagged entries among 10,000 and prints the time (the
/// report's number); bounded generously.
#[tokio::test]
async fn purge_of_a_thousand_tagged_entries() {
    let b = backend().await;
    let cache = unique_cache("tagmany");
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    let tags = respcache_core::Tags::new(["hot"]).unwrap();
    let entries: Vec<Entry> = (0..10_000)
        .map(|i| {
            let e = Entry::new(key(&format!("k{i}")), Timestamp::now(), vec![0u8; 100]);
            if i % 10 == 0 {
                e.with_tags(tags.clone())
            } else {
                e
            }
        })
        .collect();
    for chunk in entries.chunks(1_000) {
        store.put_many(chunk.to_vec()).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert_eq!(store.purge_tag("hot").await.unwrap(), 1_000);
    let took = started.elapsed();
    eprintln!("redis: purge_tag of 1,000 of 10,000 entries took {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(
        store.count(Select::All, Timestamp::now()).await.unwrap(),
        9_000
    );
    cleanup(&b, &cache).await;
}
