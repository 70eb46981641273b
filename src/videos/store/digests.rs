//! What was made from a video on request (summaries, chapters, highlights, gists, analyses), by
//! what was asked; removed with the video (the foreign key cascades).

use super::*;

impl Store {
    /// The body kept for `video` under `key`, if one was made.
    pub async fn digest(&self, video: &str, key: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT body FROM digests WHERE video_id = $1 AND key = $2")
                .bind(video)
                .bind(key)
                .fetch_optional(pool)
                .await
        })
    }

    /// Keeps `body` for `video` under `key`, replacing what was there (a regenerated one).
    pub async fn save_digest(&self, video: &str, key: &str, body: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO digests (video_id, key, body, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (video_id, key) DO UPDATE SET body = excluded.body, created_at = excluded.created_at",
            )
            .bind(video)
            .bind(key)
            .bind(body)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}
