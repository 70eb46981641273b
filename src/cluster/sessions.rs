//! Memories.ai v1.2 sessions for all replicas: a session's turns are written to this replica's
//! store (always: nothing is lost while Redis is down) and to Redis, and read from Redis first, so
//! the next turn may reach any replica. Redis keeps a session for a week after its last turn.

use std::time::Duration;

use super::Cluster;
use crate::videos::{Library, LibraryError};

const KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The session's turns (JSON), from Redis when shared, else from this replica's store.
pub async fn load(
    cluster: &Cluster,
    library: &Library,
    tenant: &str,
    id: &str,
) -> Result<Option<String>, LibraryError> {
    // Read without refusing: a session is not a limit, so fail_closed does not apply to it.
    if let Ok(Some(shared)) = cluster.shared() {
        if let Some(turns) = shared
            .get("sessions", shared.key(&["session", tenant, id]))
            .await
        {
            return Ok(Some(turns));
        }
    }
    library.session(tenant, id).await
}

/// Saves the session's turns here and, when shared, for every replica.
pub async fn save(
    cluster: &Cluster,
    library: &Library,
    tenant: &str,
    id: &str,
    turns: &str,
) -> Result<(), LibraryError> {
    let saved = library.save_session(tenant, id, turns).await;
    if let Ok(Some(shared)) = cluster.shared() {
        shared
            .set(
                "sessions",
                shared.key(&["session", tenant, id]),
                turns.to_string(),
                KEPT,
            )
            .await;
    }
    saved
}
