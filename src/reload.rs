//! Config reloads, on SIGHUP and when the config file changes on disk. Either way the whole config
//! (file and environment) is loaded again and swapped in only if it loads and validates; open
//! streams keep the runtime they started with.
//!
//! The file is polled (one `stat` every `server.watch_config`) rather than watched with inotify:
//! that costs nothing measurable, needs no extra thread or dependency, and also sees the symlink
//! swap by which Kubernetes updates a mounted ConfigMap.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::state::AppState;

/// Reloads on every SIGHUP. The handler is installed before this returns, so a SIGHUP that
/// arrives once the server says it is listening is never the default action (which would kill it).
pub fn on_hangup(state: AppState) -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let hup = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .inspect_err(
                |error| tracing::warn!(%error, "cannot listen for SIGHUP; reload on SIGHUP is off"),
            )
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some(mut hup) = hup {
            while hup.recv().await.is_some() {
                apply(&state, "SIGHUP").await;
            }
        }
        #[cfg(not(unix))]
        let _ = state;
    }
}

/// Reloads whenever the file's modification time or size changes. The file is looked at before
/// this returns, so a change made once the server says it is listening is never missed. The
/// interval is re-read from the running config at every check, so a reload can change it; 0
/// pauses watching until a SIGHUP sets it again.
pub fn on_file_change(state: AppState, path: PathBuf) -> impl Future<Output = ()> + Send + 'static {
    let mut seen = fingerprint(&path);
    async move {
        loop {
            let every = state.runtime().config.server.watch_config;
            tokio::time::sleep(if every.is_zero() {
                PAUSED_RECHECK
            } else {
                every
            })
            .await;
            if every.is_zero() {
                continue;
            }
            let now = fingerprint(&path);
            // Missing for a moment (an editor or ConfigMap replacing it): wait for it to come back.
            if now.is_some() && now != seen {
                seen = now;
                apply(&state, "config file changed").await;
            }
        }
    }
}

/// How often a paused watcher looks whether a reload turned it back on.
const PAUSED_RECHECK: Duration = Duration::from_secs(5);

fn fingerprint(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Runs on a blocking thread: a reload may load an embedded model, which takes seconds for a
/// large one and must not stall the async workers serving streams meanwhile.
async fn apply(state: &AppState, trigger: &'static str) {
    let reloading = state.clone();
    match tokio::task::spawn_blocking(move || reloading.reload()).await {
        Ok(Ok(())) => {
            tracing::info!(trigger, "config reloaded");
            for warning in state.runtime().config.warnings() {
                tracing::warn!("{warning}");
            }
        }
        Ok(Err(error)) => {
            tracing::error!(trigger, %error, "config reload rejected; keeping the running config")
        }
        Err(error) => tracing::error!(trigger, %error, "config reload failed"),
    }
}
