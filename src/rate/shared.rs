//! Per-IP and per-key rate limits for all replicas at once: the in-process limiter's algorithm
//! (governor's GCRA, same emission interval, same burst tolerance, same order: the IP first),
//! run in Redis by `cluster::admission`'s script, so a burst of N spread over replicas is N, not N per
//! replica. This is which buckets a caller has, and their parameters.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::{Quota, RateLimits};

/// One shared bucket: what it counts (for the refusal), its name in Redis, its quota.
pub(crate) struct Bucket {
    pub scope: &'static str,
    pub name: String,
    quota: Quota,
}

impl Bucket {
    /// Governor's GCRA parameters for this bucket's quota.
    pub fn gcra(&self) -> (u64, u64) {
        gcra(self.quota)
    }
}

/// The caller's buckets, in the order they are checked (the IP first): none for a limit that is
/// off. `key`: the caller's key, when it was accepted.
pub(crate) fn buckets(limits: &RateLimits, ip: Option<IpAddr>, key: Option<&str>) -> Vec<Bucket> {
    let (per_ip, per_key) = limits.quotas();
    let ip = ip.zip(per_ip).map(|(ip, quota)| Bucket {
        scope: "IP address",
        name: format!("ip:{ip}"),
        quota,
    });
    let key = key.zip(per_key).map(|(key, quota)| Bucket {
        scope: "API key",
        name: format!("key:{}", key_digest(key)),
        quota,
    });
    ip.into_iter().chain(key).collect()
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
