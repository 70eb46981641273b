//! Rate limits, per key and per IP address (governor's GCRA), checked before anything goes
//! upstream: this process's limiters here, and the same limits for all replicas at once in
//! `shared` (the buckets and parameters `cluster::admission`'s script runs in Redis).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use ipnet::IpNet;

use crate::auth::KeyId;
use crate::config::LimitsConfig;
use crate::error::ApiError;

/// A rate limit as configured: requests per minute, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// One limiter and the quota it was built for, shared with the next runtime when a reload
/// leaves that quota alone (its buckets then carry over).
struct Limiter<K: Hash + Eq + Clone> {
    quota: Quota,
    limiter: Arc<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn build(per_minute: u32, burst: u32, previous: Option<&Limiter<K>>) -> Option<Self> {
        let quota = Quota { per_minute, burst };
        if let Some(p) = previous.filter(|p| p.quota == quota) {
            return Some(Self {
                quota: p.quota,
                limiter: p.limiter.clone(),
            });
        }
        Some(Self {
            quota,
            limiter: Arc::new(limiter(per_minute, burst)?),
        })
    }
}

pub struct RateLimits {
    per_key: Option<Limiter<KeyId>>,
    per_ip: Option<Limiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

/// The caller's address. From a trusted proxy, it is the rightmost `X-Forwarded-For` entry that
/// is not itself a trusted proxy: each proxy appends the address it saw, so everything left of
/// that entry came from the caller and may be forged. An entry that is not an address stops the
/// walk at the last trusted hop, which is then limited as the caller.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut caller = peer;
    for entry in forwarded.iter().rev() {
        let Some(ip) = parse_forwarded(entry) else {
            break;
        };
        caller = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    caller
}

/// `203.0.113.7`, `2001:db8::1`, or with a port as some proxies write it (`203.0.113.7:4711`,
/// `[2001:db8::1]:4711`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

fn limiter<K: Hash + Eq + Clone>(
    per_minute: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::keyed(
        governor::Quota::per_minute(rate).allow_burst(burst),
    ))
}

fn check<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    scope: &'static str,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let retry_after = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            scope,
            retry_after: retry_after.max(Duration::from_secs(1)),
        }
    })
}

impl RateLimits {
    /// `previous`: the limits a reload replaces; a limiter whose quota is unchanged is kept, so
    /// a reload never hands every caller a fresh burst.
    pub fn new(config: &LimitsConfig, previous: Option<&RateLimits>) -> Self {
        Self {
            per_key: Limiter::build(
                config.per_key_per_minute,
                config.per_key_burst,
                previous.and_then(|p| p.per_key.as_ref()),
            ),
            per_ip: Limiter::build(
                config.per_ip_per_minute,
                config.per_ip_burst,
                previous.and_then(|p| p.per_ip.as_ref()),
            ),
            // Validated with the rest of the config before a runtime is built.
            trusted_proxies: config.trusted_proxy_nets().unwrap_or_default(),
        }
    }

    /// The caller's address: `peer` itself, or behind a trusted proxy the one it forwarded.
    pub fn caller_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted_proxies)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.per_ip {
            Some(l) => check(&l.limiter, &ip, "IP address"),
            None => Ok(()),
        }
    }

    pub fn check_key(&self, key: KeyId) -> Result<(), ApiError> {
        match &self.per_key {
            Some(l) => check(&l.limiter, &key, "API key"),
            None => Ok(()),
        }
    }

    /// The per-IP and per-key quotas, `None` where that limit is off (for the shared limiter).
    pub fn quotas(&self) -> (Option<Quota>, Option<Quota>) {
        (
            self.per_ip.as_ref().map(|l| l.quota),
            self.per_key.as_ref().map(|l| l.quota),
        )
    }

    /// Forget callers not seen lately, so the tables do not grow with every address ever seen.
    pub fn shrink(&self) {
        if let Some(l) = &self.per_key {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.limiter.retain_recent();
        }
    }
}

pub mod shared;

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_caller_is_the_rightmost_untrusted_forwarded_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let proxy = ip("127.0.0.1");
        // Not from a proxy: the header is the caller's own claim and is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.9"), &forwarded(&["1.2.3.4"]), &trusted),
            ip("198.51.100.9")
        );
        // A forged entry on the left does not help: the proxy appended the real one.
        assert_eq!(
            client_ip(proxy, &forwarded(&["1.2.3.4, 203.0.113.7"]), &trusted),
            ip("203.0.113.7")
        );
        // Through two proxies, across two header lines, with ports.
        assert_eq!(
            client_ip(
                proxy,
                &forwarded(&["1.2.3.4", "[2001:db8::5]:4711, 10.1.2.3:80"]),
                &trusted
            ),
            ip("2001:db8::5")
        );
        // No header, or garbage: the nearest proxy stands for the caller.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, &forwarded(&["1.2.3.4, unknown"]), &trusted),
            proxy
        );
        // Nothing trusted: the TCP peer, whatever the header says.
        assert_eq!(client_ip(proxy, &forwarded(&["1.2.3.4"]), &[]), proxy);
    }
}
