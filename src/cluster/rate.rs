//! Per-IP and per-key rate limits for all replicas at once: the in-process limiter's algorithm
//! (governor's GCRA, same emission interval, same burst tolerance, same order: the IP first) run
//! in one Lua script, so a burst of N spread over replicas is N, not N per replica. Redis's own
//! clock is the only clock, so replicas whose clocks disagree still agree on the buckets.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Cluster;
use crate::error::ApiError;
use crate::limits::{Quota, RateLimits};

/// KEYS: the buckets, in the order they are checked. ARGV: each bucket's emission interval and
/// burst tolerance, in microseconds. Returns `{0, 0}` when every bucket had room (and each was
/// charged), or `{i, wait}` for the first that had none (buckets before it stay charged, as in
/// the in-process order of checks). A bucket's value is its theoretical arrival time, and it
/// expires when that time has passed, which is the same as no bucket.
static GCRA: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if now < tat - tau then
    return {i, tat - tau - now}
  end
  local next = math.max(tat, now) + t
  redis.call('SET', key, string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
end
return {0, 0}
",
    )
});

/// Checks the caller's IP and key against the shared buckets. `Ok(true)`: checked there and
/// allowed. `Ok(false)`: not shared (no limits set, no Redis, or Redis down and failing open):
/// the caller checks this replica's own limiter. `presented`: the key, when it was accepted.
pub async fn check(
    cluster: &Cluster,
    limits: &RateLimits,
    ip: Option<IpAddr>,
    presented: Option<&str>,
) -> Result<bool, ApiError> {
    let (per_ip, per_key) = limits.quotas();
    // (what it counts, its name, its quota), in the order they are checked.
    let buckets: Vec<(&'static str, String, Quota)> = ip
        .zip(per_ip)
        .map(|(ip, quota)| ("IP address", format!("ip:{ip}"), quota))
        .into_iter()
        .chain(
            presented
                .zip(per_key)
                .map(|(key, quota)| ("API key", format!("key:{}", key_digest(key)), quota)),
        )
        .collect();
    if buckets.is_empty() {
        return Ok(false);
    }
    let Some(shared) = cluster.shared()? else {
        return Ok(false);
    };
    let mut invocation = GCRA.prepare_invoke();
    for (_, name, quota) in &buckets {
        let (t, tau) = gcra(*quota);
        invocation.key(shared.key(&["rate", name])).arg(t).arg(tau);
    }
    let verdict: Option<(usize, u64)> = shared
        .redis
        .run("rate", |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await;
    match verdict {
        Some((0, _)) => Ok(true),
        Some((i, wait_us)) => Err(ApiError::RateLimited {
            scope: buckets.get(i - 1).map_or("API key", |(scope, _, _)| scope),
            retry_after: Duration::from_micros(wait_us).max(Duration::from_secs(1)),
        }),
        None => shared.unavailable().map(|_: Option<()>| false),
    }
}

/// Governor's GCRA parameters for a quota, in microseconds: the emission interval (one request
/// per `t`) and the burst tolerance (`burst - 1` intervals ahead).
fn gcra(quota: Quota) -> (u64, u64) {
    let t = (60_000_000 / u64::from(quota.per_minute.max(1))).max(1);
    (t, t * u64::from(quota.burst.max(1) - 1))
}

/// A key's bucket name: the same on every replica, and not the key.
fn key_digest(key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"chatapi rate limit\0")
        .chain_update(key.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_governors() {
        // 60 a minute with a burst of 10: one a second, nine ahead.
        assert_eq!(
            gcra(Quota {
                per_minute: 60,
                burst: 10
            }),
            (1_000_000, 9_000_000)
        );
        // A burst of 0 is read as 1, as the in-process limiter reads it.
        assert_eq!(
            gcra(Quota {
                per_minute: 120,
                burst: 0
            }),
            (500_000, 0)
        );
    }

    #[test]
    fn a_keys_bucket_is_stable_and_not_the_key() {
        assert_eq!(key_digest("sk-1"), key_digest("sk-1"));
        assert_ne!(key_digest("sk-1"), key_digest("sk-2"));
        assert!(!key_digest("sk-1").contains("sk-1"));
        assert_eq!(key_digest("sk-1").len(), 32);
    }
}
