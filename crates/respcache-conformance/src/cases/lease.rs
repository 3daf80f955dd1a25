//! Lease cases: the optional lease contract of [`Store`](respcache_core::Store)
//! (exclusive, expires, released, only by its holder, outlives a dead holder
//! only until it expires, never an entry).
//!
//! A backend that declared leases ([`Factory::with_leases`](crate::Factory::with_leases))
//! must keep the contract; one that did not may instead answer
//! `Unsupported` to both calls, every time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use respcache_core::{
    Backend, CrossProcess, DynStore, Entry, Error, ErrorKind, FieldKind, Key, KeyPart, KeySchema,
    KeyValueCache, LeaseToken, Name, Select, StoreSpec, Timestamp,
};

use super::{Case, cases};
use crate::check::{CaseResult, Failure};
use crate::factory::TestContext;
use crate::{ensure, ensure_eq};

pub(super) fn cases() -> Vec<Case> {
    cases![
        lease_is_exclusive,
        lease_is_exclusive_under_a_race,
        lease_expires_after_its_ttl,
        released_lease_can_be_taken_again,
        release_by_a_non_holder_does_nothing,
        an_expired_holder_cannot_release_the_next_lease,
        a_dead_holders_lease_expires,
        leases_are_not_entries_and_belong_to_one_store,
        kv_cross_process_computes_once_across_handles,
    ]
}

/// Long enough that no loaded machine lets it lapse during a case.
const LONG: Duration = Duration::from_secs(30);
/// Short enough to wait for; long enough to see it held first.
const SHORT: Duration = Duration::from_millis(400);
/// How long an expired lease may take to become free again.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

fn schema() -> KeySchema {
    KeySchema::new([("id", FieldKind::Text)]).unwrap_or_default()
}

fn key(id: &str) -> Key {
    Key::new("GET", [KeyPart::Text(id.to_owned())])
}

async fn open(ctx: &TestContext, repo: &str) -> Result<Arc<DynStore>, Failure> {
    let spec = StoreSpec::new(ctx.cache.clone(), Name::new(repo)?, schema());
    Ok(ctx.backend.open_store(&spec).await?)
}

/// Whether the lease cases apply: `true` when the store took a first
/// lease on `probe`. A backend without leases must answer `Unsupported` to
/// both calls (and then the case ends here, reported *ignored*: nothing of
/// the contract was shown); a backend that declared leases must not.
async fn takes_leases(ctx: &TestContext, store: &DynStore, probe: &Key) -> Result<bool, Failure> {
    match store.acquire_lease(probe, LONG).await {
        Ok(Some(token)) => {
            ensure!(
                store.release_lease(probe, &token).await?,
                "releasing a lease just taken with its own token returned false"
            );
            Ok(true)
        }
        Ok(None) => Err(Failure(
            "the first lease on a fresh key was refused as held".to_owned(),
        )),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            ensure!(
                !ctx.factory.has_leases(),
                "the backend declared leases but answered: {e}"
            );
            match store.release_lease(probe, &LeaseToken::generate()).await {
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    ctx.ignore("the backend answers Unsupported to leases (no .with_leases())")?;
                    Ok(false)
                }
                other => Err(Failure(format!(
                    "acquire_lease is unsupported but release_lease answered {other:?}"
                ))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Another handle onto the store `repo`: through a new connection when
/// the backend is persistent (handles share their data), else through the
/// same backend. Close the backend it returns when done.
async fn other_handle(
    ctx: &TestContext,
    repo: &str,
) -> Result<(Option<Arc<dyn Backend>>, Arc<DynStore>), Failure> {
    let spec = StoreSpec::new(ctx.cache.clone(), Name::new(repo)?, schema());
    if ctx.factory.is_persistent() {
        let backend = ctx.factory.connect().await?;
        let store = backend.open_store(&spec).await?;
        Ok((Some(backend), store))
    } else {
        Ok((None, ctx.backend.open_store(&spec).await?))
    }
}

/// Tries to take `key` until it succeeds or `bound` passes.
async fn take_within(
    store: &DynStore,
    key: &Key,
    ttl: Duration,
    bound: Duration,
) -> Result<Option<LeaseToken>, Failure> {
    let start = Instant::now();
    loop {
        if let Some(token) = store.acquire_lease(key, ttl).await? {
            return Ok(Some(token));
        }
        if start.elapsed() >= bound {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lease_is_exclusive(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("exclusive");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    let token = store.acquire_lease(&k, LONG).await?;
    ensure!(token.is_some(), "a free key was refused");
    ensure_eq!(
        store.acquire_lease(&k, LONG).await?,
        None,
        "a held lease was granted again on the same handle"
    );
    // Another handle (another connection, file handle or client).
    let (other, other_store) = other_handle(&ctx, "leases").await?;
    let again = other_store.acquire_lease(&k, LONG).await;
    if let Some(other) = other {
        let _ = other.close().await;
    }
    ensure_eq!(again?, None, "a held lease was granted to another handle");
    // Another key is independent; so is a key that differs by one field byte.
    let near = key("exclusive ");
    ensure!(
        store.acquire_lease(&near, LONG).await?.is_some(),
        "a lease on a different key was refused"
    );
    let odd = key("a/b\\c:ü {x} *?[");
    ensure!(
        store.acquire_lease(&odd, LONG).await?.is_some(),
        "a lease on a key with separators and unicode was refused"
    );
    ensure_eq!(
        store.acquire_lease(&odd, LONG).await?,
        None,
        "a held lease on an odd key was granted again"
    );
    Ok(())
}

async fn lease_is_exclusive_under_a_race(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    if !takes_leases(&ctx, store.as_ref(), &key("probe")).await? {
        return Ok(());
    }
    for round in 0..5 {
        let k = key(&format!("race-{round}"));
        let attempts = (0..16).map(|_| {
            let store = Arc::clone(&store);
            let k = k.clone();
            tokio::spawn(async move { store.acquire_lease(&k, LONG).await })
        });
        let mut granted = 0;
        for attempt in futures::future::join_all(attempts).await {
            let outcome = attempt.map_err(|e| Failure(format!("a racing task failed: {e}")))?;
            if outcome?.is_some() {
                granted += 1;
            }
        }
        ensure_eq!(
            granted,
            1,
            "leases granted to 16 racing tasks, round {round}"
        );
    }
    Ok(())
}

async fn lease_expires_after_its_ttl(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("expires");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    let start = Instant::now();
    ensure!(
        store.acquire_lease(&k, SHORT).await?.is_some(),
        "a free key was refused"
    );
    let held = store.acquire_lease(&k, LONG).await?;
    let checked = start.elapsed();
    if checked < SHORT {
        ensure_eq!(
            held,
            None,
            "the lease was free again {checked:?} into its {SHORT:?}"
        );
    }
    // On a loaded machine the check above may come after the expiry and
    // take the lease itself: that is the takeover this case waits for.
    let taken = match held {
        Some(token) => Some(token),
        None => take_within(store.as_ref(), &k, LONG, TAKEOVER_BOUND).await?,
    };
    let after = start.elapsed();
    ensure!(
        taken.is_some(),
        "a lease of {SHORT:?} was still held after {after:?}"
    );
    // Clocks count whole milliseconds: allow a few of them.
    ensure!(
        after + Duration::from_millis(5) >= SHORT,
        "a lease of {SHORT:?} expired after only {after:?}"
    );
    Ok(())
}

async fn released_lease_can_be_taken_again(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("released");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    let Some(first) = store.acquire_lease(&k, LONG).await? else {
        return Err(Failure("a free key was refused".to_owned()));
    };
    ensure!(
        store.release_lease(&k, &first).await?,
        "the holder's release returned false"
    );
    ensure!(
        !store.release_lease(&k, &first).await?,
        "a second release of the same lease returned true"
    );
    let Some(second) = store.acquire_lease(&k, LONG).await? else {
        return Err(Failure(
            "a released lease could not be taken again".to_owned(),
        ));
    };
    ensure!(second != first, "the same token was handed out twice");
    ensure!(
        !store.release_lease(&k, &first).await?,
        "an old token released the next holder's lease"
    );
    ensure_eq!(
        store.acquire_lease(&k, LONG).await?,
        None,
        "the next holder's lease was freed by an old token"
    );
    Ok(())
}

async fn release_by_a_non_holder_does_nothing(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("non-holder");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    let Some(token) = store.acquire_lease(&k, LONG).await? else {
        return Err(Failure("a free key was refused".to_owned()));
    };
    ensure!(
        !store.release_lease(&k, &LeaseToken::generate()).await?,
        "a stranger's token released the lease"
    );
    ensure!(
        !store
            .release_lease(&k, &LeaseToken::from_string(""))
            .await?,
        "an empty token released the lease"
    );
    ensure_eq!(
        store.acquire_lease(&k, LONG).await?,
        None,
        "the lease was free after a stranger's release"
    );
    ensure!(
        !store.release_lease(&key("never-taken"), &token).await?,
        "releasing a key nobody holds returned true"
    );
    ensure!(
        store.release_lease(&k, &token).await?,
        "the holder's release returned false"
    );
    Ok(())
}

async fn an_expired_holder_cannot_release_the_next_lease(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("expired-holder");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    let Some(old) = store.acquire_lease(&k, SHORT).await? else {
        return Err(Failure("a free key was refused".to_owned()));
    };
    let Some(new) = take_within(store.as_ref(), &k, LONG, TAKEOVER_BOUND).await? else {
        return Err(Failure(format!(
            "a lease of {SHORT:?} was still held after {TAKEOVER_BOUND:?}"
        )));
    };
    ensure!(
        !store.release_lease(&k, &old).await?,
        "the expired holder's token released the new lease"
    );
    ensure_eq!(
        store.acquire_lease(&k, LONG).await?,
        None,
        "the new lease was freed by the expired holder"
    );
    ensure!(
        store.release_lease(&k, &new).await?,
        "the new holder's release failed"
    );
    Ok(())
}

async fn a_dead_holders_lease_expires(ctx: TestContext) -> CaseResult {
    let store = open(&ctx, "leases").await?;
    let k = key("dead-holder");
    if !takes_leases(&ctx, store.as_ref(), &k).await? {
        return Ok(());
    }
    // The holder: its own handle (its own connection where handles share
    // data), closed and dropped without a release.
    let (holder, holder_store) = other_handle(&ctx, "leases").await?;
    let start = Instant::now();
    let taken = holder_store.acquire_lease(&k, SHORT).await;
    if let Some(holder) = holder {
        let _ = holder.close().await;
    }
    drop(holder_store);
    ensure!(taken?.is_some(), "the holder was refused a free key");
    let held = store.acquire_lease(&k, LONG).await?;
    if start.elapsed() < SHORT {
        ensure_eq!(held, None, "a dead holder's unexpired lease was granted");
    }
    // Taken above (on a loaded machine, after the expiry): done.
    if held.is_some() {
        return Ok(());
    }
    let Some(_) = take_within(store.as_ref(), &k, LONG, TAKEOVER_BOUND).await? else {
        return Err(Failure(format!(
            "the dead holder's {SHORT:?} lease still blocked the key after {TAKEOVER_BOUND:?}"
        )));
    };
    Ok(())
}

async fn leases_are_not_entries_and_belong_to_one_store(ctx: TestContext) -> CaseResult {
    let a = open(&ctx, "leases-a").await?;
    let b = open(&ctx, "leases-b").await?;
    let k = key("shared-name");
    if !takes_leases(&ctx, a.as_ref(), &k).await? {
        return Ok(());
    }
    let Some(token) = a.acquire_lease(&k, LONG).await? else {
        return Err(Failure("a free key was refused".to_owned()));
    };
    let now = Timestamp::now();
    ensure_eq!(a.get(&k).await?, None, "a lease reads as an entry");
    ensure_eq!(
        a.count(Select::All, now).await?,
        0,
        "count(All) with only a lease"
    );
    let scanned: Vec<Entry> = a.scan(Select::All, now).try_collect().await?;
    ensure!(
        scanned.is_empty(),
        "scan returned {} entries for a lease",
        scanned.len()
    );
    ensure!(
        b.acquire_lease(&k, LONG).await?.is_some(),
        "a lease in one repository blocked the same key in another"
    );
    // Entries and leases under one key live side by side.
    a.put(Entry::new(k.clone(), now, "v")).await?;
    ensure_eq!(
        a.count(Select::All, now).await?,
        1,
        "count(All) with one entry"
    );
    ensure_eq!(
        a.acquire_lease(&k, LONG).await?,
        None,
        "writing an entry freed the lease"
    );
    ensure!(a.delete(&k).await?, "the entry was not stored");
    ensure_eq!(
        a.acquire_lease(&k, LONG).await?,
        None,
        "deleting the entry freed the lease"
    );
    ensure_eq!(
        a.clear(Select::All, now).await?,
        0,
        "clear(All) removed a lease"
    );
    ensure!(
        a.release_lease(&k, &token).await?,
        "the holder's release failed"
    );
    Ok(())
}

/// Two key/value caches on two handles stand for two processes: with the
/// cross-process option, a value both ask for at once is computed once
/// where the backend has leases, and on a backend without them both still
/// get a right value (each computes, as without the option).
async fn kv_cross_process_computes_once_across_handles(ctx: TestContext) -> CaseResult {
    let (other, other_backend) = if ctx.factory.is_persistent() {
        let b = ctx.factory.connect().await?;
        (Some(Arc::clone(&b)), b)
    } else {
        (None, Arc::clone(&ctx.backend))
    };
    let options = CrossProcess::new().lease(LONG).max_wait(LONG);
    let namespace = ctx.cache.as_str();
    let a = KeyValueCache::<String>::builder(Arc::clone(&ctx.backend), namespace)
        .cross_process(options)
        .build()?;
    let b = KeyValueCache::<String>::builder(other_backend, namespace)
        .cross_process(options)
        .build()?;
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let compute = |runs: Arc<std::sync::atomic::AtomicUsize>| async move {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, Error>("computed".to_owned())
    };
    let (x, y) = tokio::join!(
        a.get_or_set_with("k", |_| compute(Arc::clone(&runs)), Some(LONG)),
        b.get_or_set_with("k", |_| compute(Arc::clone(&runs)), Some(LONG)),
    );
    if let Some(other) = other {
        let _ = other.close().await;
    }
    ensure_eq!(x?.as_str(), "computed", "the first cache's value");
    ensure_eq!(y?.as_str(), "computed", "the second cache's value");
    let runs = runs.load(std::sync::atomic::Ordering::SeqCst);
    if ctx.factory.has_leases() {
        ensure_eq!(runs, 1, "computations for two caches asking at once");
    } else {
        ensure!(
            (1..=2).contains(&runs),
            "{runs} computations for two callers"
        );
    }
    Ok(())
}
