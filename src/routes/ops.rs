//! Endpoints for operators and orchestrators.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving HTTP.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Config loaded and at least one upstream usable (its circuit breaker closed).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let runtime = state.runtime();
    let upstreams = runtime.upstreams.health();
    let ready = upstreams.iter().any(|u| u.available);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "upstreams": upstreams,
        "open_streams": state.streams().count(),
        "warnings": runtime.config.warnings(),
    });
    (status, Json(body))
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
