//! The embedded model (`kind = "local"`): a GGUF run in-process by llama.cpp (`llama-cpp-2`), so
//! chatapi answers with no key and no network. Generation happens on one dedicated thread
//! (`engine`), never on the async runtime; it decodes up to `parallel` conversations together in
//! one batch, and each answer's text streams back over a channel as tokens are produced. A caller
//! that hangs up closes its channel, and the engine drops that sequence before its next token.

mod engine;
mod prompt;
pub mod text;

use std::path::{Path, PathBuf};

pub use engine::render_prompt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{ChatRequest, Event, EventStream, UpstreamError};
use crate::config::LocalConfig;

/// The command that puts the default model there.
pub const FETCH_COMMAND: &str = "scripts/fetch-model.sh";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("model file {path} is missing: run `{FETCH_COMMAND}` to fetch the default model, or set model_path")]
    Missing { path: PathBuf },
    #[error(
        "model file {path} is not a GGUF model ({detail}): run `{FETCH_COMMAND}` to fetch it again"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("local model {path}: {detail}")]
    Engine { path: PathBuf, detail: String },
    #[error("this CPU lacks {missing}, which the embedded model (llama.cpp) was built for: serve with a remote upstream, or build chatapi on this host with RUSTFLAGS=\"-C target-cpu=native\"")]
    Cpu { missing: String },
}

/// The instructions `.cargo/config.toml` builds llama.cpp with. Checked before the engine starts,
/// so a host without them gets a sentence instead of SIGILL.
fn check_cpu() -> Result<(), LocalError> {
    #[cfg(target_arch = "x86_64")]
    {
        let missing: Vec<&str> = [
            ("AVX", std::arch::is_x86_feature_detected!("avx")),
            ("AVX2", std::arch::is_x86_feature_detected!("avx2")),
            ("FMA", std::arch::is_x86_feature_detected!("fma")),
            ("F16C", std::arch::is_x86_feature_detected!("f16c")),
            ("BMI2", std::arch::is_x86_feature_detected!("bmi2")),
        ]
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            return Err(LocalError::Cpu {
                missing: missing.join(", "),
            });
        }
    }
    Ok(())
}

/// Settings of one local upstream, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSettings {
    pub model_path: PathBuf,
    pub threads: usize,
    /// Threads for a batch of more than one token: a prompt, or several callers' next tokens.
    pub batch_threads: usize,
    /// Tokens of context per conversation.
    pub context_tokens: u32,
    /// Conversations decoded together.
    pub parallel: u32,
    /// Requests waiting for a free sequence before new ones are turned away with 503.
    pub queue: usize,
    /// Start each prompt from what a sequence's cache still holds of it (always, when served;
    /// off to time a prompt cold).
    pub reuse_cache: bool,
    /// Sampling where the persona leaves a knob unset (`[local]`'s, the model card's).
    pub sampling: text::Defaults,
    /// A llama.cpp template name used instead of the model's own (`local.chat_template`).
    pub chat_template: Option<String>,
}

impl LocalSettings {
    pub fn from_config(c: &LocalConfig) -> Self {
        Self {
            model_path: c.model_path.clone(),
            threads: c.threads(),
            batch_threads: c.batch_threads(),
            context_tokens: c.context_tokens,
            parallel: c.parallel.max(1),
            queue: c.queue,
            reuse_cache: true,
            sampling: text::Defaults {
                temperature: c.temperature,
                top_p: c.top_p,
                repeat_penalty: c.repeat_penalty,
            },
            chat_template: Some(c.chat_template.clone()).filter(|t| !t.is_empty()),
        }
    }
}

/// How much prompt the engine was given, and how much of it it found already in a sequence's
/// cache (the earlier turns of the same call) and so did not decode again.
#[derive(Debug, Default)]
pub struct LocalStats {
    prompt_tokens: AtomicU64,
    reused_tokens: AtomicU64,
}

impl LocalStats {
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt_tokens.load(Ordering::Relaxed)
    }

    pub fn reused_tokens(&self) -> u64 {
        self.reused_tokens.load(Ordering::Relaxed)
    }

    fn record(&self, upstream: &str, prompt: usize, reused: usize) {
        self.prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        self.reused_tokens
            .fetch_add(reused as u64, Ordering::Relaxed);
        crate::metrics::local_prompt(upstream, prompt, reused);
    }
}

/// One answer to produce: the conversation, how to sample, and where the text goes.
pub struct Job {
    pub request: ChatRequest,
    pub out: mpsc::UnboundedSender<Result<Event, UpstreamError>>,
}

/// One loaded model and its engine thread. Dropping it stops the engine and joins the thread
/// (at most one decode step; see `EngineHold` for answers that outlive a reload):
/// llama.cpp's static destructors run at process exit, and an engine still decoding then
/// crashes the process, so no engine may outlive its `Local`. Each answer's stream holds its
/// `Local`, so nobody is waiting on the engine when it stops.
pub struct Local {
    name: Arc<str>,
    settings: LocalSettings,
    /// `None` only inside `drop`, which closes the queue before joining.
    jobs: Option<SyncSender<Job>>,
    stop: Arc<AtomicBool>,
    engine: Option<JoinHandle<()>>,
    stats: Arc<LocalStats>,
}

/// The first bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

fn check_file(path: &Path) -> Result<(), LocalError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|_| LocalError::Missing {
        path: path.to_path_buf(),
    })?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| LocalError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if &magic != GGUF_MAGIC {
        return Err(LocalError::Corrupt {
            path: path.to_path_buf(),
            detail: "no GGUF header".into(),
        });
    }
    Ok(())
}

impl Local {
    /// Loads the model on its own thread and waits until it is ready, so a bad file stops
    /// start-up (or a reload) with a clear error instead of failing the first caller.
    pub fn load(name: &str, settings: LocalSettings) -> Result<Self, LocalError> {
        check_cpu()?;
        check_file(&settings.model_path)?;
        let name: Arc<str> = Arc::from(name);
        let (jobs, queue) = sync_channel(settings.queue);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LocalStats::default());
        let engine = engine::spawn(
            name.clone(),
            settings.clone(),
            queue,
            stop.clone(),
            stats.clone(),
        )?;
        Ok(Self {
            name,
            settings,
            jobs: Some(jobs),
            stop,
            engine: Some(engine),
            stats,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn stats(&self) -> &LocalStats {
        &self.stats
    }

    /// Whether this engine is what `name` with `settings` would load: a reload then keeps it
    /// (and the calls it has cached) instead of loading the model a second time.
    pub fn serves(&self, name: &str, settings: &LocalSettings) -> bool {
        &*self.name == name && &self.settings == settings
    }

    /// Queues `request`. The answer's stream holds this engine: a reload that replaces it lets
    /// the answers in flight finish on it, and it stops when the last of them ends.
    pub async fn start(
        self: &Arc<Self>,
        request: &ChatRequest,
    ) -> Result<EventStream, UpstreamError> {
        let (out, mut rx) = mpsc::unbounded_channel();
        let job = Job {
            request: request.clone(),
            out,
        };
        let stopped = || UpstreamError::Transport {
            upstream: self.name.clone(),
            detail: "the local model's engine has stopped".into(),
        };
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => UpstreamError::Busy {
                upstream: self.name.clone(),
                retry_after: Duration::from_secs(1),
            },
            TrySendError::Disconnected(_) => stopped(),
        })?;
        let hold = EngineHold(Some(self.clone()));
        Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
            let _hold = &hold;
            rx.poll_recv(cx)
        })))
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Closing the queue wakes an idle engine blocked waiting for a job.
        drop(self.jobs.take());
        if let Some(engine) = self.engine.take() {
            if engine.join().is_err() {
                tracing::error!(upstream = %self.name, "the local model's engine thread panicked");
            }
        }
    }
}

/// An answer's hold on its engine. When it is the last one (the engine was replaced by a reload
/// while this answer ran), the engine is dropped on a blocking thread: joining its thread waits
/// up to one decode step, which must not happen on an async worker. If that thread never runs
/// (the runtime is shutting down), dropping the task drops the engine, which still joins.
struct EngineHold(Option<Arc<Local>>);

impl Drop for EngineHold {
    fn drop(&mut self) {
        let Some(engine) = self.0.take() else {
            return;
        };
        if Arc::strong_count(&engine) == 1 {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn_blocking(move || drop(engine));
            }
        }
    }
}
