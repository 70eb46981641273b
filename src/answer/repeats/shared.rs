//! Request-id repeats for all replicas: an upstream failure is remembered under its scope (the
//! key and request id, `scope`) in Redis too, with the digest of the request it answered, so
//! FaceTo-AI's retry of it gets the same answer at once whichever replica it reaches
//! (`cluster::admission` reads it back; `repeated` compares the request). An answer still in
//! flight elsewhere is not attached to: the real client retries only after a failure status,
//! never while an answer is streaming.

use std::time::Duration;

use super::{digest, Failure, RecentFailures};
use crate::cluster::{Cluster, Shared};
use crate::upstream::{ChatRequest, UpstreamError};

/// Where a scope's failure is kept (read back by `admission`).
pub(crate) fn failed_key(shared: &Shared, scope: &str) -> String {
    shared.key(&["failed", scope])
}

/// Remembers that `request` failed with `error` under `scope`, here and, when shared, for every
/// replica; waited for, so the client's retry (about 100 ms later) finds it. Nothing (not even
/// the digest) without a scope.
pub async fn remember(
    cluster: &Cluster,
    local: &RecentFailures,
    scope: Option<&str>,
    request: &ChatRequest,
    error: &UpstreamError,
    window: Duration,
) {
    let Some(scope) = scope else {
        return;
    };
    let failure = &Failure {
        digest: digest(request),
        error: error.clone(),
    };
    local.remember(scope, failure, window);
    let Ok(Some(shared)) = cluster.shared() else {
        return;
    };
    let Ok(json) = serde_json::to_string(failure) else {
        return;
    };
    shared
        .set("repeats", failed_key(shared, scope), json, window)
        .await;
}
