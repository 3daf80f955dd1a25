//! The seed's Spotify example, end to end against a local imitation of the
//! Spotify Web API: repositories per endpoint family (tracks, albums,
//! artists) in a `ResponseCache`, a session that routes through it.

use std::sync::Arc;
use std::time::Duration;

use respcache_core::{JsonCodec, Request, ResponseCache, TemplateSettings};
use respcache_http::{CacheOutcome, CachedClient};
use serde_json::{Value, json};

use crate::origin::{Origin, Reply, Seen};
use crate::{B, clock};

crate::backend_tests!(
    spotify_example_end_to_end,
    spotify_with_cache_control_revalidates_by_etag,
    a_response_cache_keeps_one_variant_and_serves_it_only_to_matching_requests,
    a_session_over_a_response_cache_uses_its_default_expiry_when_the_origin_says_nothing,
);

/// Issue 19: over a `ResponseCache`, a repository's effective expiry (its
/// settings, else the cache's default) is the lifetime of an answer whose
/// origin sends no cache headers — with `Cache-Control` respected or not.
async fn a_session_over_a_response_cache_uses_its_default_expiry_when_the_origin_says_nothing(
    b: B,
) {
    let api = Origin::without_date(|s| {
        Reply::ok(format!("{{\"type\": \"track\", \"name\": \"n{}\"}}", s.n))
    })
    .await;
    for respect in [true, false] {
        let clock = clock();
        let cache = Arc::new(
            ResponseCache::<Value>::builder(if respect { "plain1" } else { "plain2" })
                .default_expiry(Duration::from_secs(3600))
                .clock(clock.clone())
                .create_repository(
                    TemplateSettings::new("tracks", "/{version}/tracks/{id}", JsonCodec).unwrap(),
                )
                .connect(b.clone())
                .await
                .unwrap(),
        );
        let session = CachedClient::builder()
            .cache_control(respect)
            .build_with_cache(cache.clone())
            .await
            .unwrap();
        let url = api.url(&format!("/v1/tracks/{respect}"));
        let first = session.get(&url).send().await.unwrap();
        let lifetime =
            first.expires_at().unwrap().as_millis() - first.created_at().unwrap().as_millis();
        assert_eq!(lifetime, 3_600_000, "respect={respect}");
        clock.advance(Duration::from_secs(1800));
        assert!(
            session.get(&url).send().await.unwrap().from_cache(),
            "respect={respect}"
        );
        let req = Request::get(&url).unwrap();
        assert!(
            cache.get(&req).await.unwrap().is_some(),
            "respect={respect}"
        );
        clock.advance(Duration::from_secs(1801));
        assert!(
            !session.get(&url).send().await.unwrap().from_cache(),
            "respect={respect}"
        );
        assert_eq!(api.count(&format!("/v1/tracks/{respect}")), 2);
    }
}

/// The imitation: `/v1/{tracks,albums,artists}/{id}` and `/v1/me`, with
/// Spotify's `private, max-age=0` and an ETag; it checks the bearer token.
fn spotify(s: &Seen) -> Reply {
    if s.headers
        .get("authorization")
        .is_none_or(|v| v != "Bearer test-token")
    {
        return Reply::status(401).header("content-type", "application/json");
    }
    let parts: Vec<&str> = s.path.trim_matches('/').split('/').collect();
    let body = match parts.as_slice() {
        ["v1", "tracks", id] => json!({"type": "track", "id": id, "name": "super cool song"}),
        ["v1", "albums", id] => json!({"type": "album", "id": id, "name": "Global Warming"}),
        ["v1", "albums", id, "tracks"] => json!({"items": [{"id": format!("{id}-1")}]}),
        ["v1", "artists", id] => json!({"type": "artist", "id": id, "name": "Pitbull"}),
        ["v1", "me"] => json!({"type": "user", "display_name": "Me"}),
        _ => return Reply::status(404),
    };
    let etag = format!("\"{}\"", blake3::hash(body.to_string().as_bytes()).to_hex());
    if s.headers
        .get("if-none-match")
        .is_some_and(|v| v.to_str().ok() == Some(etag.as_str()))
    {
        return Reply::status(304)
            .header("etag", etag)
            .header("cache-control", "private, max-age=0");
    }
    Reply::ok(body.to_string())
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "private, max-age=0")
        .header("etag", etag)
}

fn name_of(v: &Value) -> Option<String> {
    if v["type"] == "user" {
        v["display_name"].as_str().map(str::to_owned)
    } else {
        v["name"].as_str().map(str::to_owned)
    }
}

/// The seed's router: `/v1/tracks/{id}` → `tracks`,
/// `/v1/albums/{id}/tracks` → `album_tracks`.
fn repository_getter(url: &url::Url) -> Option<String> {
    let parts: Vec<String> = url
        .path()
        .split('/')
        .skip(2)
        .map(|p| p.replace('-', "_"))
        .collect();
    match parts.as_slice() {
        [] => None,
        [first] | [first, _] => Some(first.clone()),
        [first, _, third, ..] => Some(format!(
            "{}_{}s",
            first.trim_end_matches('s'),
            third.trim_end_matches('s')
        )),
    }
}

async fn spotify_cache(b: B, clock: Arc<respcache_core::ManualClock>) -> Arc<ResponseCache<Value>> {
    let mut builder = ResponseCache::<Value>::builder("spotify")
        .default_expiry(Duration::from_secs(14 * 86_400))
        .clock(clock)
        .repository_getter(repository_getter);
    for name in ["tracks", "albums", "artists"] {
        let settings =
            TemplateSettings::new(name, &format!("/{{version}}/{name}/{{id}}"), JsonCodec)
                .unwrap()
                .with_name_of(name_of);
        builder = builder.create_repository(settings);
    }
    Arc::new(builder.connect(b).await.unwrap())
}

async fn spotify_example_end_to_end(b: B) {
    let api = Origin::without_date(spotify).await;
    let clock = clock();
    let cache = spotify_cache(b, clock.clone()).await;
    // Like the seed: two weeks, whatever the API's headers say. (The
    // ResponseCache's default expiry is private to the core, so the session
    // is told too.)
    let session = CachedClient::builder()
        .cache_control(false)
        .default_expiry(Duration::from_secs(14 * 86_400))
        .build_with_cache(cache.clone())
        .await
        .unwrap();
    let track_url = api.url("/v1/tracks/6fWoFduMpBem73DMLCOh1Z");
    let first = session
        .get(&track_url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(!first.from_cache());
    let track: Value = first.json().unwrap();
    assert_eq!(track["name"], "super cool song");

    clock.advance(Duration::from_secs(7 * 86_400));
    let again = session
        .get(&track_url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert!(again.from_cache());
    assert_eq!(again.json::<Value>().unwrap(), track);
    assert_eq!(
        again.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(api.count("/v1/tracks/6fWoFduMpBem73DMLCOh1Z"), 1);

    // The repository reads what the session stored, with its JSON codec.
    let req = Request::get(&track_url).unwrap();
    assert_eq!(cache.get(&req).await.unwrap(), Some(track.clone()));
    let tracks = cache.repository("tracks").unwrap();
    let cached = tracks.get_cached(&req).await.unwrap().unwrap();
    assert_eq!(cached.name.as_deref(), Some("super cool song"));
    assert_eq!(tracks.count(false).await.unwrap(), 1);

    // Albums route to their own repository.
    let album_url = api.url("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy");
    session
        .get(&album_url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert!(
        session
            .get(&album_url)
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .from_cache()
    );
    assert_eq!(
        cache
            .repository("albums")
            .unwrap()
            .count(false)
            .await
            .unwrap(),
        1
    );

    // What no repository takes is not cached.
    for _ in 0..2 {
        let me = session
            .get(&api.url("/v1/me"))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap();
        assert_eq!(me.outcome(), CacheOutcome::Bypass);
        let album_tracks = session
            .get(&api.url("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy/tracks"))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap();
        assert_eq!(
            album_tracks.outcome(),
            CacheOutcome::Bypass,
            "album_tracks is not defined"
        );
    }
    assert_eq!(api.count("/v1/me"), 2);

    // A payload saved through the repository API is served by the session.
    let artist_url = api.url("/v1/artists/0TnOYISbd1XYRBk9myaseg");
    cache
        .save(
            &Request::get(&artist_url).unwrap(),
            &json!({"type": "artist", "name": "Pitbull"}),
        )
        .await
        .unwrap();
    let artist = session
        .get(&artist_url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert!(artist.from_cache());
    assert_eq!(artist.json::<Value>().unwrap()["name"], "Pitbull");
    assert_eq!(api.count("/v1/artists/0TnOYISbd1XYRBk9myaseg"), 0);

    // Two weeks later the entries are stale: revalidated with the ETag.
    clock.advance(Duration::from_secs(8 * 86_400));
    let later = session
        .get(&track_url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(later.outcome(), CacheOutcome::Revalidated);
    assert_eq!(later.json::<Value>().unwrap(), track);
    assert_eq!(api.count("/v1/tracks/6fWoFduMpBem73DMLCOh1Z"), 2);
}

async fn spotify_with_cache_control_revalidates_by_etag(b: B) {
    let api = Origin::without_date(spotify).await;
    let clock = clock();
    let cache = spotify_cache(b, clock.clone()).await;
    let session = CachedClient::builder()
        .build_with_cache(cache.clone())
        .await
        .unwrap();
    let url = api.url("/v1/tracks/42");
    let first = session
        .get(&url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert!(first.cache_status().stored());
    let second = session
        .get(&url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.outcome(),
        CacheOutcome::Revalidated,
        "max-age=0: revalidated every time"
    );
    assert_eq!(
        second.json::<Value>().unwrap(),
        first.json::<Value>().unwrap()
    );
    assert_eq!(api.count("/v1/tracks/42"), 2);
    assert!(api.last().unwrap().headers.contains_key("if-none-match"));
}

async fn a_response_cache_keeps_one_variant_and_serves_it_only_to_matching_requests(b: B) {
    let api = Origin::without_date(|s| {
        let lang = s
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        Reply::ok(json!({"name": format!("{lang} #{}", s.n)}).to_string())
            .header("vary", "accept-language")
            .header("cache-control", "max-age=60")
    })
    .await;
    let clock = clock();
    let cache = spotify_cache(b, clock.clone()).await;
    let session = CachedClient::builder()
        .build_with_cache(cache.clone())
        .await
        .unwrap();
    let url = api.url("/v1/albums/1");
    let get = |lang: &'static str| {
        let (session, url) = (session.clone(), url.clone());
        async move {
            session
                .get(&url)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
        }
    };
    assert!(!get("en").await.from_cache());
    assert!(get("en").await.from_cache());
    let fr = get("fr").await;
    assert!(
        !fr.from_cache(),
        "another variant is never served the stored one"
    );
    assert_eq!(fr.json::<Value>().unwrap()["name"], "fr #2");
    assert!(get("fr").await.from_cache());
    assert!(
        !get("en").await.from_cache(),
        "one variant per key: fr replaced en"
    );
    assert_eq!(api.count("/v1/albums/1"), 3);
}
