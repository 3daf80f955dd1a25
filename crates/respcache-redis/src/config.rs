//! [`RedisConfig`]: where the Redis server is and how long to wait for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use respcache_core::{Error, ErrorKind, Result};
use url::Url;

use crate::{CLUSTER_SCHEME, NAME, SCHEME, TLS_SCHEME};

/// The default port of a Redis server.
pub const DEFAULT_PORT: u16 = 6379;
/// The default time allowed to open a connection (TCP, TLS, `AUTH`, `SELECT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time allowed for one command or pipeline round trip.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach a Redis server: address, database, credentials, TLS and
/// timeouts.
///
/// Build one with the setters, or parse a URL ([`FromStr`] or
/// [`RedisConfig::from_url`]):
///
/// | URL | meaning |
/// |---|---|
/// | `redis://127.0.0.1/` | port 6379, database 0 |
/// | `redis://cache.internal:6380/2` | port 6380, database 2 |
/// | `redis://:s3cret@host/` | password only (`AUTH s3cret`) |
/// | `redis://alice:s3cret@host/` | ACL user and password (`AUTH alice s3cret`) |
/// | `rediss://host/` | TLS (needs this crate's `tls` feature) |
/// | `redis://host/?connect_timeout_ms=500&command_timeout_ms=250` | timeouts |
/// | `redis+cluster://h1:7000,h2:7001/` | a Redis Cluster, from these seed nodes |
/// | `redis://h1:7000/?cluster=true` | a Redis Cluster, from one seed node |
///
/// A cluster has only database 0, so its path must be empty or `/0`; the
/// credentials apply to every node, and the command timeout is also the
/// cluster client's response timeout (a call to a dead master fails after
/// it instead of waiting). TLS to a cluster is not offered yet.
///
/// User names and passwords are percent-decoded (`p%40ss` is `p@ss`).
/// Any other query parameter, a path that is not a database number, or a
/// fragment is a [`Configuration`](ErrorKind::Configuration) error.
///
/// `Debug` and `Display` never show the password:
///
/// ```
/// use respcache_redis::RedisConfig;
///
/// let config: RedisConfig = "redis://alice:s3cret@cache.internal:6380/2".parse()?;
/// assert_eq!(config.host(), "cache.internal");
/// assert_eq!(config.port(), 6380);
/// assert_eq!(config.db(), 2);
/// assert_eq!(config.to_string(), "redis://alice:***@cache.internal:6380/2");
/// assert!(!format!("{config:?}").contains("s3cret"));
///
/// let built = RedisConfig::new()
///     .with_host("cache.internal")
///     .with_port(6380)
///     .with_db(2)
///     .with_username("alice")
///     .with_password("s3cret");
/// assert_eq!(built, config);
/// # Ok::<(), respcache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    host: String,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
    connect_timeout: Duration,
    command_timeout: Duration,
    cluster: bool,
    /// Seed nodes after the first (`host`, `port`).
    more_nodes: Vec<(String, u16)>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            db: 0,
            username: None,
            password: None,
            tls: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            cluster: false,
            more_nodes: Vec::new(),
        }
    }
}

impl RedisConfig {
    /// `redis://127.0.0.1:6379/0`, no credentials, no TLS, default timeouts.
    pub fn new() -> Self {
        RedisConfig::default()
    }

    /// Parses a `redis://` or `rediss://` URL (see the table above).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration), naming what is wrong; the
    /// message never contains the password.
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(rest) = url
            .strip_prefix(CLUSTER_SCHEME)
            .and_then(|r| r.strip_prefix("://"))
        {
            return Self::from_cluster_url(rest, url);
        }
        let parsed = Url::parse(url).map_err(|e| {
            config_error(format!("not a valid URL ({e}): {}", redact_unparsed(url)))
        })?;
        let tls = match parsed.scheme() {
            SCHEME => false,
            TLS_SCHEME => true,
            other => {
                return Err(config_error(format!(
                    "unsupported scheme {other:?} in {}: use redis:// or rediss://",
                    redact_unparsed(url)
                )));
            }
        };
        let mut config = RedisConfig {
            tls,
            ..RedisConfig::default()
        };
        config.host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => {
                return Err(config_error(format!(
                    "{} has no host",
                    redact_unparsed(url)
                )));
            }
        };
        config.port = parsed.port().unwrap_or(DEFAULT_PORT);
        if !parsed.username().is_empty() {
            config.username = Some(percent_decode(parsed.username(), "user name")?);
        }
        if let Some(password) = parsed.password() {
            config.password = Some(percent_decode(password, "password")?);
        }
        let path = parsed.path().trim_matches('/');
        if !path.is_empty() {
            config.db = path
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| {
                    config_error(format!(
                        "the path of {} must be a database number, not {path:?}",
                        config
                    ))
                })?;
        }
        if parsed.fragment().is_some() {
            return Err(config_error(format!("{config} must not have a #fragment")));
        }
        for (name, value) in parsed.query_pairs() {
            let millis = || {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        config_error(format!(
                            "{name} must be a positive number of milliseconds, not {value:?}"
                        ))
                    })
            };
            match name.as_ref() {
                "connect_timeout_ms" => config.connect_timeout = millis()?,
                "command_timeout_ms" => config.command_timeout = millis()?,
                "cluster" => {
                    config.cluster = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(config_error(format!(
                                "cluster must be true or false, not {value:?}"
                            )));
                        }
                    }
                }
                other => {
                    return Err(config_error(format!(
                        "unknown parameter {other:?} in {config}: \
                         use connect_timeout_ms, command_timeout_ms or cluster"
                    )));
                }
            }
        }
        config.check_cluster()?;
        Ok(config)
    }

    /// Parses what follows `redis+cluster://`: `[userinfo@]h1[:p1],h2[:p2]…[/path][?query]`.
    fn from_cluster_url(rest: &str, url: &str) -> Result<Self> {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let mut nodes = hosts.split(',');
        let first = nodes.next().unwrap_or_default();
        let mut config = Self::from_url(&format!("{SCHEME}://{userinfo}{first}{tail}"))
            .map_err(|e| config_error(format!("{} (in {})", e.message(), redact_unparsed(url))))?;
        config.cluster = true;
        for node in nodes {
            let parsed = Url::parse(&format!("{SCHEME}://{node}/"))
                .ok()
                .and_then(|u| {
                    let host = match u.host()? {
                        url::Host::Domain(d) if !d.is_empty() => d.to_owned(),
                        url::Host::Domain(_) => return None,
                        url::Host::Ipv4(ip) => ip.to_string(),
                        url::Host::Ipv6(ip) => ip.to_string(),
                    };
                    Some((host, u.port().unwrap_or(DEFAULT_PORT)))
                })
                .filter(|_| !node.contains(['@', '/']))
                .ok_or_else(|| {
                    config_error(format!(
                        "{node:?} is not a host[:port] in {}",
                        redact_unparsed(url)
                    ))
                })?;
            config.more_nodes.push(parsed);
        }
        config.check_cluster()?;
        Ok(config)
    }

    /// What a cluster cannot have.
    fn check_cluster(&self) -> Result<()> {
        if !self.cluster {
            return Ok(());
        }
        if self.db != 0 {
            return Err(config_error(format!(
                "{self}: a Redis Cluster has only database 0, not {}",
                self.db
            )));
        }
        if self.tls {
            return Err(config_error(format!(
                "{self}: TLS to a Redis Cluster is not supported yet"
            )));
        }
        Ok(())
    }

    /// Talks to a Redis Cluster whose seed nodes are this host and port plus
    /// the ones added with [`with_cluster_node`](Self::with_cluster_node).
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Adds a seed node of a cluster (and makes this a cluster config).
    pub fn with_cluster_node(mut self, host: impl Into<String>, port: u16) -> Self {
        self.cluster = true;
        self.more_nodes.push((host.into(), port));
        self
    }

    /// Whether this config names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Every seed node, first the host and port, then the added ones.
    pub fn nodes(&self) -> Vec<(String, u16)> {
        let mut nodes = vec![(self.host.clone(), self.port)];
        nodes.extend(self.more_nodes.iter().cloned());
        nodes
    }

    /// The `redis` crate's connection parameters of every seed node.
    pub(crate) fn cluster_connection_infos(&self) -> Result<Vec<redis::ConnectionInfo>> {
        self.nodes()
            .into_iter()
            .map(|(host, port)| {
                self.clone()
                    .with_host(host)
                    .with_port(port)
                    .connection_info()
            })
            .collect()
    }

    /// Sets the host name or IP address.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the database number (`SELECT`).
    pub fn with_db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Sets the ACL user name.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Connects over TLS (`rediss://`); needs this crate's `tls` feature.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the time allowed to open a connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the time allowed for each command or pipeline round trip.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether a password is set (the password itself is not readable back).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The time allowed to open a connection.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The time allowed for each command or pipeline round trip.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Checks the values a URL cannot catch (setters accept anything).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.host.is_empty() {
            return Err(config_error("the host is empty".to_owned()));
        }
        if self.db < 0 {
            return Err(config_error(format!(
                "the database number must not be negative, got {}",
                self.db
            )));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(config_error("timeouts must be longer than zero".to_owned()));
        }
        if self.more_nodes.iter().any(|(host, _)| host.is_empty()) {
            return Err(config_error("a cluster node's host is empty".to_owned()));
        }
        self.check_cluster()
    }

    /// The `redis` crate's connection parameters.
    pub(crate) fn connection_info(&self) -> Result<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        if !addr.is_supported() {
            return Err(config_error(format!(
                "{self} needs TLS: enable the `tls` feature of respcache-redis (`redis-tls` of the respcache crate)"
            )));
        }
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| config_error(format!("{self}: {e}")))?;
        Ok(info.set_redis_settings(settings))
    }
}

impl FromStr for RedisConfig {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        RedisConfig::from_url(url)
    }
}

/// The URL with the password replaced by `***`.
impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.cluster, self.tls) {
            (true, _) => CLUSTER_SCHEME,
            (false, true) => TLS_SCHEME,
            (false, false) => SCHEME,
        };
        write!(f, "{scheme}://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{}:***@", encode_userinfo(user))?,
            (Some(user), None) => write!(f, "{}@", encode_userinfo(user))?,
            (None, Some(_)) => f.write_str(":***@")?,
            (None, None) => {}
        }
        for (i, (host, port)) in self.nodes().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]:{port}")?;
            } else {
                write!(f, "{host}:{port}")?;
            }
        }
        write!(f, "/{}", self.db)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("cluster", &self.cluster)
            .field("more_nodes", &self.more_nodes)
            .finish()
    }
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Configuration, message).with_backend(NAME)
}

fn percent_decode(text: &str, what: &str) -> Result<String> {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| config_error(format!("the {what} is not valid percent-encoded text")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL that did not parse, with everything between the scheme and the
/// last `@` hidden (it may hold a password).
fn redact_unparsed(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    let start = url.find("://").map_or(0, |i| i + 3).min(at);
    format!("{}***{}", &url[..start], &url[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c: RedisConfig = "redis://localhost".parse().unwrap();
        assert_eq!(c.host(), "localhost");
        assert_eq!(c.port(), 6379);
        assert_eq!(c.db(), 0);
        assert_eq!(c.username(), None);
        assert!(!c.has_password());
        assert!(!c.tls());
        assert_eq!(c.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.command_timeout(), DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(c.to_string(), "redis://localhost:6379/0");
    }

    #[test]
    fn full_url() {
        let c = RedisConfig::from_url(
            "rediss://al%20ice:p%40ss%3Aword+x@[::1]:7000/12?connect_timeout_ms=150&command_timeout_ms=75",
        )
        .unwrap();
        assert_eq!(c.host(), "::1");
        assert_eq!(c.port(), 7000);
        assert_eq!(c.db(), 12);
        assert_eq!(c.username(), Some("al ice"));
        assert_eq!(c.password.as_deref(), Some("p@ss:word+x"));
        assert!(c.tls());
        assert_eq!(c.connect_timeout(), Duration::from_millis(150));
        assert_eq!(c.command_timeout(), Duration::from_millis(75));
        assert_eq!(c.to_string(), "rediss://al%20ice:***@[::1]:7000/12");
    }

    #[test]
    fn password_only() {
        let c = RedisConfig::from_url("redis://:hunter2@10.0.0.1:6380/3").unwrap();
        assert_eq!(c.username(), None);
        assert_eq!(c.password.as_deref(), Some("hunter2"));
        assert_eq!(c.to_string(), "redis://:***@10.0.0.1:6380/3");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }

    #[test]
    fn errors_name_the_problem_and_hide_the_password() {
        let cases = [
            ("http://u:hunter2@host/", "unsupported scheme"),
            ("redis://u:hunter2@host/x", "database number"),
            ("redis://u:hunter2@host/-1", "database number"),
            ("redis://u:hunter2@host/0?protocol=3", "unknown parameter"),
            (
                "redis://u:hunter2@host/0?command_timeout_ms=0",
                "positive number",
            ),
            ("redis://u:hunter2@host/0#insecure", "fragment"),
            ("redis://u:hunter2@:12/0", "not a valid URL"),
            ("not a url hunter2@x", "not a valid URL"),
        ];
        for (url, expected) in cases {
            let err = RedisConfig::from_url(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
            let text = format!("{err} {err:?}");
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
    }

    #[test]
    fn builder_equals_parsed_url() {
        let built = RedisConfig::new()
            .with_host("h")
            .with_port(1)
            .with_db(4)
            .with_password("pw")
            .with_tls(true)
            .with_connect_timeout(Duration::from_millis(10))
            .with_command_timeout(Duration::from_millis(20));
        let parsed: RedisConfig = "rediss://:pw@h:1/4?connect_timeout_ms=10&command_timeout_ms=20"
            .parse()
            .unwrap();
        assert_eq!(built, parsed);
    }

    #[test]
    fn validate_catches_what_setters_allow() {
        for bad in [
            RedisConfig::new().with_host(""),
            RedisConfig::new().with_db(-2),
            RedisConfig::new().with_command_timeout(Duration::ZERO),
        ] {
            assert_eq!(bad.validate().unwrap_err().kind(), ErrorKind::Configuration);
        }
        assert!(RedisConfig::new().validate().is_ok());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_is_a_configuration_error() {
        let err = RedisConfig::from_url("rediss://:pw@h/")
            .unwrap()
            .connection_info()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.to_string().contains("`tls` feature"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }

    #[test]
    fn cluster_urls() {
        let c: RedisConfig =
            "redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001,[::1],h/?command_timeout_ms=300"
                .parse()
                .unwrap();
        assert!(c.is_cluster());
        assert_eq!(
            c.nodes(),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("::1".to_owned(), 6379),
                ("h".to_owned(), 6379),
            ]
        );
        assert_eq!(c.command_timeout(), Duration::from_millis(300));
        assert_eq!(
            c.to_string(),
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001,[::1]:6379,h:6379/0"
        );
        assert_eq!(c.cluster_connection_infos().unwrap().len(), 4);
        let one: RedisConfig = "redis://127.0.0.1:7000/?cluster=true".parse().unwrap();
        assert!(one.is_cluster());
        assert_eq!(one.nodes(), [("127.0.0.1".to_owned(), 7000)]);
        let round: RedisConfig = one.to_string().parse().unwrap();
        assert_eq!(round, one);
        let built = RedisConfig::new()
            .with_port(7000)
            .with_cluster_node("127.0.0.1", 7001);
        assert_eq!(
            built,
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
                .parse()
                .unwrap()
        );
        assert!(!RedisConfig::new().is_cluster());
    }

    #[test]
    fn cluster_url_errors_hide_the_password() {
        for (url, expected) in [
            ("redis+cluster://:hunter2@h:1,h:2/3", "only database 0"),
            ("redis://:hunter2@h:1/?cluster=yes", "true or false"),
            ("redis+cluster://:hunter2@h:1,:2/", "not a host"),
            ("redis+cluster://:hunter2@h:1,h:x/", "not a host"),
            ("redis+cluster://:hunter2@h:1,/", "not a host"),
            ("redis+cluster://:hunter2@/", "empty host"),
            ("rediss://:hunter2@h:1/?cluster=true", "TLS"),
        ] {
            let err = RedisConfig::from_url(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
            let text = format!("{err} {err:?}");
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
    }

    #[test]
    fn redact_unparsed_hides_userinfo() {
        assert_eq!(redact_unparsed("redis://a:b@h/"), "redis://***@h/");
        assert_eq!(redact_unparsed("redis://h/"), "redis://h/");
        assert_eq!(redact_unparsed("x y:pw@h"), "***@h");
    }
}
