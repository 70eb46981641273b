//! The page at `/`: the library, a video's player beside its transcript and a chat, and search,
//! for a person in a browser. Plain HTML, CSS and JavaScript compiled into the binary (no build
//! step, no CDN, nothing fetched from elsewhere), served with a Content-Security-Policy that
//! allows only this server. The page speaks the same API as any client (`routes::videos`,
//! `/v1/search`, the streamed video chat); nothing here is reachable that a key would not reach.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// Each of the page's files: its path, its bytes and its media type.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/",
        include_str!("assets/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/page/app.js",
        include_str!("assets/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/page/app.css",
        include_str!("assets/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/page/icon.svg",
        include_str!("assets/icon.svg"),
        "image/svg+xml",
    ),
];

/// Scripts and styles from this server only, no inline script; media and images from this
/// server (and the `blob:` a player may use); nothing may frame the page.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, body, kind)| {
            router.route(path, get(move || async move { asset(body, kind) }))
        })
}

/// The page's files change only with the binary; `no-cache` has a new binary's page seen at
/// once (they are a few kilobytes, and on the server's own host).
fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
