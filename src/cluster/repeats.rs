//! Request-id repeats for all replicas: an upstream failure is remembered under its request id in
//! Redis too, so FaceTo-AI's retry of it gets the same answer at once whichever replica it
//! reaches (see `answer::repeats`; `admission` reads it back). An answer still in flight
//! elsewhere is not attached to: the real client retries only after a failure status, never
//! while an answer is streaming.

use std::time::Duration;

use super::{Cluster, Shared};
use crate::answer::repeats::RecentFailures;
use crate::upstream::UpstreamError;

/// Whether a request id is worth remembering: a window is set and the id is a real one.
pub(super) fn counts(request_id: &str, window: Duration) -> bool {
    !window.is_zero() && !request_id.is_empty() && request_id != "-"
}

/// Where a request id's failure is kept (read back by `admission`).
pub(super) fn failed_key(shared: &Shared, request_id: &str) -> String {
    shared.key(&["failed", request_id])
}

/// Remembers `error` for `request_id` here and, when shared, for every replica; waited for, so
/// the client's retry (about 100 ms later) finds it.
pub async fn remember(
    cluster: &Cluster,
    local: &RecentFailures,
    request_id: &str,
    error: &UpstreamError,
    window: Duration,
) {
    local.remember(request_id, error, window);
    if !counts(request_id, window) {
        return;
    }
    let Ok(Some(shared)) = cluster.shared() else {
        return;
    };
    let Ok(json) = serde_json::to_string(error) else {
        return;
    };
    shared
        .set("repeats", failed_key(shared, request_id), json, window)
        .await;
}
