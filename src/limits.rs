//! Per-key and per-IP rate limits (governor's GCRA), checked before anything goes upstream.
//! The global cap on open streams is a semaphore in `state`, since it counts streams, not requests.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
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
