//! The `videos` table: a video's row from ingest to deletion, listings and counts, what a
//! tenant holds, and what processing learns along the way (metadata, size, steps).

use super::*;

impl Store {
    /// The video and its job, in one transaction: a video is never without a way to finish.
    pub async fn insert(&self, v: &NewVideo<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        let labels = serde_json::Value::Object(v.owner.labels.clone()).to_string();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO videos (id, name, status, source_kind, source_url, bytes, has_subtitles_file, created_at, tenant, callback, labels)
                 VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(v.id)
            .bind(v.name)
            .bind(v.source_kind)
            .bind(v.source_url)
            .bind(v.bytes.map(|b| b as i64))
            .bind(v.subtitles_file)
            .bind(now)
            .bind(&v.owner.tenant)
            .bind(v.owner.callback.as_deref())
            .bind(&labels)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO jobs (video_id, created_at) VALUES ($1, $2)")
                .bind(v.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    /// The newest video `tenant` added from `url` that did not fail, if any.
    pub async fn by_source_url(
        &self,
        tenant: &str,
        url: &str,
    ) -> Result<Option<Video>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT * FROM videos WHERE tenant = $1 AND source_url = $2 AND status <> 'failed'
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(tenant)
            .bind(url)
            .fetch_optional(pool)
            .await?;
            row.map(|r| video!(r)).transpose()
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<Video>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT * FROM videos WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| video!(r)).transpose()
        })
    }

    /// Newest first; true when there are more past this page.
    pub async fn list(&self, page: &Page) -> Result<(Vec<Video>, bool), StoreError> {
        let sql = format!(
            "SELECT * FROM videos WHERE {} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7",
            self.sql(FILTER)
        );
        on_pool!(self, |pool| {
            let rows = bind_filter!(sqlx::query(&sql), page)
                .bind(i64::from(page.limit) + 1)
                .bind(i64::from(page.offset))
                .fetch_all(pool)
                .await?;
            let more = rows.len() > page.limit as usize;
            let videos = rows
                .iter()
                .take(page.limit as usize)
                .map(|r| video!(r))
                .collect::<Result<_, _>>()?;
            Ok((videos, more))
        })
    }

    /// How many videos the page's filter matches, on every page.
    pub async fn count(&self, page: &Page) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM videos WHERE {}", self.sql(FILTER));
        let n: i64 = on_pool!(self, |pool| {
            bind_filter!(sqlx::query(&sql), page)
                .fetch_one(pool)
                .await?
                .try_get(0)?
        });
        Ok(n.max(0) as u64)
    }

    /// What `tenant` holds: videos, bytes of video, and videos queued or processing.
    pub async fn usage(&self, tenant: &str) -> Result<Usage, StoreError> {
        // Cast: Postgres sums a BIGINT column as NUMERIC.
        let sql = "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT),
                          CAST(COALESCE(SUM(CASE WHEN status IN ('queued', 'processing') THEN 1 ELSE 0 END), 0) AS BIGINT)
                   FROM videos WHERE tenant = $1";
        let (videos, bytes, queued): (i64, i64, i64) = on_pool!(self, |pool| {
            let row = sqlx::query(sql).bind(tenant).fetch_one(pool).await?;
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)
        });
        let n = |v: i64| v.max(0) as u64;
        Ok(Usage {
            videos: n(videos),
            bytes: n(bytes),
            queued: n(queued),
        })
    }

    /// Removes the video and (by cascade) its job, keyframes and timeline. False: there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let affected = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM videos WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    pub async fn ids(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM videos")
                .fetch_all(pool)
                .await
        })
    }

    pub async fn save_metadata(&self, id: &str, m: &Metadata) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE videos SET duration_s = $1, width = $2, height = $3, has_audio = $4 WHERE id = $5")
                .bind(m.duration_s)
                .bind(i64::from(m.width))
                .bind(i64::from(m.height))
                .bind(m.has_audio)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn save_bytes(&self, id: &str, bytes: u64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE videos SET bytes = $1 WHERE id = $2")
                .bind(bytes as i64)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn save_steps(&self, id: &str, steps: &Steps) -> Result<(), StoreError> {
        let steps = json(steps)?;
        on_pool!(self, |pool| {
            sqlx::query("UPDATE videos SET steps = $1 WHERE id = $2")
                .bind(&steps)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
