//! Keyword search over the timelines: SQLite's FTS5 or Postgres's tsvector (BM25-ranked), and
//! the literal substring search the dialects' exact-phrase queries use.

use super::*;

impl Store {
    /// Keyword hits among `tenant`'s ready videos (only `videos`, when given), best first: any of
    /// `terms` (plain words), ranked by BM25 in SQLite (FTS5, porter stemming) and by
    /// `ts_rank_cd` in Postgres (English stemming). `rank`: lower is better in both.
    pub async fn text_hits(
        &self,
        tenant: &str,
        videos: Option<&[String]>,
        terms: &[String],
        limit: u32,
    ) -> Result<Vec<TextHit>, StoreError> {
        let only = id_list(videos);
        // Each engine's index and query language; the rest of the query is the same.
        let (sql, query) = match self.pool {
            Pool::Sqlite(_) => (
                "SELECT f.video_id, f.idx, bm25(segments_fts) AS rank
                 FROM segments_fts f JOIN videos v ON v.id = f.video_id
                 WHERE segments_fts MATCH $1 AND v.tenant = $2 AND v.status = 'ready'
                   AND ($3 IS NULL OR instr($3, ',' || f.video_id || ',') > 0)
                 ORDER BY rank LIMIT $4",
                terms
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            ),
            Pool::Postgres(_) => (
                "SELECT s.video_id, s.idx, -(ts_rank_cd(s.search, q))::float8 AS rank
                 FROM segments s JOIN videos v ON v.id = s.video_id,
                      to_tsquery('english', $1) q
                 WHERE s.search @@ q AND v.tenant = $2 AND v.status = 'ready'
                   AND ($3::text IS NULL OR strpos($3, ',' || s.video_id || ',') > 0)
                 ORDER BY rank LIMIT $4",
                // Letters and digits only: nothing of a word can be tsquery syntax.
                terms
                    .iter()
                    .map(|t| {
                        t.chars()
                            .filter(|c| c.is_alphanumeric())
                            .collect::<String>()
                    })
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" | "),
            ),
        };
        if query.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(&query)
                .bind(tenant)
                .bind(&only)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| text_hit!(r))
                .collect()
        })
    }

    /// Segments whose transcript (and/or caption and on-screen text) contains `needle`, any
    /// case: a literal match, in time order.
    pub async fn substring_hits(
        &self,
        tenant: &str,
        videos: Option<&[String]>,
        needle: &str,
        transcript: bool,
        captions: bool,
        limit: u32,
    ) -> Result<Vec<TextHit>, StoreError> {
        let only = id_list(videos);
        let sql = self.sql(
            "SELECT s.video_id, s.idx, CAST(0 AS DOUBLE PRECISION) AS rank FROM segments s JOIN videos v ON v.id = s.video_id
             WHERE v.tenant = $1 AND v.status = 'ready'
               AND ($2 IS NULL OR instr($2, ',' || s.video_id || ',') > 0)
               AND (($3 AND instr(lower(s.transcript), lower($4)) > 0)
                 OR ($5 AND (instr(lower(s.caption), lower($4)) > 0
                          OR instr(lower(s.on_screen_text), lower($4)) > 0)))
             ORDER BY v.created_at DESC, s.idx LIMIT $6",
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(tenant)
                .bind(&only)
                .bind(transcript)
                .bind(needle)
                .bind(captions)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| text_hit!(r))
                .collect()
        })
    }
}
