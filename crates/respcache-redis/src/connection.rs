//! The connection a backend and all its stores share: a reconnecting
//! [`ConnectionManager`] to one server, or the `redis` crate's async
//! cluster client (which follows the slot map and reconnects by itself), a
//! timeout on every call, and the closed state.

use std::future::Future;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value,
};
use respcache_core::{Error, ErrorKind, Result};

use crate::NAME;
use crate::error::{map_redis_error, map_redis_error_with, timeout_error};

/// Delays between reconnection attempts after the connection breaks: from
/// 50 ms doubling up to 1 s, 6 attempts, then a new round on the next call.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
const RECONNECT_RETRIES: usize = 6;

/// A connection to one server or to a cluster; both are cheap to clone
/// (shared, multiplexed) and reconnect by themselves.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster: commands go to the master of their key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One multiplexed, self-healing connection and its timeouts.
pub(crate) struct Shared {
    /// `None` once closed: every later call is a `Closed` error, and the
    /// connection is dropped when the last in-flight call finishes.
    manager: RwLock<Option<Conn>>,
    /// Whether `manager` holds (or held) a cluster connection.
    cluster: bool,
    command_timeout: Duration,
    /// Where the connection goes, password redacted (for `Debug`).
    pub(crate) target: String,
}

impl Shared {
    /// Connects to `client`'s server. One direct attempt first, so an
    /// unreachable server or wrong credentials fail at once with a clear
    /// error instead of after the reconnection back-off; then the managed
    /// connection that survives server restarts.
    pub(crate) async fn connect(
        client: Client,
        target: String,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        #[cfg(feature = "tls")]
        install_crypto_provider();
        let probe_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(connect_timeout));
        let probe = async {
            let mut con = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut con).await
        };
        connect_outcome(
            tokio::time::timeout(connect_timeout, probe).await,
            &target,
            connect_timeout,
        )?;

        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES);
        let manager = connect_outcome(
            tokio::time::timeout(
                connect_timeout,
                ConnectionManager::new_with_config(client, config),
            )
            .await,
            &target,
            connect_timeout,
        )?;
        Ok(Shared {
            manager: RwLock::new(Some(Conn::Single(manager))),
            cluster: false,
            command_timeout,
            target,
        })
    }

    /// Connects to the Redis Cluster whose seed nodes are `nodes` (any
    /// reachable one will do: the client reads the slot map from it). Every
    /// call gets `command_timeout` as the cluster client's response timeout
    /// too: without one, a call to a dead master never returns.
    pub(crate) async fn connect_cluster(
        nodes: Vec<redis::ConnectionInfo>,
        target: String,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Self> {
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(connect_timeout)
            .response_timeout(command_timeout)
            .build()
            .map_err(|e| map_redis_error_with(e, format!("cannot connect to {target}")))?;
        let connect = async {
            let mut con = client.get_async_connection().await?;
            redis::cmd("PING").query_async::<()>(&mut con).await?;
            Ok(con)
        };
        let con = connect_outcome(
            tokio::time::timeout(connect_timeout, connect).await,
            &target,
            connect_timeout,
        )?;
        Ok(Shared {
            manager: RwLock::new(Some(Conn::Cluster(con))),
            cluster: true,
            command_timeout,
            target,
        })
    }

    /// A handle on the connection, or `Closed`.
    pub(crate) fn connection(&self) -> Result<Conn> {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::closed(NAME))
    }

    /// Whether this is a cluster connection (whatever the closed state).
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Whether [`close`](Shared::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Closes: later calls fail with `Closed`.
    pub(crate) fn close(&self) {
        self.manager
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut con = self.connection()?;
        within(self.command_timeout, cmd.query_async(&mut con)).await
    }

    /// Runs a pipeline (or a MULTI/EXEC transaction) in one round trip.
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        let mut con = self.connection()?;
        within(self.command_timeout, pipeline.query_async(&mut con)).await
    }

    /// Runs `SCAN` step by step on the node that holds `slot_key`'s slot
    /// (a cluster: a plain `SCAN` would go to a random node and miss the
    /// keys of the others), or on the one server.
    pub(crate) async fn query_on_slot_of<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        slot_key: &str,
    ) -> Result<T> {
        match self.connection()? {
            Conn::Single(mut con) => within(self.command_timeout, cmd.query_async(&mut con)).await,
            Conn::Cluster(mut con) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(slot_key, SlotAddr::Master),
                ));
                let value =
                    within(self.command_timeout, con.route_command(cmd.clone(), route)).await?;
                redis::from_redis_value(value)
                    .map_err(|e| map_redis_error(redis::RedisError::from(e)))
            }
        }
    }

    /// Runs a Lua script: `EVALSHA`, then `EVAL` with the script's text if
    /// the server lost it (both within one command timeout).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &crate::scripts::Invocation<'_>,
    ) -> Result<T> {
        let mut con = self.connection()?;
        let call = async {
            match invocation.evalsha().query_async(&mut con).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation.eval().query_async(&mut con).await
                }
                other => other,
            }
        };
        within(self.command_timeout, call).await
    }
}

/// rustls needs a process-wide crypto provider; when the program has not
/// chosen one, use aws-lc-rs (the workspace's only provider). Installing
/// explicitly also avoids rustls's panic when a binary enables two.
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: that one is used.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The result of a connection step, with errors that name the target.
fn connect_outcome<T>(
    outcome: std::result::Result<RedisResult<T>, tokio::time::error::Elapsed>,
    target: &str,
    limit: Duration,
) -> Result<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(map_redis_error_with(
            e,
            format!("cannot connect to {target}"),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("cannot connect to {target}: no answer within {limit:?}"),
        )
        .with_backend(NAME)),
    }
}

/// Runs `call` with a deadline: a late answer is a `Timeout` error, a
/// failed one is mapped by [`map_redis_error`]. The deadline also covers
/// waiting for a reconnection in progress, so no call can hang.
async fn within<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(map_redis_error(e)),
        Err(_) => Err(timeout_error(limit)),
    }
}
