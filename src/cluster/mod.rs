//! State that replicas behind one load balancer share (`[cluster]`), so N replicas behave as one
//! server: rate limits (`crate::rate::shared`), the stream cap (its leases, `streams`),
//! request-id repeats (`crate::answer::repeats::shared`) and Memories.ai sessions (`sessions`),
//! all through Redis (`redis`); what a request needs of the first three before it is answered is
//! asked in one round trip (`admission`). With no
//! `redis_url` every piece stays in this process, exactly as on a single server. Redis is never
//! a reason to wait: each call has a short timeout, and while it is down every request is
//! served with this replica's own state (or refused, with `cluster.fail_closed`).

pub mod admission;
pub mod redis;
pub mod sessions;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::error::ApiError;

/// The replicas' shared state, or this process alone. Cheap to clone.
#[derive(Clone, Default)]
pub struct Cluster {
    shared: Option<Arc<Shared>>,
}

pub struct Shared {
    redis: Arc<redis::Redis>,
    prefix: String,
    fail_closed: bool,
    streams: streams::Leases,
    stop: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cluster {
    /// Connects in the background: a Redis that is down at start does not stop the server.
    pub fn start(config: &ClusterConfig) -> Result<Self, ::redis::RedisError> {
        if config.redis_url.is_empty() {
            return Ok(Self::default());
        }
        let redis = Arc::new(redis::Redis::new(
            config.redis_url.expose(),
            config.redis_timeout,
        )?);
        let stop = CancellationToken::new();
        tokio::spawn(redis.clone().keep_connected(stop.clone()));
        let shared = Arc::new(Shared {
            redis,
            prefix: config.redis_prefix.clone(),
            fail_closed: config.fail_closed,
            streams: streams::Leases::new(config.stream_lease),
            stop,
        });
        tokio::spawn(streams::renew(Arc::downgrade(&shared)));
        Ok(Self {
            shared: Some(shared),
        })
    }

    /// `Ok(None)`: nothing is shared (no Redis configured, or Redis down and failing open);
    /// use this replica's own state. `Err`: Redis is down and `fail_closed` refuses.
    pub(crate) fn shared(&self) -> Result<Option<&Arc<Shared>>, ApiError> {
        match &self.shared {
            None => Ok(None),
            Some(shared) if shared.redis.is_up() => Ok(Some(shared)),
            Some(shared) => shared.unavailable(),
        }
    }

    /// Whether Redis is configured and answering (readiness, metrics, tests).
    pub fn redis_up(&self) -> Option<bool> {
        self.shared.as_ref().map(|s| s.redis.is_up())
    }

    /// What `check-config` says about each piece of state: shared through Redis, or local.
    pub fn describe(config: &crate::Config) -> Vec<String> {
        let limits = "rate limits, the stream cap, request-id repeats, Memories.ai sessions";
        let mut lines = vec![if config.cluster.redis_url.is_empty() {
            format!("{limits}: this replica's own (no cluster.redis_url)")
        } else {
            format!(
                "{limits}: shared through Redis (keys under `{}:`); while it is down: {}",
                config.cluster.redis_prefix,
                if config.cluster.fail_closed {
                    "refused (503)"
                } else {
                    "this replica's own"
                }
            )
        }];
        if config.videos.enabled {
            lines.push(if config.cluster.database_url.is_empty() {
                format!(
                    "video library and its jobs: this machine's SQLite at {} (no cluster.database_url)",
                    config.storage.dir.join("chatapi.db").display()
                )
            } else {
                format!(
                    "video library and its jobs: shared in Postgres; video files in {} (a volume every replica mounts)",
                    config.storage.dir.display()
                )
            });
        }
        lines
    }
}

impl Shared {
    /// Redis did not answer: this replica's own state, or a refusal.
    fn unavailable<T>(&self) -> Result<Option<T>, ApiError> {
        if self.fail_closed {
            Err(ApiError::SharedStateDown)
        } else {
            Ok(None)
        }
    }

    /// A string value; `None` when it is absent or Redis did not answer.
    async fn get(&self, what: &'static str, key: String) -> Option<String> {
        self.redis
            .run(what, |mut conn| async move {
                ::redis::cmd("GET").arg(key).query_async(&mut conn).await
            })
            .await
            .flatten()
    }

    /// Sets a string value that expires after `ttl` (best effort: a failure is counted and
    /// logged by `redis`, and the caller goes on).
    pub(crate) async fn set(&self, what: &'static str, key: String, value: String, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: Option<()> = self
            .redis
            .run(what, |mut conn| async move {
                ::redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            })
            .await;
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }
}
