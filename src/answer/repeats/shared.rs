//! Request-id repeats for all replicas: an upstream failure is remembered under its scope (the
//! key and request id, `scope`) in Redis too, with the digest of the body it
//! answered, so FaceTo-AI's retry of it gets the same answer at once whichever replica it
//! reaches (`cluster::admission` reads it back; `answer::start` checks the body). An answer still in
//! flight elsewhere is not attached to: the real client retries only after a failure status,
//! never while an answer is streaming.

use std::time::Duration;

use super::{Failure, RecentFailures};
use crate::cluster::{Cluster, Shared};

/// Where a scope's failure is kept (read back by `admission`).
pub(crate) fn failed_key(shared: &Shared, scope: &str) -> String {
    shared.key(&["failed", scope])
}

/// Remembers `failure` under `scope` here and, when shared, for every replica; waited for, so
/// the client's retry (about 100 ms later) finds it.
pub async fn remember(
    cluster: &Cluster,
    local: &RecentFailures,
    scope: Option<&str>,
    failure: &Failure,
    window: Duration,
) {
    let Some(scope) = scope else {
        return;
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
