//! Memories.ai sessions: a conversation's turns, by tenant and session id.

use super::*;

impl Store {
    /// A kept conversation's turns (JSON), if `tenant` has one by that id.
    pub async fn session(&self, tenant: &str, id: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT turns FROM sessions WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant)
                .fetch_optional(pool)
                .await
        })
    }

    pub async fn save_session(
        &self,
        tenant: &str,
        id: &str,
        turns: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (id, tenant, turns, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, id) DO UPDATE SET turns = excluded.turns, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(tenant)
            .bind(turns)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}
