//! Tests that need several OS processes on one backend: the key/value
//! cache's cross-process single flight
//! ([`KeyValueCacheBuilder::cross_process`](respcache_core::KeyValueCacheBuilder::cross_process)).
//!
//! A backend crate calls them from ordinary `#[test]` functions; the test
//! re-runs its own binary (`--exact <test name>`) as the child processes,
//! which recognise themselves by an environment variable:
//!
//! ```no_run
//! # fn factory() -> respcache_conformance::Factory { unimplemented!() }
//! #[test]
//! fn kv_computed_once_across_processes() {
//!     let report = respcache_conformance::processes::computed_once_across_processes(
//!         "kv_computed_once_across_processes",
//!         factory(),
//!         4,
//!         50,
//!     );
//!     println!("{report:?}");
//!     assert!(report.is_ok());
//! }
//! ```
//!
//! When the backend cannot be reached they return `Ok(None)` (skipped), and
//! under `CI=true` a failure.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use respcache_core::{CrossProcess, Error, KeyValueCache, Name};

use crate::check::Failure;
use crate::factory::Factory;

const ROLE: &str = "RESPCACHE_XP_ROLE";
const NAMESPACE: &str = "RESPCACHE_XP_NAMESPACE";
const COUNTER: &str = "RESPCACHE_XP_COUNTER";
const GO: &str = "RESPCACHE_XP_GO";
const KEYS: &str = "RESPCACHE_XP_KEYS";
const LEASE_MS: &str = "RESPCACHE_XP_LEASE_MS";

/// How long one computation takes (a slow origin).
const COMPUTE: Duration = Duration::from_millis(50);
/// How long a child may run.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Whether this process runs as a child of a multi-process test.
pub fn is_child() -> bool {
    std::env::var_os(ROLE).is_some()
}

/// A path in the temporary folder that a multi-process test and the
/// children it starts share: `respcache-xp-<name>-<pid>`, where `pid` is
/// the test process's (a child finds it as its parent's), so two runs never
/// share it. For a file backend's database or folder.
pub fn shared_temp_path(name: &str) -> PathBuf {
    let owner = if is_child() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    std::env::temp_dir().join(format!("respcache-xp-{name}-{owner}"))
}

/// Removes what a test kept at a [`shared_temp_path`] — a folder, or a file
/// with its SQLite companions (`-wal`, `-shm`) — in the test process only
/// (children leave it to their parent).
pub fn remove_shared(path: &Path) {
    if is_child() {
        return;
    }
    let _ = std::fs::remove_dir_all(path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The variable that marks a child started by [`in_child_with_env`].
const ENV_CHILD: &str = "RESPCACHE_ENV_CHILD";

/// For a test that needs environment variables of its own (`HOME`, say),
/// which a test cannot set safely while other tests run: re-runs the test
/// `test` — its path in the test binary, with or without the crate name,
/// e.g. `concat!(module_path!(), "::my_test")` — alone in a child process
/// with `env` set, and says whether this process is that child.
///
/// The test goes on with its assertions when this returns `Ok(true)` and
/// returns when `Ok(false)`: the child ran them, and passed.
///
/// # Errors
///
/// In the test process, a [`Failure`] when the child failed (with its
/// output) or ran over 60 s.
pub fn in_child_with_env(test: &str, env: &[(&str, &Path)]) -> Result<bool, Failure> {
    let name = test.split_once("::").map_or(test, |(_, rest)| rest);
    if std::env::var(ENV_CHILD).is_ok_and(|t| t == name) {
        return Ok(true);
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure(format!("cannot find the test binary: {e}")))?;
    let child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD, name)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot start a child process: {e}")))?;
    let out = output_within(child, Duration::from_secs(60))
        .map_err(|Failure(why)| Failure(format!("{name}: {why}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest passes when the filter matched nothing: "1 passed" proves
    // the test ran.
    if out.status.success() && stdout.contains("1 passed") {
        Ok(false)
    } else {
        Err(Failure(format!(
            "{name} failed in a child with {env:?} ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// `N` processes ask one cross-process key/value cache for the same `keys`
/// keys at once; each computation appends a line to a shared file. Passes
/// when every key was computed exactly once. Returns a one-line report, or
/// `None` when the backend is unreachable outside CI.
///
/// # Errors
///
/// A [`Failure`] naming what went wrong (a key computed twice or never, a
/// child that failed or hung).
pub fn computed_once_across_processes(
    test_name: &str,
    factory: Factory,
    processes: usize,
    keys: usize,
) -> Result<Option<String>, Failure> {
    let lease = Duration::from_secs(10);
    let Some(ran) = in_processes(test_name, &factory, processes, keys, lease, &[], |ctx| {
        let factory = factory.clone();
        async move { kv_child(&ctx, &factory).await }
    })?
    else {
        return Ok(None);
    };
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for line in &ran.lines {
        *per_key.entry(line.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    crate::ensure!(
        twice.is_empty(),
        "{} keys were computed more than once (e.g. {:?}); {}",
        twice.len(),
        twice.first(),
        ran.reports.join("; ")
    );
    crate::ensure_eq!(
        ran.lines.len(),
        keys,
        "computations for {keys} keys asked by {processes} processes"
    );
    Ok(Some(format!(
        "{processes} processes x {keys} keys: {} computations in {:?} ({})",
        ran.lines.len(),
        ran.took,
        ran.reports.join("; ")
    )))
}

/// What [`in_processes`] saw: each child's report, the lines the children
/// [`record`](ChildContext::record)ed, and the time from the go signal to
/// the last child's end.
#[derive(Debug)]
pub struct Ran {
    /// One `CHILD-OK` report per child, in order.
    pub reports: Vec<String>,
    /// Every recorded line, in the order written.
    pub lines: Vec<String>,
    /// From the go signal to the last child's exit.
    pub took: Duration,
}

/// What a child process knows: its role, the namespace (cache name) of
/// this run, and where to record what it did.
#[derive(Clone, Debug)]
pub struct ChildContext {
    /// `waiter` for [`in_processes`]'s children, `holder` for the killed one.
    pub role: String,
    /// The cache name every process of this run uses.
    pub namespace: String,
    /// How many keys to ask for.
    pub keys: usize,
    /// The lease duration to configure.
    pub lease: Duration,
    counter: PathBuf,
    go: PathBuf,
}

impl ChildContext {
    /// Waits (up to 30 s) for the parent's go signal, so every child starts
    /// at once.
    pub async fn ready(&self) -> Result<(), Failure> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.go.exists() {
            crate::ensure!(Instant::now() < deadline, "no go signal within 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Appends `line` to the run's shared record (one write, so lines of
    /// different processes never mix).
    pub fn record(&self, line: &str) -> Result<(), Error> {
        append(&self.counter, line)
    }
}

/// Runs `processes` copies of this test binary at once as children, each
/// calling `child` (the same call, made in the child, runs `child` and
/// exits the process), released together by a go signal; returns what
/// they reported and recorded. `env` is passed to the children (e.g. the
/// address of an origin the parent started). Returns `None` when the
/// backend is unreachable outside CI; the stores of the run's namespace
/// are dropped afterwards.
///
/// # Errors
///
/// A [`Failure`] when a child fails or hangs.
pub fn in_processes<F, Fut>(
    test_name: &str,
    factory: &Factory,
    processes: usize,
    keys: usize,
    lease: Duration,
    env: &[(&str, &str)],
    child: F,
) -> Result<Option<Ran>, Failure>
where
    F: FnOnce(ChildContext) -> Fut,
    Fut: std::future::Future<Output = Result<String, Failure>>,
{
    if let Some(ctx) = child_context() {
        let outcome = runtime().and_then(|rt| rt.block_on(child(ctx)));
        exit_child(outcome);
    }
    let Some(Run {
        runtime,
        namespace,
        dir,
        counter,
        go,
    }) = Run::start(factory)?
    else {
        return Ok(None);
    };
    let spawned: Result<Vec<Child>, Failure> = (0..processes)
        .map(|_| {
            spawn(
                test_name, "waiter", &namespace, &counter, &go, keys, lease, env,
            )
        })
        .collect();
    let children = match spawned {
        Ok(children) => children,
        Err(e) => {
            cleanup(&runtime, factory, &namespace, &dir);
            return Err(e);
        }
    };
    // Let every process start and connect, then release them together.
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    std::fs::write(&go, b"go")
        .map_err(|e| Failure(format!("cannot write {}: {e}", go.display())))?;
    let mut reports = Vec::new();
    let mut failed = None;
    for (i, child) in children.into_iter().enumerate() {
        match wait(child) {
            Ok(report) => reports.push(format!("process {i}: {report}")),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    let took = start.elapsed();
    let lines = read_lines(&counter);
    cleanup(&runtime, factory, &namespace, &dir);
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Some(Ran {
        reports,
        lines: lines?,
        took,
    }))
}

/// A child takes the lease on one key and is killed (SIGKILL) in the
/// middle of its computation; then this process asks for the key. Passes
/// when it gets its own value within the lease time plus a margin, the
/// computation having run twice (the dead one and the takeover). Returns a
/// report with the wait, or `None` when the backend is unreachable outside
/// CI.
///
/// # Errors
///
/// A [`Failure`] naming what went wrong.
pub fn dead_holder_is_replaced(
    test_name: &str,
    factory: Factory,
    lease: Duration,
) -> Result<Option<String>, Failure> {
    let holder = |ctx: ChildContext| {
        let factory = factory.clone();
        async move { kv_child(&ctx, &factory).await }
    };
    let waiter = |namespace: String, ctx: ChildContext| {
        let factory = factory.clone();
        async move {
            let kv = kv_cache(&factory, &namespace, lease).await?;
            let value = kv
                .get_or_set_with(
                    "key-0",
                    move |key| async move {
                        ctx.record(&key)?;
                        Ok::<_, Error>("taken over".to_owned())
                    },
                    Some(Duration::from_secs(600)),
                )
                .await
                .map_err(|e| Failure(format!("the waiter failed: {e}")))?;
            crate::ensure_eq!(value.as_str(), "taken over", "the waiter's value");
            Ok(value)
        }
    };
    let Some(killed) = holder_killed(test_name, &factory, lease, &[], holder, waiter)? else {
        return Ok(None);
    };
    crate::ensure_eq!(
        killed.lines.len(),
        2,
        "computations (the dead holder's, the waiter's)"
    );
    let bound = lease + Duration::from_secs(5);
    crate::ensure!(
        killed.waited < bound,
        "the waiter finished {:?} after the holder died (lease {lease:?})",
        killed.waited
    );
    Ok(Some(format!(
        "holder killed mid-computation; the waiter had the value {:?} later (lease {lease:?})",
        killed.waited
    )))
}

/// What [`holder_killed`] saw: the waiter's report, every recorded line,
/// and how long the waiter took after the holder was killed.
#[derive(Debug)]
pub struct Killed {
    /// What the waiter returned.
    pub report: String,
    /// Every line the holder and the waiter recorded.
    pub lines: Vec<String>,
    /// From the kill to the waiter's end.
    pub waited: Duration,
}

/// One child runs `holder` (role `holder`: it takes a lease and works
/// "forever"); once it has [`record`](ChildContext::record)ed a line it
/// is killed (SIGKILL), and this process runs `waiter` (with the run's
/// namespace and a context whose `record` writes to the same record).
/// Returns `None` when the backend is unreachable outside CI; the stores of
/// the run's namespace are dropped afterwards.
///
/// # Errors
///
/// A [`Failure`] when the holder never starts, or `waiter` fails.
pub fn holder_killed<H, HFut, W, WFut>(
    test_name: &str,
    factory: &Factory,
    lease: Duration,
    env: &[(&str, &str)],
    holder: H,
    waiter: W,
) -> Result<Option<Killed>, Failure>
where
    H: FnOnce(ChildContext) -> HFut,
    HFut: std::future::Future<Output = Result<String, Failure>>,
    W: FnOnce(String, ChildContext) -> WFut,
    WFut: std::future::Future<Output = Result<String, Failure>>,
{
    if let Some(ctx) = child_context() {
        let outcome = runtime().and_then(|rt| rt.block_on(holder(ctx)));
        exit_child(outcome);
    }
    let Some(Run {
        runtime,
        namespace,
        dir,
        counter,
        go,
    }) = Run::start(factory)?
    else {
        return Ok(None);
    };
    let ctx = ChildContext {
        role: "waiter".to_owned(),
        namespace: namespace.clone(),
        keys: 1,
        lease,
        counter: counter.clone(),
        go: go.clone(),
    };
    let outcome = (|| {
        std::fs::write(&go, b"go")
            .map_err(|e| Failure(format!("cannot write {}: {e}", go.display())))?;
        let mut holder = spawn(
            test_name, "holder", &namespace, &counter, &go, 1, lease, env,
        )?;
        // Wait until the holder works (it holds the lease then).
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_lines(&counter)?.is_empty() {
            if Instant::now() > deadline || matches!(holder.try_wait(), Ok(Some(_))) {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(Failure("the holder never started working".to_owned()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = Instant::now();
        let _ = holder.kill();
        let _ = holder.wait();
        let report = runtime.block_on(waiter(namespace.clone(), ctx))?;
        let waited = killed.elapsed();
        Ok(Killed {
            report,
            lines: read_lines(&counter)?,
            waited,
        })
    })();
    cleanup(&runtime, factory, &namespace, &dir);
    outcome.map(Some)
}

// ----------------------------------------------------------------- parent

/// A run's parent side: its runtime, a fresh namespace, and the scratch
/// folder with the record (`counter`) and the go signal.
struct Run {
    runtime: tokio::runtime::Runtime,
    namespace: String,
    dir: PathBuf,
    counter: PathBuf,
    go: PathBuf,
}

impl Run {
    /// `None` when the backend is unreachable outside CI.
    fn start(factory: &Factory) -> Result<Option<Run>, Failure> {
        let runtime = runtime()?;
        let Some(namespace) = reachable(&runtime, factory)? else {
            return Ok(None);
        };
        let dir = scratch_dir(&namespace)?;
        Ok(Some(Run {
            counter: dir.join("computations"),
            go: dir.join("go"),
            runtime,
            namespace,
            dir,
        }))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start a tokio runtime: {e}")))
}

/// A fresh namespace if the backend answers; `None` to skip (not under CI).
fn reachable(
    runtime: &tokio::runtime::Runtime,
    factory: &Factory,
) -> Result<Option<String>, Failure> {
    match runtime.block_on(factory.connect()) {
        Ok(backend) => {
            let _ = runtime.block_on(backend.close());
            Ok(Some(format!("xp-{:08x}", rand::random::<u32>())))
        }
        Err(e) if crate::services::under_ci() => Err(Failure(format!(
            "{}: backend unreachable under CI=true: {e}",
            factory.name()
        ))),
        Err(e) => {
            eprintln!("{}: backend unreachable, skipped: {e}", factory.name());
            Ok(None)
        }
    }
}

fn scratch_dir(namespace: &str) -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir().join(format!("respcache-{namespace}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

#[allow(clippy::too_many_arguments)] // the child's whole environment, named
fn spawn(
    test_name: &str,
    role: &str,
    namespace: &str,
    counter: &Path,
    go: &Path,
    keys: usize,
    lease: Duration,
    env: &[(&str, &str)],
) -> Result<Child, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure(format!("cannot find the test binary: {e}")))?;
    Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(NAMESPACE, namespace)
        .env(COUNTER, counter)
        .env(GO, go)
        .env(KEYS, keys.to_string())
        .env(LEASE_MS, lease.as_millis().to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot start a child process: {e}")))
}

/// The child's `CHILD-OK` report; a failure if it failed or ran too long.
fn wait(child: Child) -> Result<String, Failure> {
    let out = output_within(child, CHILD_LIMIT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD-OK ").map(|(_, r)| r.to_owned()));
    match report {
        Some(report) if out.status.success() => Ok(report),
        _ => Err(Failure(format!(
            "a child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// The output of `child` once it has exited; a failure (the child killed)
/// when it runs longer than `limit`.
fn output_within(mut child: Child, limit: Duration) -> Result<std::process::Output, Failure> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure(format!("a child ran longer than {limit:?}")));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(Failure(format!("cannot wait for a child: {e}"))),
        }
    }
    child
        .wait_with_output()
        .map_err(|e| Failure(format!("cannot read a child's output: {e}")))
}

fn read_lines(path: &Path) -> Result<Vec<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Failure(format!("cannot read {}: {e}", path.display()))),
    }
}

fn cleanup(runtime: &tokio::runtime::Runtime, factory: &Factory, namespace: &str, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    runtime.block_on(async {
        if let (Ok(backend), Ok(cache)) = (factory.connect().await, Name::new(namespace)) {
            for store in backend.list_stores(&cache).await.unwrap_or_default() {
                let _ = backend.drop_store(&cache, &store).await;
            }
            let _ = backend.close().await;
        }
    });
}

// ------------------------------------------------------------------ child

/// The child's context when this process runs as a child; `None` in the
/// parent.
fn child_context() -> Option<ChildContext> {
    let role = std::env::var(ROLE).ok()?;
    let var = |name: &str| std::env::var(name).ok();
    let parsed = (|| {
        Some(ChildContext {
            role,
            namespace: var(NAMESPACE)?,
            keys: var(KEYS)?.parse().ok()?,
            lease: Duration::from_millis(var(LEASE_MS)?.parse().ok()?),
            counter: PathBuf::from(var(COUNTER)?),
            go: PathBuf::from(var(GO)?),
        })
    })();
    if parsed.is_none() {
        exit_child(Err(Failure(
            "the child's environment is incomplete".to_owned(),
        )));
    }
    parsed
}

/// Prints the child's report and ends the process.
fn exit_child(outcome: Result<String, Failure>) -> ! {
    match &outcome {
        Ok(report) => println!("CHILD-OK {report}"),
        Err(e) => println!("CHILD-FAILED {e}"),
    }
    let _ = std::io::stdout().flush();
    std::process::exit(if outcome.is_ok() { 0 } else { 1 });
}

async fn kv_cache(
    factory: &Factory,
    namespace: &str,
    lease: Duration,
) -> Result<KeyValueCache<String>, Error> {
    let backend = factory.connect().await?;
    KeyValueCache::builder(backend, namespace)
        .cross_process(CrossProcess::new().lease(lease).max_wait(lease * 3))
        .connect()
        .await
}

fn append(counter: &Path, line: &str) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(counter)
        .map_err(|e| Error::new(respcache_core::ErrorKind::Backend, e.to_string()))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| Error::new(respcache_core::ErrorKind::Backend, e.to_string()))
}

async fn kv_child(ctx: &ChildContext, factory: &Factory) -> Result<String, Failure> {
    let kv = Arc::new(kv_cache(factory, &ctx.namespace, ctx.lease).await?);
    ctx.ready().await?;
    let compute_for = |slow: Duration| {
        let ctx = ctx.clone();
        move |key: String| async move {
            ctx.record(&key)?;
            tokio::time::sleep(slow).await;
            Ok::<_, Error>(format!("value of {key}"))
        }
    };
    if ctx.role == "holder" {
        // Computes "forever": the parent kills this process meanwhile.
        kv.get_or_set_with("key-0", compute_for(CHILD_LIMIT), None)
            .await?;
        return Err(Failure("the holder was not killed".to_owned()));
    }
    let start = Instant::now();
    let keys = ctx.keys;
    let asks = (0..keys).map(|i| {
        let kv = Arc::clone(&kv);
        let key = format!("key-{i}");
        let compute = compute_for(COMPUTE);
        async move {
            let value = kv
                .get_or_set_with(&key, compute, Some(Duration::from_secs(600)))
                .await?;
            Ok::<_, Failure>(value == format!("value of {key}"))
        }
    });
    let results = futures::future::join_all(asks).await;
    let mut right = 0;
    for result in results {
        if result? {
            right += 1;
        }
    }
    crate::ensure_eq!(right, keys, "right values");
    Ok(format!("{keys} values in {:?}", start.elapsed()))
}
