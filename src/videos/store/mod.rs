//! The library's database: videos, their job queue, keyframes, timeline, vectors and sessions.
//! SQLite by default (WAL, one file under `storage.dir`); Postgres when `cluster.database_url`
//! names one, so replicas share one library. Both run the same schema (`migrations/sqlite`,
//! `migrations/postgres`) and the same SQL, written once: `$N` parameters, which both accept, and
//! `instr(haystack, needle)`, which is Postgres's `strpos` with the same arguments (`Store::sql`).
//! Only the keyword index (SQLite's FTS5, Postgres's tsvector) and the job claim (Postgres adds
//! `FOR UPDATE SKIP LOCKED`) are written twice. Nothing here assumes it is the only process: jobs
//! are claimed with leases, never by memory.
//!
//! Here: the store itself (opening, migrating, the engine-neutral SQL) and the row types and
//! helpers every table family shares. The queries, one module per table family: `videos`,
//! `queue` (jobs, and the transaction that ends one), `timeline` (segments, keyframes),
//! `vectors`, `text_search`, `sessions`.

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

mod digests;
mod queue;
mod sessions;
mod text_search;
mod timeline;
mod vectors;
mod videos;
