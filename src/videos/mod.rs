//! The video library: videos uploaded or linked, processed offline into a timeline, kept in a
//! store. Routes (`routes::videos`, and the video dialects) call [`Library`]; the rest is here:
//!
//! - `store` — the database (sqlx: SQLite, or Postgres for replicas), one module per table
//!   family: videos, the job queue, timelines, vectors, keyword search, sessions.
//! - `jobs` — the bounded worker pool that claims queued jobs and runs `pipeline` on each.
//! - `pipeline` — one video's processing, step by step: `download` (URL ingest, through
//!   `url_guard`), `probe`, the transcript (`subtitles`, else `speech`), `keyframes` (its cuts
//!   from `scan`, which decodes only the stretches `scenes` must score), `ocr`,
//!   then `timeline`. Every program runs through `programs` (bounded, killable).
//! - `model` — what is stored and served.
//!
//! On disk, under `storage.dir`: `chatapi.db`, `videos/<id>/` (the source and what processing
//! made), `incoming/` (uploads still arriving). A video's row is written only once its files
//! are in place, and removed before its files, so a crash at any point leaves either a complete
//! video or files no row points to, which `open` sweeps away.

mod callback;
mod captions;
mod download;
pub mod embed;
pub mod excerpt;
mod jobs;
mod keyframes;
pub mod model;
mod ocr;
mod pipeline;
mod probe;
mod programs;
pub mod quota;
mod scan;
mod scenes;
pub mod search;
mod speech;
pub mod store;
mod subtitles;
pub mod timeline;
pub mod url_guard;
pub mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, VideosConfig};
use model::{Keyframe, Segment, Video};
use store::{NewVideo, Store};
pub use store::{Owner, Page};

/// Why a job stopped short.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The video cannot be processed; the sentence is the video's `error`.
    #[error("{0}")]
    Failed(String),
    /// A program exited with an error (each step says what that means for the video).
    #[error("{what} failed: {detail}")]
    Program { what: &'static str, detail: String },
    /// A program is not installed.
    #[error("{what} could not be started ({detail}); it must be installed on the server")]
    Missing { what: &'static str, detail: String },
    /// The video was deleted, or the server is stopping.
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Internal(String),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("video store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("video files: {0}")]
    Io(#[from] std::io::Error),
    /// No video by this id that the caller may see (another tenant's is as missing as one that
    /// never was).
    #[error("no video {0}")]
    NotFound(String),
    #[error("video {id} is {status}, not ready")]
    NotReady { id: String, status: &'static str },
}

pub struct Library {
    store: Store,
    dir: PathBuf,
    config: VideosConfig,
    vision: Option<captions::Vision>,
    /// This process's name in the job queue's claims.
    worker_id: String,
    wake: Notify,
    /// The cancel switch of each job this process runs, by video id.
    running: Mutex<HashMap<String, CancellationToken>>,
    stop: CancellationToken,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Loaded on first use (a server that never searches or processes never holds it); `None`
    /// when `videos.embedding_model` is not set or did not load.
    embedder: tokio::sync::OnceCell<Option<Arc<embed::Embedder>>>,
    /// Every ready video's segment vectors, for search by meaning.
    vectors: vectors::VectorIndex,
    /// Places for uploads arriving at once (`videos.max_concurrent_uploads`).
    uploads: Arc<tokio::sync::Semaphore>,
}

/// An upload on its way in: a folder of its own under `incoming/`, removed unless `add_upload`
/// takes it, so an upload that fails or is cut off leaves nothing behind.
pub struct Staging {
    dir: PathBuf,
    taken: bool,
}

impl Staging {
    pub fn source(&self) -> PathBuf {
        self.dir.join("source")
    }

    pub fn subtitles(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("subtitles.{ext}"))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.taken {
            // Unlinking is quick even for a large file; this runs once per failed upload.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What an upload brought with it.
pub struct Upload {
    pub name: String,
    pub bytes: u64,
    /// `srt` or `vtt`, when a subtitles file came with the video.
    pub subtitles: Option<&'static str>,
}

impl Library {
    /// Opens the store (creating it), clears what a crash may have left, and starts the workers.
    /// `[videos]`, `[storage]` and the vision upstreams are read here, at start only.
    pub async fn open(full: &Config) -> Result<Arc<Self>, LibraryError> {
        let config = &full.videos;
        programs::set_low_priority(config.low_priority);
        let dir = full.storage.dir.clone();
        tokio::fs::create_dir_all(dir.join("videos")).await?;
        let store = if full.cluster.database_url.is_empty() {
            Store::open(&dir.join("chatapi.db")).await?
        } else {
            Store::open_postgres(full.cluster.database_url.expose(), CONNECT_TIMEOUT).await?
        };
        let incoming = dir.join("incoming");
        remove_older(&incoming, leftovers_after(&store), |_| false).await?;
        tokio::fs::create_dir_all(&incoming).await?;
        let library = Arc::new(Self {
            store,
            dir,
            config: config.clone(),
            vision: captions::Vision::from_config(full),
            worker_id: uuid::Uuid::new_v4().simple().to_string(),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            workers: Mutex::new(Vec::new()),
            embedder: tokio::sync::OnceCell::new(),
            vectors: vectors::VectorIndex::default(),
            uploads: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_uploads)),
        });
        library.sweep_orphans().await?;
        for stored in library.store.all_vectors().await? {
            library
                .vectors
                .add(&stored.video_id, &stored.tenant, &stored.vectors);
        }
        tokio::spawn(embed_backlog(library.clone()));
        if library.store.is_shared() {
            tokio::spawn(follow_vectors(Arc::downgrade(&library)));
        }
        let workers = (0..config.workers)
            .map(|_| tokio::spawn(jobs::work(library.clone())))
            .collect();
        *library
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = workers;
        Ok(library)
    }

    /// Stops the workers (their programs are killed) and hands their jobs back to the queue, so
    /// the next start resumes them at once.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let workers = std::mem::take(
            &mut *self
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for worker in workers {
            let _ = worker.await;
        }
    }

    pub fn config(&self) -> &VideosConfig {
        &self.config
    }

    pub async fn staging(&self) -> Result<Staging, LibraryError> {
        let dir = self
            .dir
            .join("incoming")
            .join(uuid::Uuid::new_v4().simple().to_string());
        tokio::fs::create_dir_all(&dir).await?;
        Ok(Staging { dir, taken: false })
    }

    /// Files an arrived upload under a new video and queues its processing.
    pub async fn add_upload(
        &self,
        mut staging: Staging,
        upload: Upload,
        owner: &Owner,
    ) -> Result<Video, LibraryError> {
        let id = new_id();
        let dir = self.video_dir(&id);
        tokio::fs::rename(&staging.dir, &dir).await?;
        staging.taken = true;
        let new = NewVideo {
            id: &id,
            owner,
            name: &upload.name,
            source_kind: "upload",
            source_url: None,
            bytes: Some(upload.bytes),
            subtitles_file: upload.subtitles.is_some(),
        };
        self.insert(&new, &dir).await
    }

    /// Queues a video to be fetched from `url` (already checked by `url_guard`) and processed.
    pub async fn add_url(
        &self,
        url: &str,
        name: &str,
        owner: &Owner,
    ) -> Result<Video, LibraryError> {
        let id = new_id();
        let dir = self.video_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        let new = NewVideo {
            id: &id,
            owner,
            name,
            source_kind: "url",
            source_url: Some(url),
            bytes: None,
            subtitles_file: false,
        };
        self.insert(&new, &dir).await
    }

    async fn insert(&self, new: &NewVideo<'_>, dir: &Path) -> Result<Video, LibraryError> {
        if let Err(e) = self.store.insert(new).await {
            let _ = tokio::fs::remove_dir_all(dir).await;
            return Err(e.into());
        }
        // Read before a worker is woken: the caller is told the video as it was queued, not
        // whatever a worker has made of it meanwhile.
        let video = self
            .store
            .get(new.id)
            .await?
            .ok_or(LibraryError::Store(sqlx::Error::RowNotFound))?;
        self.wake.notify_one();
        Ok(video)
    }

    /// The video, if `tenant` may see it.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Option<Video>, LibraryError> {
        Ok(self.store.get(id).await?.filter(|v| v.tenant == tenant))
    }

    /// The newest video `tenant` added from `url` that did not fail: a link asked about twice
    /// is added once.
    pub async fn linked(&self, tenant: &str, url: &str) -> Result<Option<Video>, LibraryError> {
        Ok(self.store.by_source_url(tenant, url).await?)
    }

    /// The video once it leaves `queued`/`processing`, or as it stands after `within`. Read from
    /// the store, so a job on another replica is seen too.
    pub async fn settled(
        &self,
        tenant: &str,
        id: &str,
        within: std::time::Duration,
    ) -> Result<Video, LibraryError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let video = self.owned(tenant, id).await?;
            let busy = matches!(
                video.status,
                model::Status::Queued | model::Status::Processing
            );
            if !busy || tokio::time::Instant::now() >= deadline {
                return Ok(video);
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + SETTLE_POLL)).await;
        }
    }

    /// What was made from `video` and kept under `key` (`answer::digest`), if anything.
    pub async fn digest(&self, video: &str, key: &str) -> Result<Option<String>, LibraryError> {
        Ok(self.store.digest(video, key).await?)
    }

    pub async fn save_digest(
        &self,
        video: &str,
        key: &str,
        body: &str,
    ) -> Result<(), LibraryError> {
        Ok(self.store.save_digest(video, key, body).await?)
    }

    /// The video, whoever's it is: for a signed media link, whose signature names its tenant.
    pub async fn find(&self, id: &str) -> Result<Option<Video>, LibraryError> {
        Ok(self.store.get(id).await?)
    }

    /// The video as it was uploaded or downloaded.
    pub fn source_file(&self, id: &str) -> PathBuf {
        self.video_dir(id).join("source")
    }

    /// The video `tenant` names by `id`, or `NotFound`.
    pub async fn owned(&self, tenant: &str, id: &str) -> Result<Video, LibraryError> {
        self.get(tenant, id)
            .await?
            .ok_or_else(|| LibraryError::NotFound(id.to_string()))
    }

    /// The video `tenant` names by `id`, processed (its timeline there to read): else
    /// `NotFound` or `NotReady`.
    pub async fn ready(&self, tenant: &str, id: &str) -> Result<Video, LibraryError> {
        let video = self.owned(tenant, id).await?;
        if video.status != model::Status::Ready {
            return Err(LibraryError::NotReady {
                status: video.status.as_str(),
                id: video.id,
            });
        }
        Ok(video)
    }

    pub async fn list(&self, page: &Page) -> Result<(Vec<Video>, bool), LibraryError> {
        Ok(self.store.list(page).await?)
    }

    /// How many videos `page`'s filter matches, on all pages.
    pub async fn count(&self, page: &Page) -> Result<u64, LibraryError> {
        Ok(self.store.count(page).await?)
    }

    /// A conversation the server keeps for `tenant` (JSON turns), if there is one by that id.
    pub async fn session(&self, tenant: &str, id: &str) -> Result<Option<String>, LibraryError> {
        Ok(self.store.session(tenant, id).await?)
    }

    pub async fn save_session(
        &self,
        tenant: &str,
        id: &str,
        turns: &str,
    ) -> Result<(), LibraryError> {
        Ok(self.store.save_session(tenant, id, turns).await?)
    }

    pub async fn timeline(&self, id: &str) -> Result<Vec<Segment>, LibraryError> {
        Ok(self.store.segments(id).await?)
    }

    pub async fn keyframes(&self, id: &str) -> Result<Vec<Keyframe>, LibraryError> {
        Ok(self.store.keyframes(id).await?)
    }

    /// The JPEG of keyframe `index` (from 0) of a video.
    pub fn keyframe_file(&self, id: &str, index: u32) -> PathBuf {
        keyframes::file(&self.video_dir(id), index)
    }

    /// Removes a video, whatever its state: its job stops (its programs are killed), its rows
    /// go, then its files. False: there was no such video that `tenant` may see.
    /// Deletes the video `tenant` names by `id` (its job stopped, its files gone), or
    /// `NotFound`.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), LibraryError> {
        let gone = || LibraryError::NotFound(id.to_string());
        if self.get(tenant, id).await?.is_none() || !self.store.delete(id).await? {
            return Err(gone());
        }
        self.vectors.remove(id);
        if let Some(job) = self.running().get(id) {
            job.cancel();
        }
        remove_dir(&self.video_dir(id)).await?;
        Ok(())
    }

    /// The sentence-embedding model, loaded (off the runtime) on first use.
    pub async fn embedder(&self) -> Option<Arc<embed::Embedder>> {
        self.embedder
            .get_or_init(|| async {
                let dir = self.config.embedding_model.clone();
                if dir.as_os_str().is_empty() {
                    return None;
                }
                let shown = dir.display().to_string();
                match tokio::task::spawn_blocking(move || embed::Embedder::load(&dir)).await {
                    Ok(Ok(model)) => {
                        tracing::info!(model = %shown, "embedding model loaded");
                        Some(Arc::new(model))
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "search by meaning is off: the embedding model did not load");
                        None
                    }
                    Err(error) => {
                        tracing::error!(%error, "loading the embedding model panicked");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// The jobs this process runs now, by video id (a panicked holder left nothing half-done:
    /// each change is one insert or remove).
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn video_dir(&self, id: &str) -> PathBuf {
        self.dir.join("videos").join(id)
    }

    /// Folders under `videos/` that no row names: a crash between writing files and the row,
    /// or between removing the row and the files.
    async fn sweep_orphans(&self) -> Result<(), LibraryError> {
        let known: std::collections::HashSet<String> =
            self.store.ids().await?.into_iter().collect();
        remove_older(
            &self.dir.join("videos"),
            leftovers_after(&self.store),
            |name| known.contains(name),
        )
        .await
    }
}

/// How long a replica waits for the shared store before it gives up starting.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long files in `storage.dir` (half-arrived uploads, folders no row names) must have been
/// left alone before a starting replica removes them: alone, it made them all, so at once; with
/// a shared store, a day, since another replica files an upload before its row is written and
/// younger ones may be its work in progress.
fn leftovers_after(store: &Store) -> std::time::Duration {
    if store.is_shared() {
        std::time::Duration::from_secs(24 * 3600)
    } else {
        std::time::Duration::ZERO
    }
}

/// How often a replica picks up the vectors other replicas made (search by meaning; keyword
/// search and chats read the shared store directly).
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Time since `path` last changed; zero when it cannot be read (so it is left alone).
async fn age(path: &std::path::Path) -> std::time::Duration {
    tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

/// Removes the entries of `dir` (none, if it is missing) at least `older_than` old, except
/// those whose name `keep` accepts.
async fn remove_older(
    dir: &std::path::Path,
    older_than: std::time::Duration,
    keep: impl Fn(&str) -> bool,
) -> Result<(), LibraryError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        if keep(&entry.file_name().to_string_lossy()) || age(&entry.path()).await < older_than {
            continue;
        }
        tracing::info!(path = %entry.path().display(), "removing a leftover the library does not know");
        if entry.file_type().await?.is_dir() {
            remove_dir(&entry.path()).await?;
        } else {
            tokio::fs::remove_file(entry.path()).await?;
        }
    }
    Ok(())
}

/// With a shared store: keeps this replica's vector index in step with what every replica
/// made ready or deleted, until the library is dropped.
async fn follow_vectors(library: std::sync::Weak<Library>) {
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let Some(library) = library.upgrade() else {
            return;
        };
        if library.stop.is_cancelled() {
            return;
        }
        let want: std::collections::HashSet<String> = match library.store.embedded().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(error) => {
                tracing::warn!(%error, "could not read which videos have vectors");
                continue;
            }
        };
        let have = library.vectors.videos();
        for gone in have.iter().filter(|v| !want.contains(&***v)) {
            library.vectors.remove(gone);
        }
        let new: Vec<String> = want
            .into_iter()
            .filter(|v| !have.contains(v.as_str()))
            .collect();
        if new.is_empty() {
            continue;
        }
        match library.store.vectors_of(Some(&new)).await {
            Ok(found) => {
                for v in found {
                    library.vectors.add(&v.video_id, &v.tenant, &v.vectors);
                }
            }
            Err(error) => tracing::warn!(%error, "could not load another replica's vectors"),
        }
    }
}

/// Videos made ready before search by meaning (or while its model was missing) get their
/// vectors, one at a time, in the background; what is not done resumes at the next start.
async fn embed_backlog(library: Arc<Library>) {
    let ids = match library.store.unembedded().await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "embedding backlog: could not list videos");
            return;
        }
    };
    if ids.is_empty() || library.embedder().await.is_none() {
        return;
    }
    tracing::info!(
        videos = ids.len(),
        "embedding the timelines of videos that have no vectors"
    );
    for id in ids {
        if library.stop.is_cancelled() {
            return;
        }
        let (Ok(Some(video)), Ok(segments)) = (
            library.store.get(&id).await,
            library.store.segments(&id).await,
        ) else {
            continue;
        };
        let Ok((vectors, step)) =
            pipeline::embed_segments(&library, &segments, &library.stop).await
        else {
            continue;
        };
        let mut steps = video.steps.clone();
        steps.embeddings = Some(step);
        match library.store.save_vectors(&id, &steps, &vectors).await {
            Ok(true) => {
                let indexed: Vec<(u32, Vec<f32>)> = vectors
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i as u32, v))
                    .collect();
                library.vectors.add(&id, &video.tenant, &indexed);
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(video = %id, %error, "embedding backlog: vectors not saved")
            }
        }
    }
}

async fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// How often `settled` reads a video's status: a chat waiting on a link sees it ready within
/// this, at one indexed read each time.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

fn new_id() -> String {
    format!("vid_{}", uuid::Uuid::new_v4().simple())
}
