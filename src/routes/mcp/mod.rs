//! The video library as tools for agents: the Model Context Protocol at `/mcp` (Streamable
//! HTTP), served by the protocol's official SDK (`rmcp`), which owns the framing, sessions,
//! progress and cancellation. What is chatapi's: every HTTP request to `/mcp` is admitted here
//! as one request of any route is (key, tenant, rate limits; refused in OpenAI's envelope before
//! the SDK sees it), its body read within the routes' limits, and a new session refused past
//! `mcp.max_sessions`; the admitted caller travels with the request to the tools (`server`),
//! which call the same functions as the native routes (`tools`), streaming answers and
//! processing as progress (`progress`).
//!
//! `chatapi mcp --stdio`, for clients that only start local processes, is `crate::stdio_bridge`.

mod progress;
mod server;
mod tools;

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceExt;

use super::incoming::Incoming;
use super::openai::error_response;
use crate::answer::admission::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub use server::Tools;

/// What a request to `/mcp` was admitted as, handed to the tools with it.
pub struct Admitted {
    pub incoming: Incoming,
    tenant: String,
    /// Taken by the one tool call that answers with the upstream (a message is one call).
    caller: Mutex<Option<Caller>>,
    /// `scheme://host` the caller reached this server by, for links it can follow.
    base: String,
}

impl Admitted {
    fn new(incoming: Incoming, caller: Caller, head: &Parts) -> Self {
        let host = head
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| head.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        // A proxy that ends TLS says so; a caller that lies only misleads itself.
        let scheme = match head
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
        {
            Some("https") => "https",
            _ => "http",
        };
        Self {
            incoming,
            tenant: caller.tenant.clone(),
            caller: Mutex::new(Some(caller)),
            base: format!("{scheme}://{host}"),
        }
    }

    /// Whose library this request sees.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The admitted caller, for the call that answers with the upstream.
    pub fn take_caller(&self) -> Result<Caller, ApiError> {
        self.caller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                ApiError::bad_request(
                    "request",
                    "carries more than one question; send one per request",
                )
            })
    }

    /// This server's links in `value`, made absolute.
    pub fn absolute_links(&self, value: &mut serde_json::Value) {
        tools::absolute_links(value, &self.base);
    }
}

/// The header a client names its session by.
const SESSION: &str = "mcp-session-id";

/// `/mcp`, when `mcp.enabled`.
pub fn router(state: &AppState) -> Router<AppState> {
    let config = &state.runtime().config;
    if !config.mcp.enabled {
        return Router::new();
    }
    let endpoint = Arc::new(Endpoint::new(state));
    Router::new().route(
        "/mcp",
        any(move |incoming: Incoming, request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.serve(incoming, request).await }
        }),
    )
}

struct Endpoint {
    service: StreamableHttpService<Tools, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    max_sessions: usize,
}

impl Endpoint {
    fn new(state: &AppState) -> Self {
        let runtime = state.runtime();
        let config = &runtime.config;
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive = Some(config.mcp.session_idle);
        let sessions = Arc::new(sessions);
        let hosts = if config.mcp.allowed_hosts.is_empty() && !config.auth.keys.is_empty() {
            // Every caller shows a key: a rebound name reaches nothing without one.
            Vec::new()
        } else if config.mcp.allowed_hosts.is_empty() {
            ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec()
        } else {
            config.mcp.allowed_hosts.clone()
        };
        let mut settings = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_cancellation_token(state.hard_stop().child_token())
            .with_max_request_body_bytes(config.limits.max_body_bytes);
        settings = if config.mcp.allowed_origins.is_empty() {
            settings.enforce_origin_validation()
        } else {
            settings.with_allowed_origins(config.mcp.allowed_origins.clone())
        };
        let service = StreamableHttpService::new(|| Ok(Tools), sessions.clone(), settings);
        Self {
            service,
            sessions,
            max_sessions: config.mcp.max_sessions,
        }
    }

    async fn serve(&self, incoming: Incoming, request: Request) -> Response {
        let started = std::time::Instant::now();
        let request_id = incoming.request_id.clone();
        let method = request.method().clone();
        let response = match self.admit(incoming, request).await {
            Ok(request) => match self.service.clone().oneshot(request).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            },
            Err(error) => error_response(&error),
        };
        tracing::info!(
            request_id = %request_id,
            route = "mcp",
            %method,
            status = response.status().as_u16(),
            duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "mcp"
        );
        response
    }

    /// Admits the caller (once per HTTP request, whatever it carries), reads the body within
    /// the routes' limits, and refuses a new session past the cap.
    async fn admit(&self, incoming: Incoming, request: Request) -> Result<Request, ApiError> {
        let in_session = request.headers().contains_key(SESSION);
        let (mut head, body) = request.into_parts();
        let caller = incoming.admit().await?;
        let limits = &caller.runtime.config.limits;
        let (body, opens_session) = if head.method == Method::POST {
            let bytes = super::body::within_limits(body, &head.headers, limits).await?;
            let opens = !in_session && is_initialize(&bytes);
            (Body::from(bytes), opens)
        } else {
            (body, false)
        };
        if opens_session && self.sessions.sessions.read().await.len() >= self.max_sessions {
            return Err(ApiError::TooManySessions);
        }
        let admitted = Admitted::new(incoming, caller, &head);
        head.extensions.insert(Arc::new(admitted));
        Ok(Request::from_parts(head, body))
    }
}

/// Whether a message is the `initialize` that opens a session (what the SDK makes of anything
/// else, including a body that is not JSON, is its own to say).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<&'a str>,
    }
    serde_json::from_slice::<Method<'_>>(body).is_ok_and(|m| m.method == Some("initialize"))
}
