//! The services backend tests run against, where to find them, and the one
//! rule for a service that cannot be reached: *ignored* with the reason on a
//! developer's machine, a *failure* under `CI=true` — never a silent pass.
//!
//! Every test of the workspace reads service URLs, probes them and applies
//! that rule through this module:
//!
//! - [`Service`] and its constants ([`REDIS`], [`REDIS_CLUSTER`],
//!   [`MONGODB`], [`DYNAMODB`]): the variable a URL is read from and its
//!   default (what `cargo xtask services up` starts), and
//!   [`Service::factory`], a conformance [`Factory`] on it;
//! - [`Gate`], for `harness = false` targets on libtest-mimic: each trial
//!   is ignored with the reason, or failed under CI, when the probe failed;
//! - [`available`], for plain `#[test]`s, which can only pass or fail: it
//!   says whether to go on, prints why not, and panics under CI.
//!
//! ```
//! use respcache_conformance::services::{self, REDIS};
//!
//! // `RESPCACHE_REDIS_URL`, else `redis://127.0.0.1:6379/`.
//! let url = REDIS.url();
//! # let _ = url;
//! // A plain test: go on only when the server answers.
//! let probe: Result<(), String> = Err("connection refused".into());
//! # if !services::under_ci() {
//! if !services::available("Redis", probe) {
//!     return; // printed "skipped: Redis unreachable: connection refused"
//! }
//! # }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};

use libtest_mimic::{Completion, Failed, Trial};
use respcache_core::{Backend, Result};

use crate::factory::Factory;

/// Whether the run is under CI (`CI=true` or `CI=1`): there, a service a
/// test needs and cannot reach is a failure.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A service the tests use: its name, the variable its URL is read from,
/// and the URL of the local one `cargo xtask services up` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The name in test names and messages (also the factory's name).
    pub name: &'static str,
    /// The environment variable holding its URL.
    pub env: &'static str,
    /// The URL used when the variable is not set.
    pub default_url: &'static str,
}

/// One Redis server.
pub const REDIS: Service = Service {
    name: "redis",
    env: "RESPCACHE_REDIS_URL",
    default_url: "redis://127.0.0.1:6379/",
};

/// The Redis Cluster (its three masters).
pub const REDIS_CLUSTER: Service = Service {
    name: "redis-cluster",
    env: "RESPCACHE_REDIS_CLUSTER_URL",
    default_url: "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002/",
};

/// MongoDB (or the MongoDB-wire emulator).
pub const MONGODB: Service = Service {
    name: "mongodb",
    env: "RESPCACHE_MONGODB_URL",
    default_url: "mongodb://127.0.0.1:27017/?directConnection=true",
};

/// DynamoDB Local, table `respcache-test`.
pub const DYNAMODB: Service = Service {
    name: "dynamodb",
    env: "RESPCACHE_DYNAMODB_URL",
    default_url: "dynamodb://respcache-test?endpoint=http://127.0.0.1:8000&region=us-east-1",
};

impl Service {
    /// The URL: the variable [`env`](Self::env) if set, else
    /// [`default_url`](Self::default_url).
    pub fn url(&self) -> String {
        std::env::var(self.env).unwrap_or_else(|_| self.default_url.to_owned())
    }

    /// The address of the (first) server in [`url`](Self::url) — for
    /// DynamoDB the `endpoint` option's — to put a relay or a probe in
    /// front of; `None` when the URL names none that resolves.
    pub fn addr(&self) -> Option<SocketAddr> {
        host_port(&self.url())?.to_socket_addrs().ok()?.next()
    }

    /// A conformance [`Factory`] named after the service, whose handles
    /// `connect` opens on [`url`](Self::url).
    pub fn factory<F, Fut, B>(&self, connect: F) -> Factory
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B>> + Send + 'static,
        B: Backend + 'static,
    {
        self.factory_at(self.name, self.url(), connect)
    }

    /// Like [`factory`](Self::factory), under another `name` and on `url`
    /// (the service's URL with options added, say).
    pub fn factory_at<F, Fut, B>(&self, name: &str, url: String, connect: F) -> Factory
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B>> + Send + 'static,
        B: Backend + 'static,
    {
        Factory::new(name, move || connect(url.clone()))
    }
}

/// `host:port` of the first server in `url` (`endpoint=` for DynamoDB).
fn host_port(url: &str) -> Option<String> {
    let rest = match url.split_once("endpoint=") {
        Some((_, endpoint)) => endpoint,
        None => url,
    };
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '&']).next()?;
    let first = authority.split(',').next()?;
    let host_port = first.rsplit_once('@').map_or(first, |(_, h)| h);
    host_port.contains(':').then(|| host_port.to_owned())
}

/// For a plain `#[test]`: `true` when `probe` succeeded. Otherwise it
/// prints `skipped: <what> unreachable: <reason>` and returns `false` —
/// and under `CI=true` it panics with that reason instead.
///
/// # Panics
///
/// Under `CI=true`, when `probe` failed.
pub fn available<T, E: Display>(what: &str, probe: std::result::Result<T, E>) -> bool {
    match probe {
        Ok(_) => true,
        Err(e) => {
            assert!(!under_ci(), "{what} unreachable under CI=true: {e}");
            eprintln!("skipped: {what} unreachable: {e}");
            false
        }
    }
}

/// Whether something answers TCP on `addr` within 2 s, by the rule of
/// [`available`] (so: panics under `CI=true` when nothing does).
pub async fn answers(what: &str, addr: Option<SocketAddr>) -> bool {
    let probe = match addr {
        None => Err("no address in its URL".to_owned()),
        Some(addr) => match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{addr}: {e}")),
            Err(_) => Err(format!("{addr}: no answer within 2 s")),
        },
    };
    available(what, probe)
}

/// For a `harness = false` target: what one probe of a service found, and
/// the trials that need it.
///
/// A trial from [`trial`](Self::trial) runs when the probe succeeded;
/// otherwise it is reported *ignored* with the reason, and under `CI=true`
/// it *fails* with it.
#[derive(Debug, Clone)]
pub struct Gate {
    what: String,
    unreachable: Option<String>,
}

impl Gate {
    /// The gate of `what` after `probe`; prints once why its trials will
    /// not run.
    pub fn probe<T, E: Display>(what: impl Into<String>, probe: std::result::Result<T, E>) -> Gate {
        let what = what.into();
        let unreachable = probe.err().map(|e| e.to_string());
        if let Some(reason) = &unreachable {
            let fate = if under_ci() {
                "fails (CI=true)"
            } else {
                "is ignored"
            };
            eprintln!("{what}: unreachable, every test that needs it {fate}: {reason}");
        }
        Gate { what, unreachable }
    }

    /// A gate that is open: nothing was probed, or everything answered.
    pub fn open(what: impl Into<String>) -> Gate {
        Gate {
            what: what.into(),
            unreachable: None,
        }
    }

    /// This gate, closed also when `other` is (its reason first).
    #[must_use]
    pub fn and(&self, other: &Gate) -> Gate {
        match (&self.unreachable, &other.unreachable) {
            (Some(_), _) => self.clone(),
            (None, Some(_)) => other.clone(),
            (None, None) => self.clone(),
        }
    }

    /// Why the service cannot be used, if it cannot.
    pub fn unreachable(&self) -> Option<&str> {
        self.unreachable.as_deref()
    }

    /// A trial that runs `test` when the gate is open.
    pub fn trial<F>(&self, name: impl Into<String>, test: F) -> Trial
    where
        F: FnOnce() -> std::result::Result<(), Failed> + Send + 'static,
    {
        self.ignorable_trial(name, move || test().map(|()| Completion::Completed))
    }

    /// Like [`trial`](Self::trial), for a test that may itself end
    /// ignored (with its reason).
    pub fn ignorable_trial<F>(&self, name: impl Into<String>, test: F) -> Trial
    where
        F: FnOnce() -> std::result::Result<Completion, Failed> + Send + 'static,
    {
        let closed = self
            .unreachable
            .as_ref()
            .map(|reason| format!("{} unreachable: {reason}", self.what));
        Trial::ignorable_test(name, move || match closed {
            Some(reason) if under_ci() => Err(Failed::from(format!("{reason} (CI=true)"))),
            Some(reason) => Ok(Completion::ignored_with(reason)),
            None => test(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_each_url_form() {
        assert_eq!(
            host_port("redis://127.0.0.1:6379/").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            host_port("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/").as_deref(),
            Some("127.0.0.1:7000")
        );
        assert_eq!(
            host_port("mongodb://user:pw@127.0.0.1:27017/?directConnection=true").as_deref(),
            Some("127.0.0.1:27017")
        );
        assert_eq!(
            host_port("dynamodb://t?endpoint=http://127.0.0.1:8000&region=us-east-1").as_deref(),
            Some("127.0.0.1:8000")
        );
        assert_eq!(host_port("dynamodb://t?region=us-east-1"), None);
    }

    #[test]
    fn a_service_url_is_its_variable_or_its_default() {
        let service = Service {
            name: "nothing",
            env: "RESPCACHE_TEST_NEVER_SET_URL",
            default_url: "x://127.0.0.1:1/",
        };
        assert_eq!(service.url(), "x://127.0.0.1:1/");
    }
}
