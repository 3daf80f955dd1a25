//! The storage-economy options through `connect(url)`: payloads stored
//! compressed in a real SQLite file, read back by a handle without the
//! option, and a budget set from the URL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use respcache::{Budget, Repository, RepositoryOptions, Request, TemplateSettings, TextCodec};

fn page() -> String {
    let mut s = String::from("<!doctype html><html><body><ul>");
    for i in 0..3000 {
        s.push_str(&format!(
            "<li class=\"row\"><a href=\"/items/{i}\">item {i}</a></li>"
        ));
    }
    s.push_str("</ul></body></html>");
    s
}

#[tokio::test]
async fn compressed_in_the_file_and_read_back_without_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let url = format!("sqlite://{}", path.display());
    let req = Request::get("https://example.com/pages/1").unwrap();
    let body = page();
    {
        let backend = respcache::connect(&format!("{url}?compress=auto&max_bytes=10MB"))
            .await
            .unwrap();
        assert_eq!(
            backend.eviction().map(|e| e.budget()),
            Some(Budget::bytes(10_000_000))
        );
        let settings = TemplateSettings::<String>::new("pages", "/pages/{id}", TextCodec).unwrap();
        let pages = Repository::create(
            backend.as_ref(),
            "site",
            settings,
            RepositoryOptions::default(),
        )
        .await
        .unwrap();
        assert!(pages.save_response(&req, &body).await.unwrap());
        backend.close().await.unwrap();
    }
    // In the file: a compressed frame, at least 3× smaller.
    let raw = respcache::sqlite::rusqlite::Connection::open(&path).unwrap();
    let stored: Vec<u8> = raw
        .query_row(r#"SELECT payload FROM "site:pages""#, [], |r| r.get(0))
        .unwrap();
    assert!(respcache::compress::is_compressed(&stored));
    assert!(
        stored.len() * 3 < body.len(),
        "{} of {}",
        stored.len(),
        body.len()
    );
    // A handle without the option reads the page as it was.
    let backend = respcache::connect(&url).await.unwrap();
    let settings = TemplateSettings::<String>::new("pages", "/pages/{id}", TextCodec).unwrap();
    let pages = Repository::create(
        backend.as_ref(),
        "site",
        settings,
        RepositoryOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(pages.get_response(&req).await.unwrap(), Some(body));
    backend.close().await.unwrap();
}

/// Issue 19: a URL means the same to `connect` as to the command —
/// `?cache=NAME` is accepted (and readable) and durations take their unit
/// everywhere (`~/` is tested where each backend reads its path).
#[tokio::test]
async fn urls_mean_the_same_everywhere() {
    let url = "sqlite::memory:?cache=music&busy_timeout=2s";
    assert_eq!(respcache::cache_name(url).as_deref(), Some("music"));
    let backend = respcache::connect(url).await.unwrap();
    assert_eq!(backend.name(), "sqlite");
    let e = respcache::connect("sqlite::memory:?busy_timeout=2000")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), respcache::ErrorKind::Configuration);
    assert!(e.to_string().contains("2000ms"), "{e}");
}
