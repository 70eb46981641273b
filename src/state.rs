//! What every request shares: the current [`Runtime`] (config, upstreams, rate limits), swapped
//! whole on reload so a stream already open keeps the runtime it started with; the count of open
//! streams; and the shutdown signal that ends streams after the grace period.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::{Config, ConfigError};
use crate::rate::RateLimits;
use crate::streams::OpenStreams;
use crate::upstream::Upstreams;
use crate::videos::Library;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::BuildError),
    #[error(transparent)]
    Videos(#[from] crate::videos::LibraryError),
    #[error("cluster.redis_url: {0}")]
    Cluster(#[from] redis::RedisError),
}

pub struct Runtime {
    pub config: Config,
    pub upstreams: Upstreams,
    pub rate_limits: RateLimits,
}

impl Runtime {
    /// `previous`: the runtime a reload replaces, whose unchanged parts are kept.
    pub fn build(config: Config, previous: Option<&Runtime>) -> Result<Self, StartError> {
        Ok(Self {
            upstreams: Upstreams::from_config(&config, previous.map(|p| &p.upstreams))?,
            rate_limits: RateLimits::new(&config.limits, previous.map(|p| &p.rate_limits)),
            config,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: ArcSwap<Runtime>,
    recent_failures: crate::answer::repeats::RecentFailures,
    /// One reload at a time: SIGHUP and a file change together must not race to build two
    /// runtimes from the same previous one.
    reloading: std::sync::Mutex<()>,
    streams: OpenStreams,
    hard_stop: CancellationToken,
    config_path: Option<PathBuf>,
    /// The video library, when `videos.enabled`. Opened at start; its settings are not reloaded.
    videos: Option<Arc<Library>>,
    /// What replicas share (`[cluster]`); started once, not reloaded.
    cluster: Cluster,
}

impl AppState {
    /// Builds the runtime and opens the video library (its store and workers) when enabled.
    pub async fn new(config: Config, config_path: Option<PathBuf>) -> Result<Self, StartError> {
        let videos = if config.videos.enabled {
            Some(Library::open(&config).await?)
        } else {
            None
        };
        let cluster = Cluster::start(&config.cluster)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cluster,
                runtime: ArcSwap::from_pointee(Runtime::build(config, None)?),
                reloading: std::sync::Mutex::new(()),
                recent_failures: Default::default(),
                streams: OpenStreams::default(),
                hard_stop: CancellationToken::new(),
                config_path,
                videos,
            }),
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.inner.runtime.load_full()
    }

    /// Upstream failures by request id, so a client's retry of one is not a new round upstream.
    pub fn recent_failures(&self) -> &crate::answer::repeats::RecentFailures {
        &self.inner.recent_failures
    }

    pub fn videos(&self) -> Option<&Arc<Library>> {
        self.inner.videos.as_ref()
    }

    /// The video library, or the 503 that says it is off.
    pub fn library(&self) -> Result<&Library, crate::error::ApiError> {
        self.videos()
            .map(|l| &**l)
            .ok_or(crate::error::ApiError::VideosDisabled)
    }

    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    pub fn streams(&self) -> &OpenStreams {
        &self.inner.streams
    }

    /// Cancelled when the shutdown grace period is over: every open stream ends with `[DONE]`.
    pub fn hard_stop(&self) -> &CancellationToken {
        &self.inner.hard_stop
    }

    /// Re-reads the config file and environment. A config that fails to load or validate is
    /// rejected whole and the running one stays. Open streams keep the runtime they began with.
    pub fn reload(&self) -> Result<(), StartError> {
        // A reload that panicked left nothing half-applied (the swap is last): go on.
        let _one_at_a_time = self
            .inner
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let config = Config::load(self.inner.config_path.as_deref())?;
        let runtime = Runtime::build(config, Some(&self.runtime()))?;
        self.inner.runtime.store(Arc::new(runtime));
        Ok(())
    }
}
