//! Who may ask, and how often: the per-IP rate limit (a flood of bad keys is limited too, and
//! told so before being told the key is wrong), the key, then the key's own rate limit. With
//! replicas sharing their state, a caller that will be answered also takes its place under the
//! shared stream cap here, in the same round trip (`cluster::admission`); this replica's own
//! stream slot is taken later, by `answer::start`, once the body is in. Routes find the key and
//! the caller's address in their own headers; nothing here is HTTP.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::auth;
use crate::cluster::admission::{Ask, Reserved, ToAnswer};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::state::Runtime;

/// An admitted caller, and the runtime (config, upstreams, limits) its whole request uses: a
/// reload while it is answered does not change what it started with.
pub struct Caller {
    pub runtime: Arc<Runtime>,
    /// Whose video library this caller sees: its key's tenant, `""` for the one shared tenant
    /// (every key that names none, and everyone when no keys are configured).
    pub tenant: String,
    /// What the shared state gave a caller admitted to be answered, until `answer::start`
    /// takes it.
    reserved: Mutex<Option<Reserved>>,
    /// Whose request id this is (`answer::repeats::scope`), for a request to be answered.
    pub(crate) repeat_scope: Option<String>,
}

impl Caller {
    /// For work that asks the upstream several times for one request (a digest's map and
    /// reduce): the next answer starts without what admission reserved, which the first took
    /// (each still takes this replica's stream slot while it runs).
    pub(crate) fn reserve_again(&self) {
        *self.reserved.lock().unwrap_or_else(PoisonError::into_inner) = Some(Reserved::default());
    }

    /// What admission reserved for the answer; `None` if it was not admitted to be answered
    /// (or this was already taken).
    pub(crate) fn take_reserved(&self) -> Option<Reserved> {
        self.reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// For a caller admitted once for a message that turns out to need an answer (an MCP tool
/// call: the message was admitted before its body said which tool): its place under the shared
/// stream cap, without counting its rate limits again.
pub async fn reserve_to_answer(caller: &Caller, cluster: &Cluster) -> Result<(), ApiError> {
    let verdict = crate::cluster::admission::check(
        cluster,
        Ask {
            limits: &caller.runtime.rate_limits,
            ip: None,
            key: None,
            answer: Some(ToAnswer {
                cap: caller.runtime.config.limits.max_concurrent_streams,
                repeat: None,
            }),
        },
    )
    .await?;
    *caller
        .reserved
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = verdict.reserved;
    Ok(())
}

/// `presented`: the key the caller sent, in whatever header its dialect uses. `ip`: the caller's
/// address (behind a trusted proxy, the one it forwarded); `None` when served without one.
/// `answering`: the request id, when the request will be answered. With replicas sharing their
/// state (`cluster`), all of it is asked there in one call; otherwise, or while that is down,
/// the limits are this process's.
pub async fn admit(
    runtime: Arc<Runtime>,
    cluster: &Cluster,
    presented: Option<&str>,
    ip: Option<IpAddr>,
    answering: Option<&str>,
) -> Result<Caller, ApiError> {
    let holder = auth::check(&runtime.config.auth.keys, presented);
    // A refused key's caller is still counted against its IP, and told so first.
    let accepted = match &holder {
        Ok(Some(_)) => presented,
        _ => None,
    };
    let limits = &runtime.config.limits;
    let repeat_scope = answering
        .and_then(|request_id| super::repeats::scope(accepted, request_id, limits.repeat_window));
    let verdict = crate::cluster::admission::check(
        cluster,
        Ask {
            limits: &runtime.rate_limits,
            ip,
            key: accepted,
            // A caller about to be refused its key takes no place.
            answer: answering.filter(|_| holder.is_ok()).map(|_| ToAnswer {
                cap: limits.max_concurrent_streams,
                repeat: repeat_scope.as_deref(),
            }),
        },
    )
    .await?;
    if !verdict.rate_checked {
        if let Some(ip) = ip {
            runtime.rate_limits.check_ip(ip)?;
        }
    }
    let holder = holder?;
    if let (false, Some(holder)) = (verdict.rate_checked, &holder) {
        runtime.rate_limits.check_key(holder.key)?;
    }
    let tenant = holder.map_or(String::new(), |h| h.tenant);
    Ok(Caller {
        runtime,
        tenant,
        reserved: Mutex::new(verdict.reserved),
        repeat_scope,
    })
}
