//! The connection a backend and all its stores share: a reconnecting
//! [`ConnectionManager`], a timeout on every call, and the closed state.

use std::future::Future;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisResult};
use respcache_core::{Error, ErrorKind, Result};

use crate::NAME;
use crate::error::{map_redis_error, map_redis_error_with, timeout_error};

/// Delays between reconnection attempts after the connection breaks: from
/// 50 ms doubling up to 1 s, 6 attempts, then a new round on the next call.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
const RECONNECT_RETRIES: usize = 6;

/// One multiplexed, self-healing connection and its timeouts.
pub(crate) struct Shared {
    /// `None` once closed: every later call is a `Closed` error, and the
    /// connection is dropped when the last in-flight call finishes.
    manager: RwLock<Option<ConnectionManager>>,
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
            manager: RwLock::new(Some(manager)),
            command_timeout,
            target,
        })
    }

    /// A handle on the connection, or `Closed`.
    pub(crate) fn connection(&self) -> Result<ConnectionManager> {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::closed(NAME))
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

    /// Runs a Lua script (`EVALSHA`, loading it first if the server lost it).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut con = self.connection()?;
        within(self.command_timeout, invocation.invoke_async(&mut con)).await
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
