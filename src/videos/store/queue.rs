//! The job queue: claims with leases (Postgres adds `FOR UPDATE SKIP LOCKED`), renewals, and a
//! job's end, which writes its timeline, keyframes and vectors in the one transaction that ends it.

use super::*;

impl Store {
    /// Takes the oldest job nobody holds, or whose holder's lease ran out. One statement, so two
    /// workers (or two processes) never take the same job: in Postgres the candidate row is
    /// locked and skipped by every other claim until this one commits.
    pub async fn claim(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let lock = match self.pool {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => "FOR UPDATE OF j SKIP LOCKED",
        };
        // In turn across tenants: the tenant whose last claim is oldest (or who never had one)
        // first, then its oldest job.
        let sql = format!(
            "UPDATE jobs SET claimed_by = $1, lease_until = $2, attempts = attempts + 1
             WHERE video_id = (SELECT j.video_id FROM jobs j
                               JOIN videos v ON v.id = j.video_id
                               LEFT JOIN tenant_turns t ON t.tenant = v.tenant
                               WHERE j.claimed_by IS NULL OR j.lease_until < $3
                               ORDER BY COALESCE(t.last_claim, 0), j.created_at LIMIT 1 {lock})
             RETURNING video_id, attempts"
        );
        let claimed = on_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(worker)
                .bind(now + lease.as_millis() as i64)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let claimed = Claimed {
                video_id: row.try_get("video_id")?,
                attempts: row.try_get("attempts")?,
            };
            sqlx::query(
                "UPDATE videos SET status = 'processing' WHERE id = $1 AND status = 'queued'",
            )
            .bind(&claimed.video_id)
            .execute(pool)
            .await?;
            sqlx::query(
                "INSERT INTO tenant_turns (tenant, last_claim)
                 SELECT tenant, $2 FROM videos WHERE id = $1
                 ON CONFLICT (tenant) DO UPDATE SET last_claim = excluded.last_claim",
            )
            .bind(&claimed.video_id)
            .bind(now)
            .execute(pool)
            .await?;
            claimed
        });
        Ok(Some(claimed))
    }

    /// Extends the lease. False: the job is gone (the video was deleted) or another worker
    /// holds it now, and this worker must stop.
    pub async fn renew(
        &self,
        video_id: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let affected = on_pool!(self, |pool| {
            sqlx::query("UPDATE jobs SET lease_until = $1 WHERE video_id = $2 AND claimed_by = $3")
                .bind(now_ms() + lease.as_millis() as i64)
                .bind(video_id)
                .bind(worker)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// On a clean stop: this worker's jobs go back to the queue at once, not after the lease.
    pub async fn release_all(&self, worker: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1",
            )
            .bind(worker)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The job's end: keyframes, timeline and `ready` in one transaction, only while this
    /// worker still holds the job. False: it no longer does (deleted meanwhile), nothing written.
    pub async fn finish_ready(
        &self,
        id: &str,
        worker: &str,
        steps: &Steps,
        keyframes: &[Keyframe],
        segments: &[Segment],
        vectors: &[Vec<f32>],
    ) -> Result<bool, StoreError> {
        let steps = json(steps)?;
        let fts5 = matches!(self.pool, Pool::Sqlite(_));
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if !end_job!(&mut *tx, id, worker) {
                return Ok(false);
            }
            for k in keyframes {
                sqlx::query(
                    "INSERT INTO keyframes (video_id, idx, time_s, ocr_text, caption) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (video_id, idx) DO UPDATE SET time_s = excluded.time_s,
                       ocr_text = excluded.ocr_text, caption = excluded.caption",
                )
                .bind(id)
                .bind(i64::from(k.index))
                .bind(k.time_s)
                .bind(&k.ocr_text)
                .bind(&k.caption)
                .execute(&mut *tx)
                .await?;
            }
            for (i, s) in segments.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO segments (video_id, idx, start_s, end_s, transcript, on_screen_text, caption, keyframe, tokens, cues)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (video_id, idx) DO UPDATE SET start_s = excluded.start_s,
                       end_s = excluded.end_s, transcript = excluded.transcript,
                       on_screen_text = excluded.on_screen_text, caption = excluded.caption,
                       keyframe = excluded.keyframe, tokens = excluded.tokens, cues = excluded.cues",
                )
                .bind(id)
                .bind(i as i64)
                .bind(s.start_s)
                .bind(s.end_s)
                .bind(&s.transcript)
                .bind(&s.on_screen_text)
                .bind(&s.caption)
                .bind(s.keyframe.map(i64::from))
                .bind(s.tokens.map(i64::from))
                .bind(serde_json::to_string(&s.cues).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *tx)
                .await?;
                // Postgres indexes the segment's words itself (a generated tsvector column).
                if fts5 {
                    sqlx::query(
                        "INSERT INTO segments_fts (text, video_id, idx) VALUES ($1, $2, $3)",
                    )
                    .bind(s.text())
                    .bind(id)
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for (i, v) in vectors.iter().enumerate() {
                insert_vector!(&mut *tx, id, i, v);
            }
            sqlx::query("UPDATE videos SET status = 'ready', error = NULL, steps = $1, ready_at = $2 WHERE id = $3")
                .bind(&steps)
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The job's end when the video cannot be processed: `failed` with a sentence, job gone.
    pub async fn finish_failed(
        &self,
        id: &str,
        worker: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if !end_job!(&mut *tx, id, worker) {
                return Ok(false);
            }
            sqlx::query("UPDATE videos SET status = 'failed', error = $1 WHERE id = $2")
                .bind(error)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
