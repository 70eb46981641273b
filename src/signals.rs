//! Process signals: SIGTERM/SIGINT start a graceful shutdown, SIGHUP reloads the config.

use crate::state::AppState;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn terminate() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Reloads personas, keys and upstreams on every SIGHUP. A config that does not load is logged
/// and ignored; the running one stays.
pub async fn reload_on_hangup(state: AppState) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match state.reload() {
                Ok(()) => tracing::info!("config reloaded"),
                Err(error) => {
                    tracing::error!(%error, "config reload rejected; keeping the running config")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}
