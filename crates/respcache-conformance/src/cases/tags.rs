//! Tag cases: entries carry [`Tags`], every backend returns them, and
//! `purge_tag` removes exactly the entries carrying a tag, in one store.
//!
//! An invalid tag is an `InvalidKey` error (when building [`Tags`] and
//! when purging), like an invalid key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use respcache_core::tags::MAX_TAG_BYTES;
use respcache_core::{
    DynStore, Entry, ErrorKind, FieldKind, Key, KeyPart, KeySchema, Name, Request, ResponseCache,
    Select, StoreSpec, Tags, TemplateSettings, TextCodec, Timestamp,
};

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    let mut list = cases![
        tags_round_trip_through_get_get_many_and_scan,
        purge_tag_removes_exactly_the_tagged_entries,
        replaced_entry_with_other_tags_is_not_purged_by_the_old_tag,
        deleted_entry_is_not_counted_by_purge_tag,
        cleared_entries_are_not_counted_by_purge_tag,
        set_expiry_and_set_meta_keep_tags,
        tags_are_isolated_between_stores_and_caches,
        purge_tag_of_three_hundred_entries,
        invalid_tags_are_invalid_key_errors,
        response_cache_purges_a_tag_in_every_repository,
    ];
    list.push(Case {
        name: "reopened_backend_purges_by_tag",
        needs_persistence: true,
        run: |ctx| Box::pin(reopened_backend_purges_by_tag(ctx)),
    });
    list
}

fn schema() -> KeySchema {
    KeySchema::new([("id", FieldKind::Text)]).unwrap_or_default()
}

fn spec(ctx: &TestContext, repo: &str) -> Result<StoreSpec, Failure> {
    Ok(StoreSpec::new(
        ctx.cache.clone(),
        Name::new(repo)?,
        schema(),
    ))
}

async fn open(ctx: &TestContext, repo: &str) -> Result<Arc<DynStore>, Failure> {
    Ok(ctx.backend.open_store(&spec(ctx, repo)?).await?)
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

fn tags(list: &[&str]) -> Result<Tags, Failure> {
    Ok(Tags::new(list.iter().copied())?)
}

fn tagged(id: &str, list: &[&str]) -> Result<Entry, Failure> {
    Ok(
        Entry::new(key(id), Timestamp::now(), format!("payload of {id}"))
            .with_expires_at(Some(
                Timestamp::now().saturating_add(Duration::from_secs(3600)),
            ))
            .with_tags(tags(list)?),
    )
}

async fn exists(store: &Arc<DynStore>, id: &str) -> Result<bool, Failure> {
    Ok(store.get(&key(id)).await?.is_some())
}

async fn tags_round_trip_through_get_get_many_and_scan(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    let a = tagged("a", &["artist:3", "album:7", "ünï côde / with spaces"])?
        .with_name("n")
        .with_meta("m");
    let b = tagged("b", &[])?;
    s.put(a.clone()).await?;
    s.put_many(vec![b.clone()]).await?;
    let got = s.get(&key("a")).await?;
    ensure_eq!(got, Some(a.clone()), "get returns the entry with its tags");
    ensure_eq!(
        got.map(|e| e.tags.into_vec()),
        Some(vec![
            "album:7".to_owned(),
            "artist:3".to_owned(),
            "ünï côde / with spaces".to_owned()
        ]),
        "tags come back sorted"
    );
    let many = s.get_many(&[key("b"), key("a")]).await?;
    ensure_eq!(many, vec![Some(b.clone()), Some(a.clone())], "get_many");
    let mut scanned: Vec<Entry> = s.scan(Select::All, Timestamp::now()).try_collect().await?;
    scanned.sort_by_key(|x| x.key.encode());
    ensure_eq!(scanned, vec![a, b], "scan returns the tags");
    Ok(())
}

async fn purge_tag_removes_exactly_the_tagged_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    s.put_many(vec![
        tagged("one", &["x"])?,
        tagged("two", &["x", "y"])?,
        tagged("three", &["y"])?,
        tagged("four", &[])?,
        // Stale entries carry their tags too, and are purged by them.
        tagged("stale", &["x"])?.with_expires_at(Some(Timestamp::from_millis(1))),
    ])
    .await?;
    ensure_eq!(
        s.purge_tag("x").await?,
        3,
        "purge_tag(x) counts what it removed"
    );
    for (id, there) in [
        ("one", false),
        ("two", false),
        ("stale", false),
        ("three", true),
        ("four", true),
    ] {
        ensure_eq!(exists(&s, id).await?, there, "{id} after purge_tag(x)");
    }
    ensure_eq!(s.purge_tag("x").await?, 0, "a second purge finds nothing");
    ensure_eq!(s.purge_tag("nobody-uses-this").await?, 0, "unknown tag");
    ensure_eq!(s.purge_tag("y").await?, 1, "purge_tag(y)");
    ensure_eq!(
        s.count(Select::All, Timestamp::now()).await?,
        1,
        "only the untagged entry is left"
    );
    Ok(())
}

async fn replaced_entry_with_other_tags_is_not_purged_by_the_old_tag(
    ctx: TestContext,
) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    s.put(tagged("k", &["old", "both"])?).await?;
    s.put(tagged("k", &["new", "both"])?).await?;
    s.put_many(vec![tagged("m", &["old"])?]).await?;
    s.put_many(vec![tagged("m", &[])?]).await?;
    ensure_eq!(
        s.purge_tag("old").await?,
        0,
        "the old tag no longer matches k or m"
    );
    ensure!(
        exists(&s, "k").await? && exists(&s, "m").await?,
        "k and m survive purge_tag(old)"
    );
    ensure_eq!(
        s.get(&key("k")).await?.map(|e| e.tags),
        Some(tags(&["both", "new"])?),
        "k carries its new tags"
    );
    ensure_eq!(s.purge_tag("new").await?, 1, "the new tag matches");
    ensure!(!exists(&s, "k").await?, "k is gone after purge_tag(new)");
    Ok(())
}

async fn deleted_entry_is_not_counted_by_purge_tag(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    s.put_many(vec![tagged("a", &["t"])?, tagged("b", &["t"])?])
        .await?;
    ensure!(s.delete(&key("a")).await?, "a existed");
    ensure_eq!(s.delete_many(&[key("b")]).await?, 1, "b existed");
    ensure_eq!(
        s.purge_tag("t").await?,
        0,
        "deleted entries are not counted"
    );
    // A key deleted then written again without the tag stays.
    s.put(tagged("a", &[])?).await?;
    ensure_eq!(s.purge_tag("t").await?, 0, "rewritten untagged");
    ensure!(exists(&s, "a").await?, "a survives");
    Ok(())
}

async fn cleared_entries_are_not_counted_by_purge_tag(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    s.put_many(vec![
        tagged("fresh", &["t"])?,
        tagged("stale", &["t"])?.with_expires_at(Some(Timestamp::from_millis(1))),
    ])
    .await?;
    ensure_eq!(
        s.clear(Select::Expired, Timestamp::now()).await?,
        1,
        "clear(Expired)"
    );
    ensure_eq!(
        s.purge_tag("t").await?,
        1,
        "only the fresh entry is left to purge"
    );
    s.put(tagged("again", &["t"])?).await?;
    ensure_eq!(
        s.clear(Select::All, Timestamp::now()).await?,
        1,
        "clear(All)"
    );
    ensure_eq!(
        s.purge_tag("t").await?,
        0,
        "nothing is left after clear(All)"
    );
    Ok(())
}

async fn set_expiry_and_set_meta_keep_tags(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    s.put(tagged("k", &["t", "u"])?).await?;
    let later = Some(Timestamp::now().saturating_add(Duration::from_secs(7200)));
    ensure!(s.set_expiry(&key("k"), later).await?, "set_expiry found k");
    ensure!(
        s.set_meta(&key("k"), Some(Bytes::from("304 meta")), later)
            .await?,
        "set_meta found k"
    );
    let got = s.get(&key("k")).await?;
    ensure_eq!(
        got.as_ref().map(|e| e.tags.clone()),
        Some(tags(&["t", "u"])?),
        "tags kept"
    );
    ensure_eq!(
        got.and_then(|e| e.meta),
        Some(Bytes::from("304 meta")),
        "meta replaced"
    );
    ensure_eq!(s.purge_tag("u").await?, 1, "still purged by its tag");
    Ok(())
}

async fn tags_are_isolated_between_stores_and_caches(ctx: TestContext) -> CaseResult {
    let a = open(&ctx, "tags-a").await?;
    let b = open(&ctx, "tags-b").await?;
    let other_cache = Name::new(format!("{}-other", ctx.cache.as_str()))?;
    let c = ctx
        .backend
        .open_store(&StoreSpec::new(
            other_cache.clone(),
            Name::new("tags-a")?,
            schema(),
        ))
        .await?;
    for s in [&a, &b, &c] {
        s.put(tagged("k", &["shared"])?).await?;
    }
    let outcome = async {
        ensure_eq!(a.purge_tag("shared").await?, 1, "purge in store a");
        ensure!(!exists(&a, "k").await?, "a's entry is gone");
        ensure!(exists(&b, "k").await?, "another repository keeps its entry");
        ensure!(exists(&c, "k").await?, "another cache keeps its entry");
        ensure_eq!(b.purge_tag("shared").await?, 1, "purge in store b");
        ensure!(
            exists(&c, "k").await?,
            "the other cache still keeps its entry"
        );
        Ok::<(), Failure>(())
    }
    .await;
    let _ = ctx
        .backend
        .drop_store(&other_cache, &Name::new("tags-a")?)
        .await;
    outcome
}

async fn purge_tag_of_three_hundred_entries(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags").await?;
    let mut entries = Vec::new();
    for i in 0..300 {
        entries.push(tagged(
            &format!("many-{i:03}"),
            &["bulk", &format!("one-{i}")],
        )?);
    }
    for i in 0..50 {
        entries.push(tagged(&format!("other-{i:03}"), &["not-bulk"])?);
    }
    for chunk in entries.chunks(100) {
        s.put_many(chunk.to_vec()).await?;
    }
    ensure_eq!(
        s.purge_tag("bulk").await?,
        300,
        "every tagged entry, past one page or batch"
    );
    ensure_eq!(
        s.count(Select::All, Timestamp::now()).await?,
        50,
        "the others stay"
    );
    ensure_eq!(
        s.purge_tag("one-7").await?,
        0,
        "their other tags match nothing any more"
    );
    ensure_eq!(
        s.purge_tag("not-bulk").await?,
        50,
        "the others purge by their own tag"
    );
    Ok(())
}

async fn invalid_tags_are_invalid_key_errors(ctx: TestContext) -> CaseResult {
    let too_long = "x".repeat(MAX_TAG_BYTES + 1);
    for bad in ["", "new\nline", "\u{0}", too_long.as_str()] {
        match Tags::new([bad]) {
            Err(e) if e.kind() == ErrorKind::InvalidKey => {}
            other => return Err(Failure(format!("Tags::new([{bad:?}]) gave {other:?}"))),
        }
    }
    let s = open(&ctx, "tags").await?;
    s.put(tagged("k", &["fine"])?).await?;
    for bad in ["", "tab\there", too_long.as_str()] {
        match s.purge_tag(bad).await {
            Err(e) if e.kind() == ErrorKind::InvalidKey => {}
            other => return Err(Failure(format!("purge_tag({bad:?}) gave {other:?}"))),
        }
    }
    ensure!(exists(&s, "k").await?, "a refused purge removes nothing");
    let longest = "y".repeat(MAX_TAG_BYTES);
    s.put(tagged("long", &[longest.as_str()])?).await?;
    ensure_eq!(
        s.purge_tag(&longest).await?,
        1,
        "a tag of the longest length works"
    );
    Ok(())
}

async fn response_cache_purges_a_tag_in_every_repository(ctx: TestContext) -> CaseResult {
    let cache = ResponseCache::<String>::builder(ctx.cache.as_str())
        .create_repository(TemplateSettings::new("albums", "/albums/{id}", TextCodec)?)
        .create_repository(TemplateSettings::new("tracks", "/tracks/{id}", TextCodec)?)
        .connect(Arc::clone(&ctx.backend))
        .await?;
    let req = |path: &str| Request::get(&format!("https://api.example{path}"));
    let artist = tags(&["artist:1"])?;
    cache
        .save_tagged(&req("/albums/1")?, &"album".to_owned(), &artist)
        .await?;
    cache
        .save_tagged(&req("/tracks/1")?, &"track".to_owned(), &artist)
        .await?;
    cache
        .save(&req("/tracks/2")?, &"untagged".to_owned())
        .await?;
    let repo = cache
        .repository("tracks")
        .ok_or_else(|| Failure("no tracks repository".to_owned()))?;
    let cached: Vec<_> = repo.iterate(false).try_collect().await?;
    ensure!(
        cached.iter().any(|c| c.tags == artist),
        "iterate returns the tags saved"
    );
    ensure_eq!(
        cache.purge_tag("artist:1").await?,
        2,
        "one entry per repository"
    );
    ensure_eq!(cache.get(&req("/albums/1")?).await?, None, "album purged");
    ensure_eq!(cache.get(&req("/tracks/1")?).await?, None, "track purged");
    ensure_eq!(
        cache.get(&req("/tracks/2")?).await?,
        Some("untagged".to_owned()),
        "the untagged entry stays"
    );
    match cache.purge_tag("").await {
        Err(e) if e.kind() == ErrorKind::InvalidKey => Ok(()),
        other => Err(Failure(format!("purge_tag(\"\") gave {other:?}"))),
    }
}

async fn reopened_backend_purges_by_tag(ctx: TestContext) -> CaseResult {
    let s = open(&ctx, "tags-durable").await?;
    s.put_many(vec![
        tagged("a", &["t"])?,
        tagged("b", &["t"])?,
        tagged("c", &[])?,
    ])
    .await?;
    s.put(tagged("b", &["u"])?).await?;
    let reopened = ctx.factory.connect().await?;
    let outcome = async {
        let s2 = reopened.open_store(&spec(&ctx, "tags-durable")?).await?;
        ensure_eq!(
            s2.get(&key("a")).await?.map(|e| e.tags),
            Some(tags(&["t"])?),
            "a new handle reads the tags"
        );
        ensure_eq!(
            s2.purge_tag("t").await?,
            1,
            "a new handle purges by the stored index"
        );
        ensure!(
            exists(&s2, "b").await? && exists(&s2, "c").await?,
            "b and c stay"
        );
        Ok::<(), Failure>(())
    }
    .await;
    reopened.close().await?;
    outcome
}
