//! Tests of [`KeyValueCache`](super::KeyValueCache).

use super::*;
use crate::memory::MemoryBackend;
use crate::name::Name;
use crate::time::{ManualClock, Timestamp};
use std::sync::atomic::AtomicUsize;
use tokio::sync::Semaphore;

const LONG: Duration = Duration::from_secs(10);

fn cache<V>(clock: Arc<ManualClock>) -> KeyValueCache<V>
where
    V: Clone + Send + Sync + 'static,
    JsonCodec: Codec<V>,
{
    KeyValueCache::builder(Arc::new(MemoryBackend::new()), "kv-tests")
        .clock(clock)
        .build()
        .unwrap()
}

/// Waits (bounded: a hang fails the test) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(LONG, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_computation_for_a_hundred_concurrent_callers() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (kv, runs, gate) = (kv.clone(), runs.clone(), gate.clone());
            tokio::spawn(async move {
                kv.get_or_set_with(
                    "answer",
                    |_| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await;
                        Ok::<_, Error>(42)
                    },
                    None,
                )
                .await
            })
        })
        .collect();
    until("99 callers wait", || kv.waiters("answer") == 99).await;
    assert_eq!(kv.in_flight(), 1);
    gate.add_permits(1);
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 42);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(kv.in_flight(), 0);
    assert_eq!(kv.get("answer").await.unwrap(), Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reaches_every_waiter_and_nothing_is_stored() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (kv, gate) = (kv.clone(), gate.clone());
            tokio::spawn(async move {
                kv.get_or_set_with(
                    "k",
                    |_| async move {
                        let _permit = gate.acquire().await;
                        Err::<u64, _>(std::io::Error::other("token endpoint down"))
                    },
                    None,
                )
                .await
            })
        })
        .collect();
    until("9 callers wait", || kv.waiters("k") == 9).await;
    gate.add_permits(1);
    for task in tasks {
        let e = task.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Computation);
        assert!(!e.is_temporary());
        assert!(e.to_string().contains("token endpoint down"), "{e}");
        assert!(e.to_string().contains("\"k\""), "{e}");
        let cause = StdError::source(&e).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("token endpoint down"));
    }
    assert_eq!(kv.in_flight(), 0);
    assert_eq!(kv.get("k").await.unwrap(), None);
}

/// A respcache error returned by the closure is the caller's failure,
/// not the cache's: `Computation`, the original (kind included) as its
/// source.
#[tokio::test]
async fn a_respcache_error_from_the_computation_is_a_computation_error() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let e = kv
        .get_or_set_with(
            "k",
            |_| async { Err::<u64, _>(Error::new(ErrorKind::Timeout, "slow upstream")) },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Computation);
    assert_eq!(e.message(), "computing key \"k\"");
    assert_eq!(
        e.to_string(),
        "computation failed: computing key \"k\": timed out: slow upstream"
    );
    let inner = StdError::source(&e).and_then(|s| s.downcast_ref::<Error>());
    assert_eq!(inner.map(Error::kind), Some(ErrorKind::Timeout));
}

#[tokio::test]
async fn the_computation_receives_its_key_and_never_shows_the_value() {
    let kv = cache::<String>(Arc::new(ManualClock::new()));
    let upper = |key: String| async move { Ok::<_, Error>(key.to_uppercase()) };
    assert_eq!(kv.get_or_set_with("abc", upper, None).await.unwrap(), "ABC");
    assert_eq!(kv.get_or_set_with("xyz", upper, None).await.unwrap(), "XYZ");
    assert_eq!(kv.get("abc").await.unwrap().as_deref(), Some("ABC"));
    // get_or_set passes its value, whatever the key.
    assert_eq!(kv.get_or_set("k", "v".to_owned(), None).await.unwrap(), "v");
    // A failure names the key, not what was stored or computed.
    kv.set("secret-key", &"s3cr3t".to_owned(), Some(Duration::ZERO))
        .await
        .unwrap();
    let e = kv
        .get_or_set_with(
            "secret-key",
            |key| async move { Err::<String, _>(std::io::Error::other(format!("no {key}"))) },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Computation);
    assert!(e.to_string().contains("no secret-key"), "{e}");
    assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e:?}");
}

#[test]
fn a_shared_error_reads_like_the_original() {
    let original = Error::new(ErrorKind::Connection, "refused")
        .with_backend("redis")
        .with_operation(Operation::Get)
        .with_source(std::io::Error::other("port 6379 closed"));
    let copy = original.clone();
    assert_eq!(copy.to_string(), original.to_string());
    assert_eq!(copy.kind(), ErrorKind::Connection);
    assert_eq!(copy.backend(), Some("redis"));
    assert_eq!(
        StdError::source(&copy).map(ToString::to_string).as_deref(),
        Some("port 6379 closed")
    );
    let bare = Error::new(ErrorKind::Codec, "bad").clone();
    assert!(StdError::source(&bare).is_none());
    assert_eq!(bare.to_string(), "codec error: bad");
}

fn explode() -> u64 {
    panic!("upstream parser blew up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_computation_is_an_error_for_every_waiter() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let gate = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (kv, gate) = (kv.clone(), gate.clone());
            tokio::spawn(async move {
                kv.get_or_set_with(
                    "boom",
                    |_| async move {
                        let _permit = gate.acquire().await;
                        Ok::<u64, Error>(explode())
                    },
                    None,
                )
                .await
            })
        })
        .collect();
    until("4 callers wait", || kv.waiters("boom") == 4).await;
    gate.add_permits(1);
    for task in tasks {
        // The panic is caught: no task panics, each gets an error.
        let e = task.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Computation);
        assert!(
            e.to_string().contains("panicked: upstream parser blew up"),
            "{e}"
        );
    }
    assert_eq!(kv.in_flight(), 0);
    assert_eq!(kv.get("boom").await.unwrap(), None);
    // The key is usable again.
    let v = kv
        .get_or_set_with("boom", |_| async { Ok::<u64, Error>(7) }, None)
        .await
        .unwrap();
    assert_eq!(v, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_leader_hands_over_to_a_waiter() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let leader = {
        let kv = kv.clone();
        tokio::spawn(async move {
            kv.get_or_set_with("k", |_| futures::future::pending::<Result<u64>>(), None)
                .await
        })
    };
    until("the leader computes", || kv.in_flight() == 1).await;
    let waiter = {
        let kv = kv.clone();
        tokio::spawn(async move {
            kv.get_or_set_with("k", |_| async { Ok::<u64, Error>(9) }, None)
                .await
        })
    };
    until("the waiter waits", || kv.waiters("k") == 1).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let got = tokio::time::timeout(LONG, waiter).await;
    assert_eq!(got.expect("waiter hung").unwrap().unwrap(), 9);
    assert_eq!(kv.in_flight(), 0);
    assert_eq!(kv.get("k").await.unwrap(), Some(9));
}

#[tokio::test]
async fn a_cancelled_computation_frees_its_slot() {
    let kv = cache::<u64>(Arc::new(ManualClock::new()));
    let call = kv.get_or_set_with("k", |_| futures::future::pending::<Result<u64>>(), None);
    let timed_out = tokio::time::timeout(Duration::from_millis(20), call).await;
    assert!(timed_out.is_err());
    assert_eq!(kv.in_flight(), 0);
    assert_eq!(kv.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn different_keys_compute_independently() {
    let kv = cache::<String>(Arc::new(ManualClock::new()));
    let (a, b) = tokio::join!(
        kv.get_or_set_with("a", |_| async { Ok::<_, Error>("A".to_owned()) }, None),
        kv.get_or_set_with("b", |_| async { Ok::<_, Error>("B".to_owned()) }, None),
    );
    assert_eq!((a.unwrap().as_str(), b.unwrap().as_str()), ("A", "B"));
    assert_eq!(kv.in_flight(), 0);
}

/// Two caches over one backend stand for two processes: each has its
/// own in-process single flight, so only the lease can keep them from
/// both computing.
fn two_processes(options: CrossProcess) -> (KeyValueCache<String>, KeyValueCache<String>) {
    let backend: Arc<DynBackend> = Arc::new(MemoryBackend::new());
    let make = || {
        KeyValueCache::builder(Arc::clone(&backend), "xp")
            .cross_process(options)
            .build()
            .unwrap()
    };
    (make(), make())
}

/// A task of `cache` that takes the lease on `"k"` and computes for
/// [`LONG`]; returned once its computation has started.
async fn stuck_holder(cache: KeyValueCache<String>) -> tokio::task::JoinHandle<Result<String>> {
    let started = Arc::new(Semaphore::new(0));
    let holder = {
        let started = Arc::clone(&started);
        tokio::spawn(async move {
            cache
                .get_or_set_with(
                    "k",
                    |_| async move {
                        started.add_permits(1);
                        tokio::time::sleep(LONG).await;
                        Ok::<_, Error>("slow".to_owned())
                    },
                    None,
                )
                .await
        })
    };
    let _ = started.acquire().await.unwrap();
    holder
}

#[tokio::test]
async fn cross_process_computes_once_for_two_caches_sharing_a_backend() {
    let (a, b) = two_processes(CrossProcess::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let compute = |runs: Arc<AtomicUsize>| async move {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, Error>("v".to_owned())
    };
    let (x, y) = tokio::join!(
        a.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
        b.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
    );
    assert_eq!((x.unwrap(), y.unwrap()), ("v".to_owned(), "v".to_owned()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Without the option both compute.
    let backend: Arc<DynBackend> = Arc::new(MemoryBackend::new());
    let (c, d) = (
        KeyValueCache::<String>::new(Arc::clone(&backend), "xp").unwrap(),
        KeyValueCache::<String>::new(backend, "xp").unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let (x, y) = tokio::join!(
        c.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
        d.get_or_set_with("k", |_| compute(Arc::clone(&runs)), None),
    );
    assert!(x.is_ok() && y.is_ok());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the test shows the difference"
    );
}

#[tokio::test]
async fn cross_process_waiter_takes_over_from_a_dead_holder() {
    let lease = Duration::from_millis(300);
    let (a, b) = two_processes(CrossProcess::new().lease(lease).max_wait(LONG));
    let holder = stuck_holder(a).await;
    let begin = std::time::Instant::now();
    // The holder "dies": its task is dropped mid-computation, its lease
    // stays until it expires.
    holder.abort();
    let value = b
        .get_or_set_with(
            "k",
            |_| async { Ok::<_, Error>("taken over".to_owned()) },
            None,
        )
        .await
        .unwrap();
    let took = begin.elapsed();
    assert_eq!(value, "taken over");
    assert!(took >= lease - Duration::from_millis(50), "{took:?}");
    assert!(took < LONG, "{took:?}");
}

#[tokio::test]
async fn cross_process_failure_and_panic_release_the_lease_at_once() {
    let (a, b) = two_processes(CrossProcess::new().lease(LONG).max_wait(LONG));
    let failed = a
        .get_or_set_with(
            "k",
            |_| async { Err::<String, _>(std::io::Error::other("down")) },
            None,
        )
        .await;
    assert!(failed.is_err());
    let panicked = a
        .get_or_set_with::<_, _, Error>("k", |_| async { panic!("boom") }, None)
        .await
        .unwrap_err();
    assert!(panicked.message().contains("boom"), "{panicked}");
    let begin = std::time::Instant::now();
    let v = b
        .get_or_set_with("k", |_| async { Ok::<_, Error>("b".to_owned()) }, None)
        .await
        .unwrap();
    assert_eq!(v, "b");
    assert!(
        begin.elapsed() < Duration::from_secs(5),
        "waited for a lease"
    );
}

#[tokio::test]
async fn cross_process_waiter_gives_up_after_max_wait_and_computes() {
    let options = CrossProcess::new()
        .lease(LONG)
        .max_wait(Duration::from_millis(200))
        .poll(Duration::from_millis(5), Duration::from_millis(20));
    let (a, b) = two_processes(options);
    let holder = stuck_holder(a).await;
    let begin = std::time::Instant::now();
    let v = b
        .get_or_set_with(
            "k",
            |_| async { Ok::<_, Error>("impatient".to_owned()) },
            None,
        )
        .await
        .unwrap();
    assert_eq!(v, "impatient");
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(5),
        "{took:?}"
    );
    holder.abort();
}

#[tokio::test]
async fn opens_lazily_and_closes_for_every_clone() {
    let backend = Arc::new(MemoryBackend::new());
    let kv = KeyValueCache::<u64>::new(backend.clone(), "lazy").unwrap();
    assert!(
        crate::Backend::list_stores(&*backend, &Name::new("lazy").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    kv.set("a", &1, None).await.unwrap();
    let stores = crate::Backend::list_stores(&*backend, &Name::new("lazy").unwrap())
        .await
        .unwrap();
    assert_eq!(stores, vec![Name::new(REPOSITORY).unwrap()]);
    let clone = kv.clone();
    kv.close().await.unwrap();
    assert!(clone.is_closed());
    let e = clone.get("a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    assert_eq!(e.operation(), Some(Operation::Get));
    clone.connect().await.unwrap();
    assert_eq!(kv.get("a").await.unwrap(), Some(1));
    assert!(format!("{kv:?}").contains("\"lazy\""));
}

#[test]
fn an_invalid_namespace_is_refused() {
    let e = KeyValueCache::<u64>::new(Arc::new(MemoryBackend::new()), "a:b").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidName);
}

#[tokio::test]
async fn ttl_has_millisecond_precision_on_the_stored_entry() {
    let clock = Arc::new(ManualClock::new());
    let backend = Arc::new(MemoryBackend::new());
    let kv = KeyValueCache::<u64>::builder(backend.clone(), "ms")
        .clock(clock.clone())
        .connect()
        .await
        .unwrap();
    kv.set("a", &1, Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    let spec = kv.inner.spec.clone();
    let store = crate::Backend::open_store(&*backend, &spec).await.unwrap();
    let entry = store.get(&kv_key("a")).await.unwrap().unwrap();
    assert_eq!(
        entry.expires_at,
        Some(Timestamp::from_millis(clock.now().as_millis() + 1500))
    );
    assert_eq!(entry.key.method(), KEY_METHOD);
}
