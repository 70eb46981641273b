//! Who may ask, and how often: the per-IP rate limit (a flood of bad keys is limited too, and
//! told so before being told the key is wrong), the key, then the key's own rate limit. The stream cap is taken later, by
//! `answer::start`, once the request body is in: a slow body must not hold a stream slot.
//! Routes find the key and the caller's address in their own headers; nothing here is HTTP.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{self, KeyId};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::state::Runtime;

/// An admitted caller, and the runtime (config, upstreams, limits) its whole request uses: a
/// reload while it is answered does not change what it started with.
pub struct Caller {
    pub runtime: Arc<Runtime>,
    pub key: Option<KeyId>,
    /// Whose video library this caller sees: its key's tenant, `""` for the one shared tenant
    /// (every key that names none, and everyone when no keys are configured).
    pub tenant: String,
}

/// `presented`: the key the caller sent, in whatever header its dialect uses. `ip`: the caller's
/// address (behind a trusted proxy, the one it forwarded); `None` when served without one.
/// With replicas sharing their limits (`cluster`), both buckets are checked in one call there;
/// otherwise, or while that is down, in this process.
pub async fn admit(
    runtime: Arc<Runtime>,
    cluster: &Cluster,
    presented: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let holder = auth::check(&runtime.config.auth.keys, presented);
    // A refused key's caller is still counted against its IP, and told so first.
    let accepted = match &holder {
        Ok(Some(_)) => presented,
        _ => None,
    };
    let shared = crate::cluster::rate::check(cluster, &runtime.rate_limits, ip, accepted).await?;
    if !shared {
        if let Some(ip) = ip {
            runtime.rate_limits.check_ip(ip)?;
        }
    }
    let holder = holder?;
    if let (false, Some(holder)) = (shared, &holder) {
        runtime.rate_limits.check_key(holder.key)?;
    }
    let (key, tenant) = holder.map_or((None, String::new()), |h| (Some(h.key), h.tenant));
    Ok(Caller {
        runtime,
        key,
        tenant,
    })
}
