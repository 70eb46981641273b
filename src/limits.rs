//! Limits checked before anything goes upstream: per-key and per-IP rate limits (governor's GCRA)
//! and the global cap on open streams.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::KeyId;
use crate::config::LimitsConfig;
use crate::error::ApiError;

pub struct RateLimits {
    per_key: Option<DefaultKeyedRateLimiter<KeyId>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter<K: Hash + Eq + Clone>(
    per_minute: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    ))
}

fn check<K: Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
    scope: &'static str,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        let retry_after = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            scope,
            retry_after: retry_after.max(Duration::from_secs(1)),
        }
    })
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            per_key: limiter(config.per_key_per_minute, config.per_key_burst),
            per_ip: limiter(config.per_ip_per_minute, config.per_ip_burst),
        }
    }

    pub fn check(&self, key: Option<KeyId>, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            check(&self.per_ip, &ip, "IP address")?;
        }
        if let Some(key) = key {
            check(&self.per_key, &key, "API key")?;
        }
        Ok(())
    }

    /// Forget callers not seen lately, so the tables do not grow with every address ever seen.
    pub fn shrink(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
    }
}

/// Streams open right now, across all callers. The cap is passed in at each check rather than
/// fixed here, so a reload that changes `limits.max_concurrent_streams` applies at once: streams
/// already over a lowered cap finish, and new ones wait until the count is below it.
#[derive(Debug, Default)]
pub struct OpenStreams(Arc<AtomicUsize>);

/// One open stream's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl OpenStreams {
    pub fn try_open(&self, cap: usize) -> Result<StreamSlot, ApiError> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < cap).then_some(open + 1)
            })
            .map(|_| StreamSlot(self.0.clone()))
            .map_err(|_| ApiError::Overloaded {
                retry_after: Duration::from_secs(1),
            })
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_whatever_the_caller_passes_now() {
        let open = OpenStreams::default();
        let a = open.try_open(2).unwrap();
        let _b = open.try_open(2).unwrap();
        assert!(open.try_open(2).is_err());
        let c = open.try_open(3).unwrap();
        assert_eq!(open.count(), 3);
        assert!(
            open.try_open(1).is_err(),
            "over a lowered cap, nothing new opens"
        );
        drop((a, c));
        assert_eq!(open.count(), 1);
        assert!(open.try_open(1).is_err());
        assert!(open.try_open(2).is_ok());
    }
}
