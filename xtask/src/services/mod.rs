//! `cargo xtask services`: install and run the test services on loopback, without Docker.
//!
//! Installs come from Debian packages (apt-get), PyPI (pip in a venv) and npm only, and are
//! cached under `~/.cache/respcache-services` (or `$RESPCACHE_SERVICES_HOME`). Pid files and
//! logs live in `.services/run/`. A service is ours when its pid file names a live process;
//! anything else answering on the port is reported as "not started by xtask" and never stopped.

mod dynamodb;
mod install;
mod mongodb;
mod probe;
mod process;
mod redis;
mod redis_cluster;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};

use crate::progress::{secs, step};
use crate::{ALL_SERVICES, Result, project_root};

/// What `cargo xtask services` does.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Install (if needed) and start the services, wait until they answer, print the URLs
    /// and the environment variables the suite reads. A service already running is left as is.
    Up {
        /// Services to start (default: all).
        services: Vec<Service>,
    },
    /// Stop the services that `up` started (by pid file); others are left running.
    Down {
        /// Services to stop (default: all).
        services: Vec<Service>,
    },
    /// Report each service; exit code 1 if one is not answering.
    Status {
        /// Services to report (default: all).
        services: Vec<Service>,
    },
}

/// A service the conformance suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Service {
    /// Redis 7 (Debian `redis-server`), port 6379.
    Redis,
    /// MongoDB-wire emulator nx-27017 (PyPI), port 27017.
    Mongodb,
    /// DynamoDB Local (jar from npm, run with Java 17), port 8000.
    Dynamodb,
    /// A Redis Cluster of three masters (Debian `redis-server`), ports 7000-7002.
    RedisCluster,
}

/// Everything xtask knows about one service.
pub(crate) struct Spec {
    /// Short name, as on the command line.
    pub(crate) name: &'static str,
    /// Loopback port it listens on.
    pub(crate) port: u16,
    /// The URL shown to humans.
    pub(crate) url: &'static str,
    /// The environment variable the test suite reads, and its value for this service.
    pub(crate) env: (&'static str, &'static str),
    /// A string in the command line of the server process (guards against reused pids).
    pub(crate) marker: &'static str,
    /// How long a fresh start may take before it answers.
    pub(crate) start_timeout: Duration,
    /// Installs what is missing and returns the command that runs the server in the foreground.
    pub(crate) prepare: fn(&mut Ctx) -> Result<Command>,
    /// A protocol-level check that the server answers on `port`.
    pub(crate) probe: fn(u16) -> Result<(), String>,
}

impl Service {
    /// This service's facts and recipes.
    pub(crate) fn spec(self) -> &'static Spec {
        match self {
            Service::Redis => &redis::SPEC,
            Service::Mongodb => &mongodb::SPEC,
            Service::Dynamodb => &dynamodb::SPEC,
            Service::RedisCluster => &redis_cluster::SPEC,
        }
    }
}

/// Where things go, and what was already done in this run.
pub(crate) struct Ctx {
    /// Pid files and logs (`.services/run`).
    run_dir: PathBuf,
    /// Install cache (venvs, unpacked npm packages).
    cache_dir: PathBuf,
    /// apt-get state (whether `apt-get update` already ran).
    apt: install::Apt,
}

impl Ctx {
    fn new() -> Result<Self> {
        let run_dir = project_root().join(".services").join("run");
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        Ok(Self {
            run_dir,
            cache_dir: cache_dir(),
            apt: install::Apt::default(),
        })
    }

    fn pid_file(&self, s: Service) -> PathBuf {
        self.run_dir.join(format!("{}.pid", s.spec().name))
    }

    fn log_file(&self, s: Service) -> PathBuf {
        self.run_dir.join(format!("{}.log", s.spec().name))
    }
}

/// `$RESPCACHE_SERVICES_HOME`, else `$XDG_CACHE_HOME/respcache-services`, else
/// `~/.cache/respcache-services`, else `.services/cache` in the project.
fn cache_dir() -> PathBuf {
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env_dir("RESPCACHE_SERVICES_HOME") {
        return dir;
    }
    env_dir("XDG_CACHE_HOME")
        .or_else(|| env_dir("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("respcache-services"))
        .unwrap_or_else(|| project_root().join(".services").join("cache"))
}

/// Runs `cargo xtask services <action>`.
pub(crate) fn run(action: &Action) -> Result<ExitCode> {
    let selected = |services: &[Service]| -> Vec<Service> {
        if services.is_empty() {
            ALL_SERVICES.to_vec()
        } else {
            services.to_vec()
        }
    };
    let ok = match action {
        Action::Up { services } => up(&selected(services))?.failed.is_empty(),
        Action::Down { services } => down(&selected(services))?,
        Action::Status { services } => status(&selected(services))?,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `up` achieved.
pub(crate) struct UpReport {
    /// Services that answer, and how they came to run.
    pub(crate) ready: Vec<(Service, Running)>,
    /// Services that could not be started, with the reason.
    pub(crate) failed: Vec<(Service, String)>,
}

/// How a service that answers came to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Running {
    /// Started by this run, with this pid.
    Started(u32),
    /// Started earlier by xtask, with this pid.
    Ours(u32),
    /// Not started by xtask.
    Foreign,
}

/// How a service came to be (about to be) running.
enum Launch {
    /// Started now by this run.
    Spawned(Child),
    /// Started earlier by xtask (pid file).
    Ours(u32),
    /// Something else listens on the port.
    Foreign,
}

/// Starts every service in `services` that is not running, waits until each answers,
/// then prints their URLs and environment variables. Installs run one after the other;
/// the servers boot side by side.
pub(crate) fn up(services: &[Service]) -> Result<UpReport> {
    let mut ctx = Ctx::new()?;
    let mut report = UpReport {
        ready: Vec::new(),
        failed: Vec::new(),
    };
    let mut launched = Vec::new();
    for &s in services {
        match launch(&mut ctx, s) {
            Ok(l) => launched.push((s, l)),
            Err(e) => report.failed.push((s, e.to_string())),
        }
    }
    for (s, l) in launched {
        match wait_ready(&ctx, s, l) {
            Ok(running) => report.ready.push((s, running)),
            Err(e) => report.failed.push((s, e)),
        }
    }

    let mut out = String::new();
    for &(s, running) in &report.ready {
        let spec = s.spec();
        let how = match running {
            Running::Started(pid) => format!("pid {pid}, started"),
            Running::Ours(pid) => format!("pid {pid}, already running"),
            Running::Foreign => "already running (not started by xtask)".to_owned(),
        };
        let _ = writeln!(out, "{:<9} {:<50} {how}", spec.name, spec.url);
    }
    for (s, e) in &report.failed {
        let _ = writeln!(out, "{:<9} FAILED: {e}", s.spec().name);
    }
    for &(s, _) in &report.ready {
        let (var, value) = s.spec().env;
        let _ = writeln!(out, "{var}={value}");
    }
    if report
        .ready
        .iter()
        .any(|(_, r)| matches!(r, Running::Started(_)))
    {
        let _ = writeln!(
            out,
            "(logs in {}; stop with `cargo xtask services down`)",
            ctx.run_dir.display()
        );
    }
    print!("{out}");
    Ok(report)
}

/// Installs and spawns `s` unless it is already running (ours or not).
fn launch(ctx: &mut Ctx, s: Service) -> Result<Launch> {
    let spec = s.spec();
    let pid_file = ctx.pid_file(s);
    if let Some(pid) = process::live_pid(&pid_file, spec.marker) {
        return Ok(Launch::Ours(pid));
    }
    if probe::port_open(spec.port) {
        return Ok(Launch::Foreign);
    }
    let mut cmd = (spec.prepare)(ctx)?;
    let child = process::spawn(&mut cmd, &ctx.log_file(s), &pid_file)?;
    let program = cmd.get_program().to_string_lossy();
    eprintln!("{}: started {program} (pid {})", spec.name, child.id());
    Ok(Launch::Spawned(child))
}

/// Polls `s` until it answers.
fn wait_ready(ctx: &Ctx, s: Service, mut launch: Launch) -> Result<Running, String> {
    let spec = s.spec();
    let running = match &launch {
        Launch::Spawned(child) => Running::Started(child.id()),
        Launch::Ours(pid) => Running::Ours(*pid),
        Launch::Foreign => Running::Foreign,
    };
    if (spec.probe)(spec.port).is_ok() {
        return Ok(running);
    }
    // Something else on the port that does not answer the protocol: give it a short while
    // (someone may be starting it by hand), not a full cold-start timeout.
    let timeout = match launch {
        Launch::Foreign => spec.start_timeout.min(Duration::from_secs(15)),
        _ => spec.start_timeout,
    };
    let pid_file = ctx.pid_file(s);
    let log = ctx.log_file(s);
    let log_tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        format!(
            "{} ends with:\n{}",
            log.display(),
            crate::cmd::tail(&text, 20)
        )
    };
    let label = format!(
        "{}: waiting for {} on 127.0.0.1:{}",
        spec.name, spec.name, spec.port
    );
    step(&label, || {
        let start = Instant::now();
        loop {
            let answer = (spec.probe)(spec.port);
            if answer.is_ok() {
                return Ok(running);
            }
            if let Launch::Spawned(child) = &mut launch
                && let Ok(Some(status)) = child.try_wait()
            {
                let _ = std::fs::remove_file(&pid_file);
                // Lost a race with someone starting the same service?
                if (spec.probe)(spec.port).is_ok() {
                    return Ok(Running::Foreign);
                }
                return Err(format!(
                    "the server exited ({status}) before answering; {}",
                    log_tail()
                ));
            }
            if start.elapsed() >= timeout {
                let why = answer.err().unwrap_or_default();
                return Err(match &mut launch {
                    Launch::Foreign => format!(
                        "port {} is in use by a process that does not answer like {} ({why}); stop it or free the port",
                        spec.port, spec.name
                    ),
                    Launch::Spawned(child) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        let _ = std::fs::remove_file(&pid_file);
                        format!(
                            "timed out after {} ({why}); stopped it; {}",
                            secs(timeout),
                            log_tail()
                        )
                    }
                    Launch::Ours(pid) => {
                        format!(
                            "pid {pid} does not answer after {} ({why}); {}",
                            secs(timeout),
                            log_tail()
                        )
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Stops the services xtask started; returns whether every stop succeeded.
fn down(services: &[Service]) -> Result<bool> {
    let ctx = Ctx::new()?;
    let mut ok = true;
    for &s in services {
        let spec = s.spec();
        let pid_file = ctx.pid_file(s);
        match process::live_pid(&pid_file, spec.marker) {
            Some(pid) => {
                let stopped = step(&format!("{}: stopping pid {pid}", spec.name), || {
                    process::stop(pid, spec.marker)
                });
                match stopped {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&pid_file);
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", spec.name);
                        ok = false;
                    }
                }
            }
            None if probe::port_open(spec.port) => {
                println!(
                    "{:<9} not started by xtask; left running on port {}",
                    spec.name, spec.port
                );
            }
            None => println!("{:<9} not running", spec.name),
        }
    }
    Ok(ok)
}

/// Prints one line per service; returns whether all of them answer.
fn status(services: &[Service]) -> Result<bool> {
    let ctx = Ctx::new()?;
    let mut all_up = true;
    for &s in services {
        let spec = s.spec();
        let ours = process::live_pid(&ctx.pid_file(s), spec.marker);
        let answer = (spec.probe)(spec.port);
        let line = match (ours, &answer) {
            (Some(pid), Ok(())) => {
                format!("running    {:<50} pid {pid} (started by xtask)", spec.url)
            }
            (None, Ok(())) => format!("running    {:<50} not started by xtask", spec.url),
            (Some(pid), Err(e)) => {
                format!(
                    "NOT ANSWERING (pid {pid}, started by xtask): {e}; see {}",
                    ctx.log_file(s).display()
                )
            }
            (None, Err(_)) if probe::port_open(spec.port) => {
                format!(
                    "port {} in use by something that does not answer like {}",
                    spec.port, spec.name
                )
            }
            (None, Err(_)) => "stopped".to_owned(),
        };
        all_up &= answer.is_ok();
        println!("{:<9} {line}", spec.name);
    }
    Ok(all_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_service_port() {
        for s in ALL_SERVICES {
            let spec = s.spec();
            let port = format!(":{}", spec.port);
            assert!(spec.url.contains(&port), "{}", spec.url);
            assert!(spec.marker.len() > 4, "{}", spec.marker);
            assert!(spec.env.1.contains(&port), "{}", spec.env.1);
            assert!(spec.env.0.starts_with("RESPCACHE_"), "{}", spec.env.0);
        }
    }

    /// `docker-compose.yml` (no Docker engine runs here to start it) must
    /// stay in step with what `services up` provides: the same ports on
    /// loopback, the images the README names, a health check each, and
    /// `.env.example` giving the suite the same URLs.
    #[test]
    fn docker_compose_offers_the_same_services_on_the_same_ports() {
        use yaml_rust2::{Yaml, YamlLoader};
        let path = project_root().join("docker-compose.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = YamlLoader::load_from_str(&text).unwrap();
        let services = &docs[0]["services"];
        let images = [
            (Service::Redis, "redis", "redis:7"),
            (Service::Mongodb, "mongodb", "mongo:8"),
            (Service::Dynamodb, "dynamodb", "amazon/dynamodb-local"),
            (Service::RedisCluster, "redis-cluster", "redis:7"),
        ];
        let Yaml::Hash(all) = services else {
            panic!("no services in {}", path.display());
        };
        assert_eq!(
            all.len(),
            images.len(),
            "one compose service per xtask service"
        );
        for (s, name, image) in images {
            let spec = s.spec();
            let svc = &services[name];
            assert_eq!(svc["image"].as_str(), Some(image), "{name}");
            // The cluster maps its three masters' ports.
            let count = if s == Service::RedisCluster { 3 } else { 1 };
            let expected: Vec<String> = (spec.port..spec.port + count)
                .map(|p| format!("127.0.0.1:{p}:{p}"))
                .collect();
            let ports: Vec<&str> = svc["ports"]
                .as_vec()
                .unwrap_or_else(|| panic!("{name}: no ports"))
                .iter()
                .filter_map(Yaml::as_str)
                .collect();
            assert_eq!(ports, expected, "{name}: loopback only, xtask's ports");
            let check = &svc["healthcheck"];
            let test: Vec<&str> = check["test"]
                .as_vec()
                .unwrap_or_else(|| panic!("{name}: no health check"))
                .iter()
                .filter_map(Yaml::as_str)
                .collect();
            assert!(
                matches!(test.first(), Some(&"CMD") | Some(&"CMD-SHELL")) && test.len() >= 2,
                "{name}: {test:?}"
            );
            for key in ["interval", "timeout", "retries"] {
                assert!(
                    !check[key].is_badvalue(),
                    "{name}: health check without {key}"
                );
            }
        }
        // The suite reads the same URLs whichever way the servers started.
        let env = std::fs::read_to_string(project_root().join(".env.example")).unwrap();
        for s in ALL_SERVICES {
            let (var, url) = s.spec().env;
            let line = format!("{var}={url}");
            assert!(env.lines().any(|l| l == line), ".env.example lacks {line}");
        }
    }
}
