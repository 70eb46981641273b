//! Everything a request needs from the shared state before it is answered, in one round trip
//! to Redis: its rate buckets (`rate`), a place under the stream cap (`streams`) and the failure
//! its request id already met on some replica (`repeats`). Asked separately they cost two round
//! trips before the first token; as one script, one.
//!
//! The place is taken at admission, before the body is read. A body that trickles in holds it
//! for at most `limits.body_timeout`, far less than any stream it could have opened instead.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use super::streams::Lease;
use super::Cluster;
use crate::answer::repeats::shared as repeats;
use crate::answer::repeats::Failure;
use crate::error::ApiError;
use crate::rate::shared as rate;
use crate::rate::RateLimits;

/// KEYS: the stream set, the request id's failure key, then the rate buckets in the order they
/// are checked. ARGV: the cap (`-1`: no place asked), the lease in ms, the new lease's member,
/// `1` to read the failure key, then each bucket's emission interval and burst tolerance in µs.
///
/// Returns `{refused, wait_us, leased, failed}`: `refused` is the first bucket with no room
/// (1-based; buckets before it stay charged, as in the in-process order of checks) or 0, and
/// then nothing else is done; `leased` is 1 (taken), 0 (the cap is full) or -1 (not asked);
/// `failed` is the remembered failure's JSON or ''. Redis's clock is the only clock: replicas
/// whose clocks disagree still agree. A bucket holds its theoretical arrival time and expires
/// when that has passed, which is the same as no bucket. Expired leases are swept before a
/// refusal (and by every replica's renewal), so a dead replica's places count only until their
/// leases end; under the cap the sweep is skipped, a third of the script's work.
static ADMIT: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local clock = redis.call('TIME')
local us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ms = math.floor(us / 1000)
for i = 3, #KEYS do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or us
  if us < tat - tau then
    return {i - 2, tat - tau - us, -1, ''}
  end
  local next = math.max(tat, us) + t
  redis.call('SET', KEYS[i], string.format('%d', next), 'PX', math.ceil((next - us) / 1000))
end
local leased = -1
local cap = tonumber(ARGV[1])
if cap >= 0 then
  if redis.call('ZCARD', KEYS[1]) >= cap then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
    if redis.call('ZCARD', KEYS[1]) >= cap then
      return {0, 0, 0, ''}
    end
  end
  redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
  leased = 1
end
local failed = ''
if ARGV[4] == '1' then
  failed = redis.call('GET', KEYS[2]) or ''
end
return {0, 0, leased, failed}
",
    )
});

/// What a request asks of the shared state.
pub struct Ask<'a> {
    pub limits: &'a RateLimits,
    /// The caller's address, for its IP bucket.
    pub ip: Option<IpAddr>,
    /// The caller's key, when it was accepted, for its key bucket.
    pub key: Option<&'a str>,
    /// Set when the request will be answered.
    pub answer: Option<ToAnswer<'a>>,
}

/// A request that will be answered: the cap its place counts under, and whose request id it is
/// (`answer::repeats::scope`; `None`: nothing to recall).
pub struct ToAnswer<'a> {
    pub cap: usize,
    pub repeat: Option<&'a str>,
}

/// What the shared state said.
#[derive(Default)]
pub struct Verdict {
    /// The rate buckets were checked (and charged) there. `false`: nothing is shared (no limits,
    /// no Redis, or Redis down and failing open), and the caller checks this replica's limiter.
    pub rate_checked: bool,
    /// For a request that will be answered; `None` when it was not asked.
    pub reserved: Option<Reserved>,
}

/// What a request to be answered was given at admission.
#[derive(Default)]
pub struct Reserved {
    /// Its place under the replicas' cap; `None` when nothing is shared, and this replica's
    /// own cap alone applies.
    pub lease: Option<Lease>,
    /// The failure its key and request id met on any replica within the repeat window (a
    /// repeat only if the body is the same, which `answer::start` checks).
    pub failed: Option<Failure>,
}

/// Asks Redis, once, for everything in `ask`; refuses as the in-process limits would.
pub async fn check(cluster: &Cluster, ask: Ask<'_>) -> Result<Verdict, ApiError> {
    let buckets = rate::buckets(ask.limits, ask.ip, ask.key);
    let alone = Verdict {
        rate_checked: false,
        reserved: ask.answer.as_ref().map(|_| Reserved::default()),
    };
    if buckets.is_empty() && ask.answer.is_none() {
        return Ok(alone);
    }
    let Some(shared) = cluster.shared()? else {
        return Ok(alone);
    };
    let repeat = ask.answer.as_ref().and_then(|a| a.repeat);
    // A member only for a request that asks for a place; the script ignores it otherwise.
    let member = ask
        .answer
        .as_ref()
        .map(|_| shared.streams.mint())
        .unwrap_or_default();
    let mut invocation = ADMIT.prepare_invoke();
    invocation
        .key(shared.key(&["streams"]))
        .key(repeats::failed_key(shared, repeat.unwrap_or_default()))
        .arg(
            ask.answer
                .as_ref()
                .map_or(-1, |a| i64::try_from(a.cap).unwrap_or(i64::MAX)),
        )
        .arg(shared.streams.lease_ms())
        .arg(&member)
        .arg(if repeat.is_some() { "1" } else { "0" });
    for bucket in &buckets {
        let (t, tau) = bucket.gcra();
        invocation
            .key(shared.key(&["rate", &bucket.name]))
            .arg(t)
            .arg(tau);
    }
    let said: Option<(usize, u64, i64, String)> = shared
        .redis
        .run("admission", |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
        .await;
    let Some((refused, wait_us, leased, failed)) = said else {
        return shared.unavailable().map(|_: Option<()>| alone);
    };
    if refused > 0 {
        return Err(ApiError::RateLimited {
            scope: buckets.get(refused - 1).map_or("API key", |b| b.scope),
            retry_after: Duration::from_micros(wait_us).max(Duration::from_secs(1)),
        });
    }
    let lease = match leased {
        1 => Some(Lease::new(shared.clone(), member)),
        0 => {
            return Err(ApiError::Overloaded {
                retry_after: Duration::from_secs(1),
            })
        }
        _ => None,
    };
    Ok(Verdict {
        rate_checked: !buckets.is_empty(),
        reserved: ask.answer.map(|_| Reserved {
            lease,
            failed: (!failed.is_empty())
                .then(|| serde_json::from_str(&failed).ok())
                .flatten(),
        }),
    })
}
