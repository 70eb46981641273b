//! The one Redis connection a replica holds, and whether Redis counts as up. A call that fails or
//! takes longer than `cluster.redis_timeout` marks it down at once, so the requests after it do
//! not wait at all; a background task reconnects, checks with a PING, and marks it up again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio_util::sync::CancellationToken;

/// How often a replica whose Redis is down tries it again.
const RECONNECT_EVERY: Duration = Duration::from_millis(250);

pub struct Redis {
    client: Client,
    /// `None` while Redis is down: callers fall back without trying.
    conn: ArcSwapOption<MultiplexedConnection>,
    timeout: Duration,
    /// Wakes the reconnect task when a call finds Redis down.
    lost: tokio::sync::Notify,
}

impl Redis {
    /// Starts disconnected; `keep_connected` (spawned by the caller) connects and reconnects.
    pub fn new(url: &str, timeout: Duration) -> RedisResult<Self> {
        Ok(Self {
            client: Client::open(url)?,
            conn: ArcSwapOption::empty(),
            timeout,
            lost: tokio::sync::Notify::new(),
        })
    }

    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Runs `call` on the connection within the timeout. `None`: Redis is down, or just went
    /// down with this call (logged, counted); the caller decides what to do without it.
    pub async fn run<T, F>(
        &self,
        what: &'static str,
        call: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Option<T>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn.load_full()?;
        let outcome = tokio::time::timeout(self.timeout, call((*conn).clone())).await;
        let problem = match outcome {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        metrics::counter!("chatapi_cluster_redis_failures_total", "call" => what).increment(1);
        // Only the call that finds it up reports the loss: one line per outage, not per request.
        if self.conn.swap(None).is_some() {
            tracing::error!(call = what, %problem, "redis is unreachable: serving with this replica's own state until it answers again");
            metrics::gauge!("chatapi_cluster_redis_up").set(0.0);
            self.lost.notify_one();
        }
        None
    }

    /// Connects, and reconnects whenever a call marks Redis down, until `stop`.
    pub async fn keep_connected(self: Arc<Self>, stop: CancellationToken) {
        metrics::gauge!("chatapi_cluster_redis_up").set(0.0);
        let mut first = true;
        loop {
            if self.conn.load().is_none() {
                match self.connect().await {
                    Ok(conn) => {
                        self.conn.store(Some(Arc::new(conn)));
                        metrics::gauge!("chatapi_cluster_redis_up").set(1.0);
                        if first {
                            tracing::info!(
                                "redis connected: limits, streams, repeats and sessions are shared"
                            );
                        } else {
                            tracing::warn!("redis answers again: limits, streams, repeats and sessions are shared again");
                        }
                        first = false;
                    }
                    Err(problem) => {
                        if first {
                            tracing::error!(%problem, "redis is unreachable at start: serving with this replica's own state until it answers");
                            first = false;
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(RECONNECT_EVERY) => continue,
                        }
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.lost.notified() => {}
            }
        }
    }

    /// A fresh connection that has answered a PING: a Redis that accepts connections but does not
    /// answer (stopped, overloaded) is not up.
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let pong: Result<RedisResult<String>, _> =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut conn)).await;
        match pong {
            Ok(Ok(_)) => Ok(conn),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer to PING within {:?}", self.timeout)),
        }
    }
}
