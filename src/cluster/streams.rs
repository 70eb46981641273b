//! The stream cap for all replicas. Each open stream holds a lease in one sorted set (member: this
//! replica's id and a number; score: when the lease ends, by Redis's clock). A replica renews its
//! leases every third of `cluster.stream_lease`; one that dies stops renewing, and its places come
//! back when its leases run out. The count in this process is kept too: it is the cap while Redis
//! is down, and what `/metrics` reports.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use super::{Cluster, Shared};
use crate::error::ApiError;
use crate::limits::{OpenStreams, StreamSlot};

/// KEYS[1]: the set. ARGV: the cap, the lease in ms, the new member. Expired leases go first,
/// so a dead replica's places count only until their leases end.
static ACQUIRE: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
return 1
",
    )
});

/// KEYS[1]: the set. ARGV: the lease in ms, then the members to renew. `XX`: a lease that ended
/// meanwhile (released, or expired and swept) is not brought back.
static RENEW: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local clock = redis.call('TIME')
local until_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i])
end
return #ARGV - 1
",
    )
});

/// This replica's leases.
pub struct Leases {
    /// Random per process: a restarted replica never renews its previous life's leases.
    node: String,
    next: AtomicU64,
    held: Mutex<HashSet<String>>,
    lease: Duration,
}

impl Leases {
    pub fn new(lease: Duration) -> Self {
        Self {
            node: uuid::Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(0),
            held: Mutex::new(HashSet::new()),
            lease,
        }
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic elsewhere while holding the set left it whole (inserts and removes only).
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stream's place under the shared cap, given back when the stream ends.
pub struct Lease {
    shared: Arc<Shared>,
    member: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.streams.held().remove(&self.member);
        // Without a runtime (a test dropping it late) the lease simply runs out.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            let member = std::mem::take(&mut self.member);
            runtime.spawn(async move {
                let set = shared.key(&["streams"]);
                let _: Option<i64> = shared
                    .redis
                    .run("streams", |mut conn| async move {
                        ::redis::cmd("ZREM")
                            .arg(set)
                            .arg(member)
                            .query_async(&mut conn)
                            .await
                    })
                    .await;
            });
        }
    }
}

/// A place under `cap` for one stream: on this replica, and across all of them when shared.
pub async fn open(
    cluster: &Cluster,
    local: &OpenStreams,
    cap: usize,
) -> Result<StreamSlot, ApiError> {
    let slot = local.try_open(cap)?;
    let Some(shared) = cluster.shared()? else {
        return Ok(slot);
    };
    let leases = &shared.streams;
    let member = format!(
        "{}:{}",
        leases.node,
        leases.next.fetch_add(1, Ordering::Relaxed)
    );
    let mut invocation = ACQUIRE.prepare_invoke();
    invocation
        .key(shared.key(&["streams"]))
        .arg(cap)
        .arg(leases.lease_ms())
        .arg(&member);
    let acquired: Option<i64> = shared
        .redis
        .run("streams", |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await;
    match acquired {
        Some(1) => {
            leases.held().insert(member.clone());
            Ok(slot.with_lease(Lease {
                shared: shared.clone(),
                member,
            }))
        }
        Some(_) => Err(ApiError::Overloaded {
            retry_after: Duration::from_secs(1),
        }),
        None => shared.unavailable().map(|_: Option<()>| slot),
    }
}

/// Renews this replica's leases every third of the lease, for as long as the cluster lives.
pub(super) async fn renew(shared: Weak<Shared>) {
    let every = match shared.upgrade() {
        Some(s) => s.streams.lease / 3,
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stop.is_cancelled() {
            return;
        }
        let members: Vec<String> = shared.streams.held().iter().cloned().collect();
        if members.is_empty() || !shared.redis.is_up() {
            continue;
        }
        let mut invocation = RENEW.prepare_invoke();
        invocation
            .key(shared.key(&["streams"]))
            .arg(shared.streams.lease_ms());
        for m in &members {
            invocation.arg(m);
        }
        let _: Option<i64> = shared
            .redis
            .run("streams_renew", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await;
    }
}
