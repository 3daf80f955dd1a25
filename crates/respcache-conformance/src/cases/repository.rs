//! Repository and ResponseCache cases: the API-aware face, on every backend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::http::Method;
use respcache_core::{
    BincodeCodec, BytesCodec, Codec, ErrorKind, FieldKind, JsonCodec, Key, KeyPart, KeySchema,
    ManualClock, Repository, RepositoryOptions, RepositorySettings, Request, ResponseCache,
    TemplateSettings, TextCodec,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![
        spotify_settings_make_keys_from_paths,
        spotify_name_comes_from_the_payload,
        repository_save_get_contains_count,
        stale_answers_are_misses_but_stay_stored,
        repository_clear_expired_only_keeps_fresh_answers,
        settings_expiry_overrides_the_cache_default,
        text_codec_round_trips,
        json_codec_round_trips,
        bincode_codec_round_trips,
        bytes_codec_round_trips,
        payload_that_no_longer_decodes_is_a_miss,
        repository_getter_routes_urls,
        batches_skip_requests_the_getter_does_not_route,
        default_routing_picks_the_first_matching_repository,
        batch_spanning_repositories_is_an_error,
        batches_within_one_repository,
        duplicate_repository_name_is_an_error,
        invalid_repository_names_are_refused,
        repository_iterate_streams_payloads,
        repository_delete_responses,
        use_after_cache_close_is_a_closed_error,
        uncacheable_requests_are_not_saved,
    ]
}

// ---------------------------------------------------------------- helpers

/// The seed's Spotify settings, written by hand as a user would: fields
/// `id` and `version`, key from `/{version}/tracks/{id}`, only GET, the
/// payload's `name` as the entry name.
struct SpotifyTracks {
    schema: KeySchema,
}

impl SpotifyTracks {
    fn new() -> Result<Self, Failure> {
        Ok(SpotifyTracks {
            schema: KeySchema::new([("id", FieldKind::Text), ("version", FieldKind::Text)])?,
        })
    }
}

impl RepositorySettings<Value> for SpotifyTracks {
    fn name(&self) -> &str {
        "tracks"
    }
    fn fields(&self) -> &KeySchema {
        &self.schema
    }
    fn key(&self, request: &Request) -> Option<Key> {
        if request.method() != Method::GET {
            return None;
        }
        let segments: Vec<&str> = request.url().path_segments()?.collect();
        match segments.as_slice() {
            [version, "tracks", id] if !id.is_empty() => Some(Key::new(
                "GET",
                [KeyPart::from(*id), KeyPart::from(*version)],
            )),
            _ => None,
        }
    }
    fn name_of(&self, payload: &Value) -> Option<String> {
        payload.get("name")?.as_str().map(str::to_owned)
    }
    fn codec(&self) -> &dyn Codec<Value> {
        &JsonCodec
    }
}

fn req(url: &str) -> Result<Request, Failure> {
    Ok(Request::get(url)?)
}

const API: &str = "https://api.spotify.com";

fn track_url(id: &str) -> String {
    format!("{API}/v1/tracks/{id}")
}

async fn repo<P: Send + Sync + 'static>(
    ctx: &TestContext,
    settings: impl RepositorySettings<P>,
    clock: Arc<ManualClock>,
    expiry: Option<Duration>,
) -> Result<Repository<P>, Failure> {
    let options = RepositoryOptions {
        clock,
        default_expiry: expiry.into(),
        retention: None,
    };
    Ok(Repository::create(ctx.backend.as_ref(), ctx.cache.as_str(), settings, options).await?)
}

async fn spotify_cache(
    ctx: &TestContext,
    clock: Arc<ManualClock>,
) -> Result<ResponseCache<Value>, Failure> {
    Ok(ResponseCache::<Value>::builder(ctx.cache.as_str())
        .default_expiry(Duration::from_secs(3600))
        .clock(clock)
        .create_repository(SpotifyTracks::new()?)
        .create_repository(TemplateSettings::new(
            "albums",
            "/{version}/albums/{id}",
            JsonCodec,
        )?)
        .connect(Arc::clone(&ctx.backend))
        .await?)
}

// ---------------------------------------------------------------- cases

async fn spotify_settings_make_keys_from_paths(ctx: TestContext) -> CaseResult {
    let settings = SpotifyTracks::new()?;
    let key = settings.key(&req(&track_url("11dFghVXANMlKmJXsNCbNl"))?);
    ensure_eq!(
        key,
        Some(Key::new(
            "GET",
            ["11dFghVXANMlKmJXsNCbNl".into(), "v1".into()]
        )),
        "key from /v1/tracks/{{id}}"
    );
    let post = Request::parse(Method::POST, &track_url("x"))?;
    ensure_eq!(settings.key(&post), None, "POST is not cached");
    ensure_eq!(
        settings.key(&req(&format!("{API}/v1/tracks"))?),
        None,
        "a short path is not cached"
    );
    ensure_eq!(
        settings.key(&req(&format!("{API}/v1/tracks/"))?),
        None,
        "an empty id is not cached"
    );
    let tracks = repo(&ctx, settings, Arc::new(ManualClock::new()), None).await?;
    let saved = tracks.save_response(&post, &json!({"name": "x"})).await?;
    ensure!(!saved, "saving a POST answer reports false");
    ensure_eq!(tracks.count(true).await?, 0, "and stores nothing");
    Ok(())
}

async fn spotify_name_comes_from_the_payload(ctx: TestContext) -> CaseResult {
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::new(ManualClock::new()),
        None,
    )
    .await?;
    let r = req(&track_url("3n3Ppam7vgaVa1iaRUc9Lp"))?;
    tracks
        .save_response(
            &r,
            &json!({"id": "3n3Ppam7vgaVa1iaRUc9Lp", "name": "Mr. Brightside"}),
        )
        .await?;
    let cached = tracks
        .get_cached(&r)
        .await?
        .ok_or_else(|| Failure("saved track missing".into()))?;
    ensure_eq!(
        cached.name.as_deref(),
        Some("Mr. Brightside"),
        "name from the payload"
    );
    let stored = tracks.store().get(&cached.key).await?.and_then(|e| e.name);
    ensure_eq!(
        stored.as_deref(),
        Some("Mr. Brightside"),
        "name in the store"
    );
    Ok(())
}

async fn repository_save_get_contains_count(ctx: TestContext) -> CaseResult {
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::new(ManualClock::new()),
        None,
    )
    .await?;
    let r = req(&track_url("a"))?;
    ensure_eq!(tracks.get_response(&r).await?, None, "miss before saving");
    ensure!(!tracks.contains(&r).await?, "not contained before saving");
    let payload = json!({"name": "A", "duration_ms": 215_000, "explicit": false});
    ensure!(
        tracks.save_response(&r, &payload).await?,
        "save reports true"
    );
    ensure_eq!(
        tracks.get_response(&r).await?,
        Some(payload),
        "hit after saving"
    );
    ensure!(tracks.contains(&r).await?, "contained after saving");
    ensure_eq!(tracks.count(false).await?, 1, "count");
    Ok(())
}

async fn stale_answers_are_misses_but_stay_stored(ctx: TestContext) -> CaseResult {
    let clock = Arc::new(ManualClock::new());
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::clone(&clock),
        Some(Duration::from_secs(60)),
    )
    .await?;
    let r = req(&track_url("a"))?;
    tracks.save_response(&r, &json!({"name": "A"})).await?;
    clock.advance(Duration::from_secs(59));
    ensure!(tracks.get_response(&r).await?.is_some(), "fresh at 59 s");
    clock.advance(Duration::from_secs(1));
    ensure_eq!(tracks.get_response(&r).await?, None, "a miss at 60 s");
    ensure!(!tracks.contains(&r).await?, "not contained when stale");
    ensure_eq!(tracks.count(false).await?, 0, "count(fresh) skips it");
    ensure_eq!(
        tracks.count(true).await?,
        1,
        "count(include_expired) still sees it"
    );
    let key = tracks.key(&r).ok_or_else(|| Failure("no key".into()))?;
    ensure!(
        tracks.store().get(&key).await?.is_some(),
        "the stale entry is still stored for revalidation"
    );
    Ok(())
}

async fn repository_clear_expired_only_keeps_fresh_answers(ctx: TestContext) -> CaseResult {
    let clock = Arc::new(ManualClock::new());
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::clone(&clock),
        Some(Duration::from_secs(60)),
    )
    .await?;
    tracks
        .save_response(&req(&track_url("old"))?, &json!({"name": "old"}))
        .await?;
    clock.advance(Duration::from_secs(120));
    tracks
        .save_response(&req(&track_url("new"))?, &json!({"name": "new"}))
        .await?;
    ensure_eq!(
        tracks.clear(true).await?,
        1,
        "clear(expired_only) removes the stale one"
    );
    ensure!(
        tracks
            .get_response(&req(&track_url("new"))?)
            .await?
            .is_some(),
        "the fresh answer survives (the seed's SQLite bug deleted it)"
    );
    ensure_eq!(tracks.count(true).await?, 1, "one left");
    ensure_eq!(tracks.clear(false).await?, 1, "clear(all)");
    ensure_eq!(tracks.count(true).await?, 0, "none left");
    Ok(())
}

async fn settings_expiry_overrides_the_cache_default(ctx: TestContext) -> CaseResult {
    let clock = Arc::new(ManualClock::new());
    let cache = ResponseCache::<String>::builder(ctx.cache.as_str())
        .default_expiry(Duration::from_secs(10))
        .clock(Arc::clone(&clock) as Arc<dyn respcache_core::Clock>)
        .create_repository(TemplateSettings::new("short", "/short/{id}", TextCodec)?)
        .create_repository(
            TemplateSettings::new("long", "/long/{id}", TextCodec)?
                .with_expiry(Duration::from_secs(3600)),
        )
        .create_repository(
            TemplateSettings::new("forever", "/forever/{id}", TextCodec)?
                .with_expiry(respcache_core::Expiry::Never),
        )
        .connect(Arc::clone(&ctx.backend))
        .await?;
    for path in ["short", "long", "forever"] {
        cache
            .save(&req(&format!("{API}/{path}/1"))?, &path.to_owned())
            .await?;
    }
    clock.advance(Duration::from_secs(11));
    ensure_eq!(
        cache.get(&req(&format!("{API}/short/1"))?).await?,
        None,
        "default expiry of 10 s applies"
    );
    ensure_eq!(
        cache.get(&req(&format!("{API}/long/1"))?).await?.as_deref(),
        Some("long"),
        "settings' 1 h expiry wins"
    );
    clock.advance(Duration::from_secs(86_400 * 365));
    ensure_eq!(
        cache
            .get(&req(&format!("{API}/forever/1"))?)
            .await?
            .as_deref(),
        Some("forever"),
        "Expiry::Never"
    );
    Ok(())
}

async fn codec_round_trip<P>(
    ctx: &TestContext,
    name: &str,
    codec: impl Codec<P>,
    value: P,
) -> CaseResult
where
    P: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    let settings = TemplateSettings::new(name, "/items/{id}", codec)?;
    let r = repo(ctx, settings, Arc::new(ManualClock::new()), None).await?;
    let request = req(&format!("{API}/items/1"))?;
    r.save_response(&request, &value).await?;
    ensure_eq!(
        r.get_response(&request).await?,
        Some(value),
        "{name} codec round trip"
    );
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Album {
    id: String,
    name: String,
    tracks: Vec<u32>,
    rating: Option<f64>,
}

fn album() -> Album {
    Album {
        id: "4aawyAB9vmqN3uQ7FjRGTy".into(),
        name: "Global Warming \u{1F30D}".into(),
        tracks: vec![1, 2, 3, 65_535],
        rating: Some(4.5),
    }
}

async fn text_codec_round_trips(ctx: TestContext) -> CaseResult {
    codec_round_trip(
        &ctx,
        "text",
        TextCodec,
        "ünïcödé text\n\0 with nul".to_owned(),
    )
    .await
}

async fn json_codec_round_trips(ctx: TestContext) -> CaseResult {
    codec_round_trip(&ctx, "json", JsonCodec, album()).await
}

async fn bincode_codec_round_trips(ctx: TestContext) -> CaseResult {
    codec_round_trip(&ctx, "bincode", BincodeCodec, album()).await
}

async fn bytes_codec_round_trips(ctx: TestContext) -> CaseResult {
    let value: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
    codec_round_trip(&ctx, "bytes", BytesCodec, value).await
}

async fn payload_that_no_longer_decodes_is_a_miss(ctx: TestContext) -> CaseResult {
    let clock = Arc::new(ManualClock::new());
    let as_text = repo(
        &ctx,
        TemplateSettings::new("items", "/items/{id}", TextCodec)?,
        Arc::clone(&clock),
        None,
    )
    .await?;
    let request = req(&format!("{API}/items/1"))?;
    as_text
        .save_response(&request, &"this is not JSON".to_owned())
        .await?;
    // The same repository, reopened by a program that now expects JSON.
    let as_json = repo(
        &ctx,
        TemplateSettings::<Album>::new("items", "/items/{id}", JsonCodec)?,
        clock,
        None,
    )
    .await?;
    let before = as_json.decode_failures();
    ensure_eq!(
        as_json.get_response(&request).await?,
        None,
        "an undecodable payload is a miss, not an error"
    );
    ensure_eq!(as_json.decode_failures(), before + 1, "and it is counted");
    let listed: Vec<_> = as_json.iterate(false).try_collect().await?;
    ensure!(listed.is_empty(), "iterate skips it too");
    // Saving again replaces it.
    as_json.save_response(&request, &album()).await?;
    ensure_eq!(
        as_json.get_response(&request).await?,
        Some(album()),
        "a new save fixes it"
    );
    Ok(())
}

async fn repository_getter_routes_urls(ctx: TestContext) -> CaseResult {
    let cache = ResponseCache::<String>::builder(ctx.cache.as_str())
        .create_repository(TemplateSettings::new("eu", "/forecast/{city}", TextCodec)?)
        .create_repository(TemplateSettings::new("us", "/forecast/{city}", TextCodec)?)
        .repository_getter(|url| match url.host_str() {
            Some(h) if h.ends_with(".eu") => Some("eu".to_owned()),
            Some(h) if h.ends_with(".us") => Some("us".to_owned()),
            _ => None,
        })
        .connect(Arc::clone(&ctx.backend))
        .await?;
    let eu = req("https://weather.eu/forecast/oslo")?;
    let us = req("https://weather.us/forecast/oslo")?;
    let other = req("https://weather.example/forecast/oslo")?;
    ensure_eq!(
        cache.repository_for(&eu).map(|r| r.name()),
        Some("eu"),
        "eu routing"
    );
    ensure_eq!(
        cache.repository_for(&us).map(|r| r.name()),
        Some("us"),
        "us routing"
    );
    ensure!(cache.repository_for(&other).is_none(), "unrouted URL");
    cache.save(&eu, &"rain".to_owned()).await?;
    cache.save(&us, &"sun".to_owned()).await?;
    ensure!(
        !cache.save(&other, &"x".to_owned()).await?,
        "an unrouted request is not saved"
    );
    ensure_eq!(cache.get(&eu).await?.as_deref(), Some("rain"), "eu answer");
    ensure_eq!(
        cache.get(&us).await?.as_deref(),
        Some("sun"),
        "us answer, same path, other repository"
    );
    ensure_eq!(cache.get(&other).await?, None, "unrouted is a miss");
    Ok(())
}

async fn batches_skip_requests_the_getter_does_not_route(ctx: TestContext) -> CaseResult {
    let cache = ResponseCache::<String>::builder(ctx.cache.as_str())
        .create_repository(TemplateSettings::new("eu", "/forecast/{city}", TextCodec)?)
        .repository_getter(|url| {
            url.host_str()
                .filter(|h| h.ends_with(".eu"))
                .map(|_| "eu".to_owned())
        })
        .connect(Arc::clone(&ctx.backend))
        .await?;
    let eu = req("https://weather.eu/forecast/oslo")?;
    let other = req("https://weather.example/forecast/oslo")?;
    cache.save(&eu, &"rain".to_owned()).await?;
    ensure_eq!(
        cache.get_many(&[eu.clone(), other.clone()]).await?,
        vec![Some("rain".to_owned()), None],
        "an unrouted request in a batch is a miss, like a single get"
    );
    let saved = cache
        .save_many(&[(other.clone(), "from another host".to_owned())])
        .await?;
    ensure_eq!(saved, 0, "an unrouted request in a batch is not saved");
    ensure_eq!(
        cache.get(&eu).await?.as_deref(),
        Some("rain"),
        "the routed answer is untouched"
    );
    ensure_eq!(cache.delete_many(&[other]).await?, 0, "nor deleted");
    ensure_eq!(
        cache.get(&eu).await?.as_deref(),
        Some("rain"),
        "still there"
    );
    Ok(())
}

async fn default_routing_picks_the_first_matching_repository(ctx: TestContext) -> CaseResult {
    let cache = spotify_cache(&ctx, Arc::new(ManualClock::new())).await?;
    let track = req(&track_url("t1"))?;
    let album = req(&format!("{API}/v1/albums/a1"))?;
    ensure_eq!(
        cache.repository_for(&track).map(|r| r.name()),
        Some("tracks"),
        "track routing"
    );
    ensure_eq!(
        cache.repository_for(&album).map(|r| r.name()),
        Some("albums"),
        "album routing"
    );
    cache.save(&album, &json!({"name": "Album"})).await?;
    let albums = cache
        .repository("albums")
        .ok_or_else(|| Failure("albums missing".into()))?;
    let tracks = cache
        .repository("tracks")
        .ok_or_else(|| Failure("tracks missing".into()))?;
    ensure_eq!(albums.count(true).await?, 1, "saved into albums");
    ensure_eq!(tracks.count(true).await?, 0, "not into tracks");
    Ok(())
}

async fn batch_spanning_repositories_is_an_error(ctx: TestContext) -> CaseResult {
    let cache = spotify_cache(&ctx, Arc::new(ManualClock::new())).await?;
    let mixed = vec![req(&track_url("t1"))?, req(&format!("{API}/v1/albums/a1"))?];
    let err = cache.get_many(&mixed).await.err().map(|e| e.kind());
    ensure_eq!(
        err,
        Some(ErrorKind::MixedBatch),
        "get_many across repositories"
    );
    let items = vec![(mixed[0].clone(), json!({})), (mixed[1].clone(), json!({}))];
    let err = cache.save_many(&items).await.err().map(|e| e.kind());
    ensure_eq!(
        err,
        Some(ErrorKind::MixedBatch),
        "save_many across repositories"
    );
    ensure_eq!(
        cache.repository("tracks").map(|_| ()),
        Some(()),
        "tracks exists"
    );
    let tracks_count = match cache.repository("tracks") {
        Some(r) => r.count(true).await?,
        None => 0,
    };
    ensure_eq!(tracks_count, 0, "nothing half-saved by the refused batch");
    let err = cache.delete_many(&mixed).await.err().map(|e| e.kind());
    ensure_eq!(
        err,
        Some(ErrorKind::MixedBatch),
        "delete_many across repositories"
    );
    Ok(())
}

async fn batches_within_one_repository(ctx: TestContext) -> CaseResult {
    let cache = spotify_cache(&ctx, Arc::new(ManualClock::new())).await?;
    let items: Vec<(Request, Value)> = (0..50)
        .map(|i| {
            Ok((
                req(&track_url(&format!("t{i}")))?,
                json!({"name": format!("Track {i}")}),
            ))
        })
        .collect::<Result<_, Failure>>()?;
    ensure_eq!(cache.save_many(&items).await?, 50, "save_many");
    let mut asked: Vec<Request> = items.iter().map(|(r, _)| r.clone()).collect();
    asked.insert(10, req(&track_url("missing"))?);
    let got = cache.get_many(&asked).await?;
    ensure_eq!(got.len(), 51, "one slot per request");
    ensure_eq!(got[10], None, "the missing one");
    ensure_eq!(got[0], Some(json!({"name": "Track 0"})), "first");
    ensure_eq!(got[50], Some(json!({"name": "Track 49"})), "last");
    ensure_eq!(
        cache.delete_many(&asked).await?,
        50,
        "delete_many counts the stored ones"
    );
    Ok(())
}

async fn duplicate_repository_name_is_an_error(ctx: TestContext) -> CaseResult {
    let err = ResponseCache::<String>::builder(ctx.cache.as_str())
        .create_repository(TemplateSettings::new("dup", "/a/{id}", TextCodec)?)
        .create_repository(TemplateSettings::new("dup", "/b/{id}", TextCodec)?)
        .connect(Arc::clone(&ctx.backend))
        .await
        .err()
        .map(|e| e.kind());
    ensure_eq!(
        err,
        Some(ErrorKind::Configuration),
        "two repositories named dup"
    );
    Ok(())
}

struct Named(&'static str, KeySchema);

impl RepositorySettings<String> for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn fields(&self) -> &KeySchema {
        &self.1
    }
    fn key(&self, _: &Request) -> Option<Key> {
        None
    }
    fn codec(&self) -> &dyn Codec<String> {
        &TextCodec
    }
}

async fn invalid_repository_names_are_refused(ctx: TestContext) -> CaseResult {
    for bad in [
        "x\"; DROP TABLE y; --",
        "",
        "a b",
        "a:b",
        "../etc",
        "a.b",
        "é",
        "_hidden",
    ] {
        let result = Repository::create(
            ctx.backend.as_ref(),
            ctx.cache.as_str(),
            Named(bad, KeySchema::default()),
            RepositoryOptions::default(),
        )
        .await;
        ensure_eq!(
            result.err().map(|e| e.kind()),
            Some(ErrorKind::InvalidName),
            "repository name {bad:?}"
        );
    }
    let bad_cache = Repository::create(
        ctx.backend.as_ref(),
        "bad/cache",
        Named("fine", KeySchema::default()),
        RepositoryOptions::default(),
    )
    .await;
    ensure_eq!(
        bad_cache.err().map(|e| e.kind()),
        Some(ErrorKind::InvalidName),
        "cache name bad/cache"
    );
    ensure!(
        ctx.backend.list_stores(&ctx.cache).await?.is_empty(),
        "nothing was created"
    );
    Ok(())
}

async fn repository_iterate_streams_payloads(ctx: TestContext) -> CaseResult {
    let clock = Arc::new(ManualClock::new());
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::clone(&clock),
        Some(Duration::from_secs(60)),
    )
    .await?;
    tracks
        .save_response(&req(&track_url("old"))?, &json!({"name": "Old"}))
        .await?;
    clock.advance(Duration::from_secs(61));
    for i in 0..3 {
        tracks
            .save_response(
                &req(&track_url(&format!("n{i}")))?,
                &json!({"name": format!("New {i}")}),
            )
            .await?;
    }
    let mut fresh: Vec<String> = tracks
        .iterate(true)
        .map_ok(|c| c.name.unwrap_or_default())
        .try_collect()
        .await?;
    fresh.sort();
    ensure_eq!(
        fresh,
        vec!["New 0", "New 1", "New 2"],
        "iterate(fresh_only)"
    );
    let all: Vec<_> = tracks.iterate(false).try_collect().await?;
    ensure_eq!(all.len(), 4, "iterate(all) includes the stale one");
    Ok(())
}

async fn repository_delete_responses(ctx: TestContext) -> CaseResult {
    let tracks = repo(
        &ctx,
        SpotifyTracks::new()?,
        Arc::new(ManualClock::new()),
        None,
    )
    .await?;
    let a = req(&track_url("a"))?;
    let b = req(&track_url("b"))?;
    tracks.save_response(&a, &json!(1)).await?;
    tracks.save_response(&b, &json!(2)).await?;
    ensure!(
        tracks.delete_response(&a).await?,
        "delete_response of a stored answer"
    );
    ensure!(!tracks.delete_response(&a).await?, "twice is false");
    ensure_eq!(
        tracks
            .delete_responses(&[a, b.clone(), req(&track_url("c"))?])
            .await?,
        1,
        "delete_responses counts stored ones"
    );
    ensure_eq!(tracks.get_response(&b).await?, None, "b is gone");
    Ok(())
}

async fn use_after_cache_close_is_a_closed_error(ctx: TestContext) -> CaseResult {
    let cache = spotify_cache(&ctx, Arc::new(ManualClock::new())).await?;
    let r = req(&track_url("a"))?;
    cache.save(&r, &json!(1)).await?;
    let tracks = cache
        .repository("tracks")
        .cloned()
        .ok_or_else(|| Failure("tracks missing".into()))?;
    cache.close().await?;
    ensure_eq!(
        cache.get(&r).await.err().map(|e| e.kind()),
        Some(ErrorKind::Closed),
        "cache get after close"
    );
    ensure_eq!(
        cache.save(&r, &json!(2)).await.err().map(|e| e.kind()),
        Some(ErrorKind::Closed),
        "cache save after close"
    );
    ensure_eq!(
        tracks.count(true).await.err().map(|e| e.kind()),
        Some(ErrorKind::Closed),
        "repository after close"
    );
    ensure_eq!(
        tracks.commit().await.err().map(|e| e.kind()),
        Some(ErrorKind::Closed),
        "commit after close"
    );
    Ok(())
}

async fn uncacheable_requests_are_not_saved(ctx: TestContext) -> CaseResult {
    let albums = repo(
        &ctx,
        TemplateSettings::<String>::new("albums", "/v1/albums/{id:int}", TextCodec)?,
        Arc::new(ManualClock::new()),
        None,
    )
    .await?;
    for url in [
        format!("{API}/v1/albums/not-a-number"),
        format!("{API}/v1/albums"),
        format!("{API}/v1/albums/1/tracks"),
        format!("{API}/v2/albums/1"),
    ] {
        ensure!(
            !albums.save_response(&req(&url)?, &"x".to_owned()).await?,
            "{url} is not cached"
        );
    }
    ensure!(
        albums
            .save_response(&req(&format!("{API}/v1/albums/-7"))?, &"ok".to_owned())
            .await?,
        "an integer id is cached"
    );
    ensure_eq!(
        albums.count(true).await?,
        1,
        "only the cacheable one was stored"
    );
    Ok(())
}
