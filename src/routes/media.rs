//! A video's media for a browser: its source (`GET /v1/videos/{id}/media`, answering HTTP Range
//! requests, so a player seeks without fetching the whole file) and its keyframes
//! (`/keyframes/{n}.jpg`). A browser sends no `Authorization` for `<video src>` or `<img src>`,
//! so each answers either to a key, as every route, or to a signed link (`auth::media_link`)
//! that the native routes hand out beside each video (`media_url`, `thumbnail_url`, each
//! keyframe's `url`).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::incoming::Incoming;
use super::openai::{error_response, unix_now};
use super::respond::respond;
use crate::auth;
use crate::error::ApiError;
use crate::videos::model::{Keyframe, Video};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    #[serde(default)]
    expires: Option<i64>,
    #[serde(default)]
    sig: Option<String>,
}

/// A video's links for a browser, signed once (`auth::media_link`) for all of them.
pub struct Links<'v> {
    video: &'v str,
    /// `?expires=…&sig=…`, or nothing where no keys are configured.
    query: String,
}

impl<'v> Links<'v> {
    pub fn of(incoming: &Incoming, video: &'v Video) -> Self {
        let keys = &incoming.runtime.config.auth.keys;
        let link = auth::media_link(keys, &video.tenant, &video.id, now());
        Self {
            video: &video.id,
            query: if link.is_empty() {
                link
            } else {
                format!("?{link}")
            },
        }
    }

    pub fn media(&self) -> String {
        format!("/v1/videos/{}/media{}", self.video, self.query)
    }

    pub fn keyframe(&self, index: u32) -> String {
        format!(
            "/v1/videos/{}/keyframes/{index}.jpg{}",
            self.video, self.query
        )
    }
}

/// A video as the native API gives it, with the links a page needs: where to play it from and
/// its first keyframe.
pub fn with_links(incoming: &Incoming, video: &Video) -> Value {
    let links = Links::of(incoming, video);
    let mut value = serde_json::to_value(video).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        let has_keyframes = video.steps.keyframes.as_ref().is_some_and(|k| k.count > 0);
        map.insert("media_url".into(), json!(links.media()));
        map.insert(
            "thumbnail_url".into(),
            json!(has_keyframes.then(|| links.keyframe(0))),
        );
    }
    value
}

/// A video's keyframes, each with the `url` a browser can show it from.
pub fn keyframes_with_links(links: &Links<'_>, keyframes: &[Keyframe]) -> Value {
    keyframes
        .iter()
        .map(|k| {
            let mut value = serde_json::to_value(k).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut value {
                map.insert("url".into(), json!(links.keyframe(k.index)));
            }
            value
        })
        .collect()
}

/// Unix seconds, as links count them.
fn now() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// The video whose media the request may fetch: by its signed link when it carries one, else
/// by the caller's key. A link that does not check out and a video that does not exist answer
/// alike, so a link says nothing about other tenants' videos.
async fn linked_video(
    incoming: &Incoming,
    id: &str,
    link: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Video, ApiError> {
    let Query(link) = link?;
    let library = incoming.library()?;
    let (Some(expires), Some(sig)) = (link.expires, link.sig) else {
        let caller = incoming.admit().await?;
        return Ok(library.owned(&caller.tenant, id).await?);
    };
    let keys = &incoming.runtime.config.auth.keys;
    match library.find(id).await? {
        Some(video) if auth::media_link_valid(keys, &video.tenant, id, expires, &sig, now()) => {
            Ok(video)
        }
        _ => Err(ApiError::LinkInvalid),
    }
}

/// `GET /v1/videos/{id}/media`: the video as uploaded or downloaded, whatever its status, with
/// Range, `If-Modified-Since` and `HEAD` answered as a file server does.
pub async fn source(
    incoming: Incoming,
    Path(id): Path<String>,
    link: Result<Query<LinkQuery>, QueryRejection>,
    request: Request,
) -> Response {
    respond(&incoming, "media", error_response, async {
        let video = linked_video(&incoming, &id, link).await?;
        let path = incoming.library()?.source_file(&video.id);
        let mime =
            mime_guess::from_path(&video.name).first_or(mime_guess::mime::APPLICATION_OCTET_STREAM);
        // A name without a video extension (a link's last path segment) still plays: the
        // browser sniffs the bytes of a media element's source.
        let mime = if mime.type_() == "video" || mime.type_() == "audio" {
            mime
        } else {
            "video/mp4"
                .parse()
                .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM)
        };
        let Ok(response) = ServeFile::new_with_mime(path, &mime).oneshot(request).await;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ApiError::NotFound {
                what: "video source",
                id: video.id,
            });
        }
        let mut response = response.map(Body::new);
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("private, max-age=3600"),
        );
        Ok(response)
    })
    .await
}

/// `GET /v1/videos/{id}/keyframes/{n}.jpg`.
pub async fn keyframe(
    incoming: Incoming,
    Path((id, file)): Path<(String, String)>,
    link: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    respond(&incoming, "keyframe", error_response, async {
        let index = file
            .strip_suffix(".jpg")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "keyframe",
                    format!("`{file}` is not a keyframe: ask for `N.jpg`, N from 0"),
                )
            })?;
        let video = linked_video(&incoming, &id, link).await?;
        let path = incoming.library()?.keyframe_file(&video.id, index);
        match tokio::fs::read(&path).await {
            Ok(jpeg) => Ok((
                [
                    (header::CONTENT_TYPE, "image/jpeg"),
                    (header::CACHE_CONTROL, "private, max-age=3600"),
                ],
                jpeg,
            )
                .into_response()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound {
                what: "keyframe",
                id: format!("{id}/{index}"),
            }),
            Err(e) => Err(crate::videos::LibraryError::from(e).into()),
        }
    })
    .await
}
