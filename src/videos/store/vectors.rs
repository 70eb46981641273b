//! Segment vectors for search by meaning: read back at start into the in-memory index, written
//! when a video is embedded.

use super::*;

impl Store {
    /// Vectors of every ready video, loaded into memory for search at start.
    pub async fn all_vectors(&self) -> Result<Vec<StoredVectors>, StoreError> {
        self.vectors_of(None).await
    }

    /// Vectors of these ready videos (another replica's new ones, when the store is shared).
    pub async fn vectors_of(
        &self,
        only: Option<&[String]>,
    ) -> Result<Vec<StoredVectors>, StoreError> {
        let only = id_list(only);
        let sql = self.sql(
            "SELECT v.id AS video_id, v.tenant, s.idx, s.vector FROM segment_vectors s
             JOIN videos v ON v.id = s.video_id WHERE v.status = 'ready'
               AND ($1 IS NULL OR instr($1, ',' || v.id || ',') > 0)
             ORDER BY v.id, s.idx",
        );
        let mut out: Vec<StoredVectors> = Vec::new();
        on_pool!(self, |pool| {
            let rows = sqlx::query(&sql).bind(&only).fetch_all(pool).await?;
            for r in rows {
                let video_id: String = r.try_get("video_id")?;
                let idx: i64 = r.try_get("idx")?;
                let bytes: Vec<u8> = r.try_get("vector")?;
                if out.last().is_none_or(|v| v.video_id != video_id) {
                    out.push(StoredVectors {
                        video_id,
                        tenant: r.try_get("tenant")?,
                        vectors: Vec::new(),
                    });
                }
                if let Some(last) = out.last_mut() {
                    last.vectors.push((idx as u32, vector_of(&bytes)));
                }
            }
        });
        Ok(out)
    }

    /// Ready videos that have vectors: what an in-memory index should hold.
    pub async fn embedded(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM videos v WHERE status = 'ready'
                 AND EXISTS (SELECT 1 FROM segment_vectors x WHERE x.video_id = v.id)",
            )
            .fetch_all(pool)
            .await
        })
    }

    /// Ready videos with a timeline and no vectors (made before search, or without a model).
    pub async fn unembedded(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM videos v WHERE status = 'ready'
                 AND EXISTS (SELECT 1 FROM segments s WHERE s.video_id = v.id)
                 AND NOT EXISTS (SELECT 1 FROM segment_vectors x WHERE x.video_id = v.id)",
            )
            .fetch_all(pool)
            .await
        })
    }

    /// Saves a ready video's vectors and the step's record; false when the video is gone.
    pub async fn save_vectors(
        &self,
        id: &str,
        steps: &Steps,
        vectors: &[Vec<f32>],
    ) -> Result<bool, StoreError> {
        let steps = json(steps)?;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated =
                sqlx::query("UPDATE videos SET steps = $1 WHERE id = $2 AND status = 'ready'")
                    .bind(&steps)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
            for (i, v) in vectors.iter().enumerate() {
                insert_vector!(&mut *tx, id, i, v);
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
