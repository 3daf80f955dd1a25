//! Issue 19, item 4, through a real SQLite file: keys from templates
//! (field order, segments outside the key, every header as one field) and
//! `get_or_set_with`'s key and error kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use respcache::http::{HeaderValue, header};
use respcache::{
    CachedClient, ErrorKind, FieldKind, JsonCodec, Key, KeyValueCache, Request, ResponseCache,
    TemplateSettings, TextCodec,
};
use respcache_conformance::origin::{Origin, Reply};
use serde_json::{Value, json};

fn file_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("keys.sqlite").display())
}

fn tracks(all_headers: bool) -> TemplateSettings<String> {
    let s = TemplateSettings::new("tracks", "/v1/tracks/{id}", TextCodec).unwrap();
    if all_headers {
        s.with_all_headers().unwrap()
    } else {
        s
    }
}

fn with_language(lang: &'static str) -> Request {
    Request::get("https://api.example.com/v1/tracks/7")
        .unwrap()
        .with_header(header::ACCEPT_LANGUAGE, HeaderValue::from_static(lang))
}

/// Two requests that differ only in a header are two entries with
/// `with_all_headers`, one without; a header the cache adds to revalidate
/// finds the same entry; and the key schema (SQLite's columns) is the same
/// whatever the headers, so a second handle on the file reads them back.
#[tokio::test]
async fn a_header_separates_entries_only_with_all_headers() {
    for all_headers in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::<String>::builder("music")
            .create_repository(tracks(all_headers))
            .connect(respcache::connect(&file_url(&dir)).await.unwrap())
            .await
            .unwrap();
        cache
            .save(&with_language("en"), &"en".to_owned())
            .await
            .unwrap();
        cache
            .save(&with_language("sv"), &"sv".to_owned())
            .await
            .unwrap();
        let repo = cache.repository("tracks").unwrap();
        let expected = if all_headers { 2 } else { 1 };
        assert_eq!(
            repo.count(true).await.unwrap(),
            expected,
            "all_headers={all_headers}"
        );
        let en = cache.get(&with_language("en")).await.unwrap();
        let revalidating = with_language("en")
            .with_header(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""));
        assert_eq!(cache.get(&revalidating).await.unwrap(), en);
        if all_headers {
            assert_eq!(en.as_deref(), Some("en"));
            // More headers, another entry: a miss.
            let more = with_language("en")
                .with_header(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
            assert_eq!(cache.get(&more).await.unwrap(), None);
        } else {
            assert_eq!(
                en.as_deref(),
                Some("sv"),
                "the second save replaced the first"
            );
        }
        cache.close().await.unwrap();

        let reopened = ResponseCache::<String>::builder("music")
            .create_repository(tracks(all_headers))
            .connect(respcache::connect(&file_url(&dir)).await.unwrap())
            .await
            .unwrap();
        let repo = reopened.repository("tracks").unwrap();
        assert_eq!(repo.count(true).await.unwrap(), expected);
        let sv = reopened.get(&with_language("sv")).await.unwrap();
        assert_eq!(sv.as_deref(), Some("sv"));
    }
}

/// The seed's Spotify settings as templates: one repository for objects
/// whatever their kind, one for pages keyed `(id, offset, limit)`; found by
/// request and by key in a real file, and the stored key's fields are in
/// that order.
#[tokio::test]
async fn spotify_settings_without_hand_written_settings() {
    let dir = tempfile::tempdir().unwrap();
    let pages = || {
        TemplateSettings::<Value>::new(
            "pages",
            "/v1/{_kind:albums|playlists}/{id}/tracks",
            JsonCodec,
        )
        .unwrap()
        .with_query_field_or("limit", 50)
        .unwrap()
        .with_query_field_or("offset", 0)
        .unwrap()
        .with_key_order(["id", "offset", "limit"])
        .unwrap()
    };
    let objects = || {
        TemplateSettings::<Value>::new(
            "objects",
            "/v1/{_kind:tracks|albums|artists}/{id}",
            JsonCodec,
        )
        .unwrap()
    };
    let cache = ResponseCache::<Value>::builder("spotify")
        .create_repository(objects())
        .create_repository(pages())
        .connect(respcache::connect(&file_url(&dir)).await.unwrap())
        .await
        .unwrap();
    let api = |path: &str| Request::get(&format!("https://api.spotify.com{path}")).unwrap();
    assert!(
        cache
            .save(&api("/v1/albums/A1"), &json!({"name": "album"}))
            .await
            .unwrap()
    );
    assert!(
        cache
            .save(&api("/v1/albums/A1/tracks"), &json!({"page": 0}))
            .await
            .unwrap()
    );
    assert!(
        cache
            .save(
                &api("/v1/playlists/P1/tracks?limit=20&offset=40"),
                &json!({"page": 2})
            )
            .await
            .unwrap()
    );
    // A kind outside the alternatives is not cached at all.
    assert!(!cache.save(&api("/v1/shows/S1"), &json!({})).await.unwrap());
    // The wildcard does not separate entries; the defaults stand in.
    assert_eq!(
        cache.get(&api("/v1/tracks/A1")).await.unwrap(),
        Some(json!({"name": "album"}))
    );
    assert_eq!(
        cache
            .get(&api("/v1/albums/A1/tracks?offset=0&limit=50"))
            .await
            .unwrap(),
        Some(json!({"page": 0}))
    );
    let repo = cache.repository("pages").unwrap();
    let key = Key::new("GET", ["P1".into(), 40.into(), 20.into()]);
    assert_eq!(
        repo.get_response(&key).await.unwrap(),
        Some(json!({"page": 2}))
    );
    let names: Vec<(&str, FieldKind)> = repo
        .settings()
        .fields()
        .fields()
        .iter()
        .map(|f| (f.name(), f.kind()))
        .collect();
    assert_eq!(
        names,
        [
            ("id", FieldKind::Text),
            ("offset", FieldKind::Integer),
            ("limit", FieldKind::Integer)
        ]
    );
    // A key in the wrong order does not fit the schema.
    let wrong = Key::new("GET", [40.into(), "P1".into(), 20.into()]);
    let e = repo.get_response(&wrong).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidKey);
}

/// Over SQLite: the computation receives its key, and its failure is a
/// `Computation` error with the closure's error as source.
#[tokio::test]
async fn get_or_set_with_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let kv =
        KeyValueCache::<String>::new(respcache::connect(&file_url(&dir)).await.unwrap(), "auth")
            .unwrap();
    let fetch =
        |service: String| async move { Ok::<_, std::io::Error>(format!("token-{service}")) };
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(
        kv.get_or_set_with("spotify", fetch, hour).await.unwrap(),
        "token-spotify"
    );
    assert_eq!(
        kv.get_or_set_with("deezer", fetch, hour).await.unwrap(),
        "token-deezer"
    );
    assert_eq!(
        kv.get("spotify").await.unwrap().as_deref(),
        Some("token-spotify")
    );
    let e = kv
        .get_or_set_with(
            "tidal",
            |key| async move { Err::<String, _>(std::io::Error::other(format!("{key}: 503"))) },
            hour,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Computation);
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("tidal: 503"));
    assert_eq!(kv.get("tidal").await.unwrap(), None);
}

/// Through the HTTP client over a `ResponseCache`: with every header in
/// the key, a request repeated with the same headers is a hit (nothing the
/// client adds on the way changes its key) and one with another header
/// value goes to the origin; without, the header changes nothing.
#[tokio::test]
async fn the_http_client_keys_by_every_header() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let origin = Origin::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Reply::ok(format!("answer {n}")).header("cache-control", "max-age=600")
    })
    .await;
    let addr = origin.addr;

    for all_headers in [true, false] {
        hits.store(0, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::<String>::builder("music")
            .create_repository(tracks(all_headers))
            .connect(respcache::connect(&file_url(&dir)).await.unwrap())
            .await
            .unwrap();
        let cache = Arc::new(cache);
        let client = CachedClient::builder()
            .build_with_cache(Arc::clone(&cache))
            .await
            .unwrap();
        let url = format!("http://{addr}/v1/tracks/7");
        let send = |lang: &'static str| {
            let (client, url) = (&client, &url);
            async move {
                let response = tokio::time::timeout(
                    Duration::from_secs(30),
                    client.get(url).header("accept-language", lang).send(),
                )
                .await
                .expect("the request took over 30 s")
                .unwrap();
                (response.text(), response.from_cache())
            }
        };
        let first = send("en").await;
        assert!(!first.1);
        let again = send("en").await;
        assert_eq!(again, (first.0.clone(), true), "all_headers={all_headers}");
        let other = send("sv").await;
        let repo = cache.repository("tracks").unwrap();
        if all_headers {
            assert!(!other.1, "another header value is another entry");
            assert_eq!(hits.load(Ordering::SeqCst), 2);
            assert_eq!(repo.count(true).await.unwrap(), 2);
        } else {
            assert_eq!(other, (first.0, true), "the header is not in the key");
            assert_eq!(hits.load(Ordering::SeqCst), 1);
            assert_eq!(repo.count(true).await.unwrap(), 1);
        }
    }
    drop(origin);
}
