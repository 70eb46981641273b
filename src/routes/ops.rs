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
    // A replica that refuses without Redis (`cluster.fail_closed`) is not ready while it is down.
    let redis = state.cluster().redis_up();
    let refusing = redis == Some(false) && runtime.config.cluster.fail_closed;
    let ready = upstreams.iter().any(|u| u.available) && !refusing;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "upstreams": upstreams,
        "open_streams": state.streams().count(),
        "redis": redis.map(|up| if up { "up" } else { "down" }),
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
