//! Tests that need a Redis server of their own (started here from the
//! `redis-server` binary on a free port): restarts, stalls, refused
//! connections, passwords, and what `set_expiry` sends over the wire.

// Test helpers outside #[test] fns assert too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use respcache_core::{Entry, ErrorKind, Select, Store, Timestamp};
use respcache_redis::{RedisBackend, RedisConfig};

use common::{Server, key, raw, spec, unique_cache};

/// A deadline no call may exceed: errors must come back, never hang.
const NO_HANG: Duration = Duration::from_secs(10);

fn fast(url: &str) -> String {
    format!("{url}?connect_timeout_ms=300&command_timeout_ms=300")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_restart() {
    let mut server = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let b = RedisBackend::connect(&fast(&server.url())).await.unwrap();
    let cache = unique_cache("restart");
    let store = b.store(&spec(&cache, "r")).await.unwrap();
    let written = Entry::new(key("k"), Timestamp::now(), "before the crash");
    store.put(written.clone()).await.unwrap();

    server.kill();
    // While the server is down, every call errors cleanly and promptly.
    for round in 0..5 {
        let started = Instant::now();
        let got = tokio::time::timeout(NO_HANG, store.get(&key("k")))
            .await
            .unwrap_or_else(|_| panic!("get hung while the server was down (round {round})"));
        let err = got.expect_err("the server is down");
        if round == 0 {
            eprintln!("while down: {err}");
        }
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "round {round}: {err}"
        );
        assert!(err.is_temporary());
        assert_eq!(err.backend(), Some("redis"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let put = tokio::time::timeout(NO_HANG, store.put(written.clone()))
            .await
            .expect("put hung");
        assert!(matches!(
            put.map_err(|e| e.kind()),
            Err(ErrorKind::Connection | ErrorKind::Timeout)
        ));
    }

    server.restart();
    // Once it is back, calls succeed again on the same backend and store,
    // and the entry written before the crash is there (append-only file).
    let back = Instant::now();
    let got = loop {
        match tokio::time::timeout(NO_HANG, store.get(&key("k")))
            .await
            .expect("get hung after restart")
        {
            Ok(got) => break got,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                    "{e}"
                );
                assert!(
                    back.elapsed() < Duration::from_secs(15),
                    "never reconnected: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    eprintln!("reconnected {:?} after the restart", back.elapsed());
    assert_eq!(got, Some(written));
    store
        .put(Entry::new(key("k2"), Timestamp::now(), "after"))
        .await
        .unwrap();
    assert_eq!(store.count(Select::All, Timestamp::now()).await.unwrap(), 2);
    // Scripts are reloaded after the restart emptied the script cache.
    assert!(store.set_expiry(&key("k2"), None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_is_a_timeout() {
    let server = Server::start(&[]);
    let b = RedisBackend::connect(&fast(&server.url())).await.unwrap();
    let store = b.store(&spec(&unique_cache("stall"), "r")).await.unwrap();
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .unwrap();
    let mut admin = raw(&server.url()).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.get(&key("k")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    // After the pause the same connection answers again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let again = loop {
        match store.get(&key("k")).await {
            Ok(v) => break v,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                assert!(e.is_temporary(), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(again.map(|e| e.payload), Some(Bytes::from("v")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_frozen_server_times_out() {
    let server = Server::start(&[]);
    server.signal("STOP");
    let started = Instant::now();
    let err = tokio::time::timeout(NO_HANG, RedisBackend::connect(&fast(&server.url())))
        .await
        .expect("connect hung")
        .unwrap_err();
    server.signal("CONT");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connecting_to_nothing_is_a_connection_error() {
    let mut server = Server::start(&[]);
    let url = fast(&server.url());
    server.kill();
    let started = Instant::now();
    let err = RedisBackend::connect(&url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", server.port)),
        "{err}"
    );
}

#[tokio::test]
async fn passwords_authenticate_and_never_show() {
    let server = Server::start(&["--requirepass", "pa55-w0rd"]);
    let port = server.port;

    // The right password works; db and ACL user from the URL too.
    let good = RedisBackend::connect(&format!("redis://:pa55-w0rd@127.0.0.1:{port}/3"))
        .await
        .unwrap();
    let store = good.store(&spec(&unique_cache("auth"), "r")).await.unwrap();
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .unwrap();
    for text in [format!("{good:?}"), format!("{store:?}")] {
        assert!(!text.contains("pa55-w0rd"), "{text}");
        assert!(text.contains(":***@127.0.0.1"), "{text}");
    }
    let mut admin = raw(&format!("redis://:pa55-w0rd@127.0.0.1:{port}/")).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("alice")
        .arg("on")
        .arg(">al1ce-secret")
        .arg("~*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    let alice = RedisBackend::connect_with(
        RedisConfig::new()
            .with_port(port)
            .with_db(3)
            .with_username("alice")
            .with_password("al1ce-secret"),
    )
    .await
    .unwrap();
    let as_alice = alice.store(store.spec()).await.unwrap();
    assert!(
        as_alice.get(&key("k")).await.unwrap().is_some(),
        "same db, same entry"
    );

    // Wrong or missing credentials: a permission error that hides them.
    for url in [
        format!("redis://:wrong-pa55@127.0.0.1:{port}/"),
        format!("redis://alice:wrong-pa55@127.0.0.1:{port}/"),
        format!("redis://127.0.0.1:{port}/"),
    ] {
        let err = RedisBackend::connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Permission, "{url}: {err}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("wrong-pa55"), "{text}");
        assert!(!text.contains("pa55-w0rd"), "{text}");
    }

    // An existing client works too, and its password is hidden as well.
    let client = redis::Client::open(format!("redis://:pa55-w0rd@127.0.0.1:{port}/3")).unwrap();
    let from_client = RedisBackend::from_client(client, &RedisConfig::new())
        .await
        .unwrap();
    let text = format!("{from_client:?}");
    assert!(
        !text.contains("pa55-w0rd") && text.contains("***"),
        "{text}"
    );
    let s = from_client.store(store.spec()).await.unwrap();
    assert!(s.get(&key("k")).await.unwrap().is_some());
}

#[tokio::test]
async fn an_acl_user_without_the_command_or_the_keys_gets_permission_errors() {
    let server = Server::start(&["--requirepass", "pa55-w0rd"]);
    let port = server.port;
    let mut admin = raw(&format!("redis://:pa55-w0rd@127.0.0.1:{port}/")).await;
    for rules in [
        // bob may do everything but GET.
        &["bob", "on", ">b0b-secret", "~*", "+@all", "-get"][..],
        // carol may only touch keys of another program.
        &["carol", "on", ">car0l-secret", "~other:*", "+@all"][..],
    ] {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(rules)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let as_user = |user: &str, password: &str| {
        RedisBackend::connect_with(
            RedisConfig::new()
                .with_port(port)
                .with_username(user)
                .with_password(password),
        )
    };
    let cache = unique_cache("acl");

    use respcache_core::Backend as _;
    let bob = as_user("bob", "b0b-secret").await.unwrap();
    let store = bob.open_store(&spec(&cache, "r")).await.unwrap();
    store
        .put(Entry::new(key("k"), Timestamp::now(), "v"))
        .await
        .unwrap();
    let err = store.get(&key("k")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    assert!(!err.is_temporary());
    assert!(
        err.to_string()
            .starts_with("redis: get in repository \"r\": permission denied: "),
        "{err}"
    );

    let carol = as_user("carol", "car0l-secret").await.unwrap();
    let err = carol.open_store(&spec(&cache, "r")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    assert_eq!(err.operation(), Some(respcache_core::Operation::OpenStore));
    assert_eq!(err.repository(), Some("r"));
    let text = format!("{err} {err:?}");
    assert!(!text.contains("car0l-secret"), "{text}");
}

#[tokio::test]
async fn set_expiry_sends_a_few_bytes_not_the_payload() {
    let server = Server::start(&[]);
    let b = RedisBackend::connect(&server.url()).await.unwrap();
    let store = b
        .store(&spec(&unique_cache("patch"), "r").with_retention(Some(Duration::from_secs(60))))
        .await
        .unwrap();
    let payload = Bytes::from(vec![7u8; 5 * 1024 * 1024]);
    let now = Timestamp::now();
    let entry = Entry::new(key("big"), now, payload.clone())
        .with_name("n")
        .with_meta("m");
    let mut admin = raw(&server.url()).await;

    let before_put = net_input(&mut admin).await;
    store.put(entry.clone()).await.unwrap();
    let after_put = net_input(&mut admin).await;
    assert!(
        after_put - before_put > 5 * 1024 * 1024,
        "put sends the payload"
    );

    let expires = now.saturating_add(Duration::from_secs(30));
    assert!(store.set_expiry(&key("big"), Some(expires)).await.unwrap());
    assert!(store.set_expiry(&key("big"), None).await.unwrap());
    assert!(store.set_expiry(&key("big"), Some(expires)).await.unwrap());
    let after_patch = net_input(&mut admin).await;
    assert!(
        after_patch - after_put < 4096,
        "three set_expiry calls sent {} bytes",
        after_patch - after_put
    );
    let got = store.get(&key("big")).await.unwrap().unwrap();
    assert_eq!(
        got,
        entry.with_expires_at(Some(expires)),
        "only expires_at changed"
    );
}

/// `total_net_input_bytes` from `INFO stats`.
async fn net_input(con: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_net_input_bytes")
}
