//! The stream cap for all replicas. Each open stream holds a lease in one sorted set (member: this
//! replica's id and a number; score: when the lease ends, by Redis's clock). A replica renews its
//! leases every third of `cluster.stream_lease`; one that dies stops renewing, and its places come
//! back when its leases run out. `admission` takes a lease in the same round trip as the rate
//! check. The count in this process is kept too: it is the cap while Redis is down, and what
//! `/metrics` reports.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use super::Shared;

/// KEYS[1]: the set. ARGV: the lease in ms, then the members to renew. `XX`: a lease that ended
/// meanwhile (released, or expired and swept) is not brought back. Leases that ran out (a dead
/// replica's) are swept here too, so the set does not keep them while it is under the cap.
static RENEW: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local until_ms = now + tonumber(ARGV[1])
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

    /// A new lease's member: this process's id and a number.
    pub(super) fn mint(&self) -> String {
        format!(
            "{}:{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub(super) fn lease_ms(&self) -> u64 {
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

impl Lease {
    /// `member`, just added to the set (by `admission`), held and renewed from now on.
    pub(super) fn new(shared: Arc<Shared>, member: String) -> Self {
        shared.streams.held().insert(member.clone());
        Self { shared, member }
    }
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
        // Even with nothing to renew: the call sweeps other replicas' dead leases.
        let members: Vec<String> = shared.streams.held().iter().cloned().collect();
        if !shared.redis.is_up() {
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
