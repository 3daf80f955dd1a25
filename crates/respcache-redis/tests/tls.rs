//! `rediss://`: TLS to a `redis-server` of our own with a test CA (only
//! with the `tls` feature).

// Test helpers outside #[test] fns assert too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "tls")]

mod common;

use respcache_core::{Entry, ErrorKind, Store, Timestamp};
use respcache_redis::{RedisBackend, RedisConfig};

use common::{Server, key, spec, unique_cache};

#[tokio::test]
async fn tls_with_a_trusted_ca_works_and_an_untrusted_one_is_refused() {
    let (server, ca) = Server::start_tls();
    let url = format!("rediss://localhost:{}/", server.port);

    // The platform roots do not trust the test CA: the handshake fails.
    let err = RedisBackend::connect(&url).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Configuration),
        "{err}"
    );
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );

    // With the CA given to the client, entries round-trip over TLS.
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        },
    )
    .unwrap();
    let b = RedisBackend::from_client(client, &RedisConfig::new())
        .await
        .unwrap();
    assert!(format!("{b:?}").contains("rediss://localhost:"), "{b:?}");
    let store = b.store(&spec(&unique_cache("tls"), "r")).await.unwrap();
    let e = Entry::new(key("k"), Timestamp::now(), "over TLS");
    store.put(e.clone()).await.unwrap();
    assert_eq!(store.get(&key("k")).await.unwrap(), Some(e));
}
