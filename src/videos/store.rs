//! The library's database: videos, their job queue, keyframes, timeline, vectors and sessions.
//! SQLite by default (WAL, one file under `storage.dir`); Postgres when `cluster.database_url`
//! names one, so replicas share one library. Both run the same schema (`migrations/sqlite`,
//! `migrations/postgres`) and the same SQL, written once: `$N` parameters, which both accept, and
//! `instr(haystack, needle)`, which is Postgres's `strpos` with the same arguments (`Store::sql`).
//! Only the keyword index (SQLite's FTS5, Postgres's tsvector) and the job claim (Postgres adds
//! `FOR UPDATE SKIP LOCKED`) are written twice. Nothing here assumes it is the only process: jobs
//! are claimed with leases, never by memory.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::model::{Keyframe, Segment, Source, Status, Steps, Video};

pub type StoreError = sqlx::Error;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has: the same tokens compile once
/// per driver, so a query is written once for both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// What a tenant holds in the library (its quotas are checked against this).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub videos: u64,
    pub bytes: u64,
    pub queued: u64,
}

/// A video as ingest creates it.
pub struct NewVideo<'a> {
    pub id: &'a str,
    pub owner: &'a Owner,
    pub name: &'a str,
    pub source_kind: &'static str,
    pub source_url: Option<&'a str>,
    pub bytes: Option<u64>,
    pub subtitles_file: bool,
}

/// Who added a video, and what they asked for beyond the video itself.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    /// The key's tenant; `""` is the one shared tenant.
    pub tenant: String,
    /// Where to POST when processing ends (already checked by `url_guard` when it was given).
    pub callback: Option<String>,
    /// A dialect's own fields, given back as they came.
    pub labels: serde_json::Map<String, serde_json::Value>,
}

/// What the probe learned, saved as soon as it is known.
pub struct Metadata {
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub has_audio: bool,
}

/// A job a worker holds: the video, and how many times it has been started.
pub struct Claimed {
    pub video_id: String,
    pub attempts: i64,
}

/// Listing filter and page: one tenant's videos, by status, by a piece of the name, added in a
/// time range (unix ms).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub tenant: String,
    /// Any of these; empty: every status.
    pub statuses: Vec<Status>,
    pub name_contains: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// The filter every listing shares; `$1`..`$5` are bound by `bind_filter!`.
const FILTER: &str = "tenant = $1 AND ($2 IS NULL OR instr($2, ',' || status || ',') > 0)
     AND ($3 IS NULL OR instr(lower(name), lower($3)) > 0)
     AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at <= $5)";

macro_rules! bind_filter {
    ($query:expr, $page:expr) => {
        $query
            .bind(&$page.tenant)
            .bind((!$page.statuses.is_empty()).then(|| {
                let names: Vec<&str> = $page.statuses.iter().map(|s| s.as_str()).collect();
                format!(",{},", names.join(","))
            }))
            .bind($page.name_contains.as_deref())
            .bind($page.since_ms)
            .bind($page.until_ms)
    };
}

/// A comma-framed list (`,a,b,`) that `instr` finds an id in: one parameter for any number of
/// ids, in both engines.
fn id_list(ids: Option<&[String]>) -> Option<String> {
    ids.map(|ids| format!(",{},", ids.join(",")))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A `videos` row, from either engine (the same tokens, compiled per row type).
macro_rules! video {
    ($r:expr) => {{
        let r = $r;
        let decode = || -> Result<Video, StoreError> {
            let status: String = r.try_get("status")?;
            let steps: String = r.try_get("steps")?;
            let bytes: Option<i64> = r.try_get("bytes")?;
            let created: i64 = r.try_get("created_at")?;
            let ready: Option<i64> = r.try_get("ready_at")?;
            let labels: String = r.try_get("labels")?;
            Ok(Video {
                tenant: r.try_get("tenant")?,
                callback: r.try_get("callback")?,
                labels: serde_json::from_str(&labels)
                    .map_err(|e| StoreError::Decode(Box::new(e)))?,
                created_ms: created,
                id: r.try_get("id")?,
                object: "video",
                name: r.try_get("name")?,
                status: Status::parse(&status).ok_or_else(|| {
                    StoreError::Decode(format!("unknown status `{status}`").into())
                })?,
                error: r.try_get("error")?,
                source: Source {
                    kind: if r.try_get::<String, _>("source_kind")? == "url" {
                        "url"
                    } else {
                        "upload"
                    },
                    url: r.try_get("source_url")?,
                    bytes: bytes.map(|b| b as u64),
                    subtitles_file: r.try_get("has_subtitles_file")?,
                },
                duration_s: r.try_get("duration_s")?,
                width: small(r.try_get("width")?),
                height: small(r.try_get("height")?),
                has_audio: r.try_get("has_audio")?,
                created_at: created / 1000,
                ready_at: ready.map(|t| t / 1000),
                steps: serde_json::from_str(&steps).map_err(|e| StoreError::Decode(Box::new(e)))?,
            })
        };
        decode()
    }};
}

macro_rules! insert_vector {
    ($executor:expr, $id:expr, $idx:expr, $vector:expr) => {{
        let bytes: Vec<u8> = $vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        sqlx::query(
            "INSERT INTO segment_vectors (video_id, idx, vector) VALUES ($1, $2, $3)
             ON CONFLICT (video_id, idx) DO UPDATE SET vector = excluded.vector",
        )
        .bind($id)
        .bind($idx as i64)
        .bind(bytes)
        .execute($executor)
        .await?;
    }};
}

/// Deletes `$worker`'s job on video `$id`: false when it no longer holds one (the video was
/// deleted, or the job taken over), and then nothing else may be written for it.
macro_rules! end_job {
    ($executor:expr, $id:expr, $worker:expr) => {
        sqlx::query("DELETE FROM jobs WHERE video_id = $1 AND claimed_by = $2")
            .bind($id)
            .bind($worker)
            .execute($executor)
            .await?
            .rows_affected()
            > 0
    };
}

macro_rules! text_hit {
    ($r:expr) => {{
        let r = $r;
        Ok(TextHit {
            video_id: r.try_get("video_id")?,
            idx: r.try_get::<i64, _>("idx")? as u32,
            rank: r.try_get("rank")?,
        })
    }};
}

impl Store {
    /// SQLite in `file`, created and migrated as needed.
    pub async fn open(file: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL loses at most the last commits on power loss, never consistency.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Postgres at `url` (`postgres://user:password@host:port/db`), migrated as needed; every
    /// replica may run this at once (sqlx takes an advisory lock for the migration).
    pub async fn open_postgres(url: &str, connect_timeout: Duration) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(connect_timeout)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool: Pool::Postgres(pool),
        })
    }

    /// True when the store is shared with other replicas (Postgres): each process then finds
    /// what others added (vectors) by asking, and leaves alone files it did not make.
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// `text` for this engine: Postgres spells SQLite's `instr(haystack, needle)` `strpos`.
    fn sql(&self, text: &'static str) -> Cow<'static, str> {
        match self.pool {
            Pool::Sqlite(_) => Cow::Borrowed(text),
            Pool::Postgres(_) => Cow::Owned(text.replace("instr(", "strpos(")),
        }
    }

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

    pub async fn segments(&self, id: &str) -> Result<Vec<Segment>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT start_s, end_s, transcript, on_screen_text, caption, keyframe, tokens, cues
                 FROM segments WHERE video_id = $1 ORDER BY idx",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Segment {
                        start_s: r.try_get("start_s")?,
                        end_s: r.try_get("end_s")?,
                        transcript: r.try_get("transcript")?,
                        on_screen_text: r.try_get("on_screen_text")?,
                        caption: r.try_get("caption")?,
                        keyframe: small(r.try_get("keyframe")?),
                        tokens: small(r.try_get("tokens")?),
                        // Written by this code only; a row it cannot read has no cues of its own.
                        cues: serde_json::from_str(r.try_get::<&str, _>("cues")?)
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

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

    pub async fn keyframes(&self, id: &str) -> Result<Vec<Keyframe>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT idx, time_s, ocr_text, caption FROM keyframes WHERE video_id = $1 ORDER BY idx",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Keyframe {
                        index: small(Some(r.try_get::<i64, _>("idx")?)).unwrap_or(0),
                        time_s: r.try_get("time_s")?,
                        ocr_text: r.try_get("ocr_text")?,
                        caption: r.try_get("caption")?,
                    })
                })
                .collect()
        })
    }
}

fn json(steps: &Steps) -> Result<String, StoreError> {
    serde_json::to_string(steps).map_err(|e| StoreError::Encode(Box::new(e)))
}

/// Integers are stored as 64-bit in both engines; the model's are 32-bit and never negative.
fn small(n: Option<i64>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

fn vector_of(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One keyword hit: the segment, and its rank (lower is better).
pub struct TextHit {
    pub video_id: String,
    pub idx: u32,
    pub rank: f64,
}

/// Every stored vector of one video, by segment.
pub struct StoredVectors {
    pub video_id: String,
    pub tenant: String,
    pub vectors: Vec<(u32, Vec<f32>)>,
}
