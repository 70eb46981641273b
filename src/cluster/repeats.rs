//! Request-id repeats for all replicas: an upstream failure is remembered under its request id in
//! Redis too, so FaceTo-AI's retry of it gets the same answer at once whichever replica it
//! reaches (see `answer::repeats`). An answer still in flight elsewhere is not attached to: the
//! real client retries only after a failure status, never while an answer is streaming.

use std::time::Duration;

use super::Cluster;
use crate::answer::repeats::RecentFailures;
use crate::error::ApiError;
use crate::upstream::UpstreamError;

fn counts(request_id: &str, window: Duration) -> bool {
    !window.is_zero() && !request_id.is_empty() && request_id != "-"
}

/// The failure `request_id` met within `window`, on this replica or any other.
pub async fn recall(
    cluster: &Cluster,
    local: &RecentFailures,
    request_id: &str,
    window: Duration,
) -> Result<Option<UpstreamError>, ApiError> {
    if let Some(failed) = local.recall(request_id, window) {
        return Ok(Some(failed));
    }
    if !counts(request_id, window) {
        return Ok(None);
    }
    let Some(shared) = cluster.shared()? else {
        return Ok(None);
    };
    let found = shared
        .get("repeats", shared.key(&["failed", request_id]))
        .await;
    Ok(found.and_then(|json| serde_json::from_str(&json).ok()))
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
        .set("repeats", shared.key(&["failed", request_id]), json, window)
        .await;
}
