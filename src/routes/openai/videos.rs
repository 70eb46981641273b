//! Which library videos an OpenAI request's video parts name (`decode::VideoPart`): a library id
//! (`vid_…`), this server's URL of one (`/v1/videos/vid_…`, its `/media`, absolute with this
//! server's host), or an `http(s)` link, added to the library through the URL guard (once: a link
//! already added and not failed is reused) and waited for up to `video_chat.link_wait`. Whether
//! each is the caller's and ready is the core's check (`answer::video_chat`), made before
//! anything goes upstream.

use crate::answer::Caller;
use crate::error::ApiError;
use crate::routes::incoming::Incoming;
use crate::routes::ingest::add_link;
use crate::videos::excerpt::Range;
use crate::videos::model::Status;
use crate::videos::Owner;

use super::decode::VideoPart;

/// The videos, by id, with the part of each asked about; a link's video ready, or the reason it
/// is not.
pub async fn resolve(
    incoming: &Incoming,
    caller: &Caller,
    parts: Vec<VideoPart>,
    host: Option<&str>,
) -> Result<Vec<(String, Range)>, ApiError> {
    let mut videos = Vec::with_capacity(parts.len());
    for part in parts {
        let range = Range {
            start: part.start,
            end: part.end,
        };
        let id = match library_id(&part.url, host) {
            Some(id) => id.to_string(),
            None if part.url.starts_with("http://") || part.url.starts_with("https://") => {
                linked(incoming, caller, &part).await?
            }
            None => {
                return Err(ApiError::bad_request(
                    format!("{}.video_url", part.field),
                    "must be a video id (vid_…), this server's URL of one, or an http(s) link to a video",
                ))
            }
        };
        videos.push((id, range));
    }
    Ok(videos)
}

/// The id a part names in the library, if it names one: `vid_…` itself, or this server's URL
/// of it.
fn library_id<'u>(url: &'u str, host: Option<&str>) -> Option<&'u str> {
    if is_id(url) {
        return Some(url);
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/')?);
            if host != Some(authority) {
                return None;
            }
            path
        }
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let rest = path.strip_prefix("/v1/videos/")?;
    let id = rest.strip_suffix("/media").unwrap_or(rest);
    is_id(id).then_some(id)
}

fn is_id(s: &str) -> bool {
    s.strip_prefix("vid_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A link's video: the one already added from it, else a new one; then its processing awaited.
async fn linked(
    incoming: &Incoming,
    caller: &Caller,
    part: &VideoPart,
) -> Result<String, ApiError> {
    let library = incoming.library()?;
    let video = match library.linked(&caller.tenant, &part.url).await? {
        Some(video) => video,
        None => {
            let owner = Owner {
                tenant: caller.tenant.clone(),
                ..Owner::default()
            };
            let field = format!("{}.video_url", part.field);
            add_link(library, &part.url, &field, None, &owner).await?
        }
    };
    let wait = caller.runtime.config.video_chat.link_wait;
    let video = library.settled(&caller.tenant, &video.id, wait).await?;
    match video.status {
        Status::Ready => Ok(video.id),
        // Named, so the caller can follow it (`GET /v1/videos/{id}`) and ask again.
        Status::Queued | Status::Processing => Err(ApiError::NotReady {
            id: video.id,
            status: video.status.as_str(),
        }),
        Status::Failed => Err(ApiError::bad_request(
            format!("{}.video_url", part.field),
            format!(
                "the video added from this link ({}) failed: {}",
                video.id,
                video
                    .error
                    .as_deref()
                    .unwrap_or("its processing did not finish")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_ids_and_this_servers_urls_name_a_video() {
        let host = Some("127.0.0.1:8080");
        assert_eq!(library_id("vid_abc123", host), Some("vid_abc123"));
        assert_eq!(
            library_id("/v1/videos/vid_abc123", host),
            Some("vid_abc123")
        );
        assert_eq!(
            library_id(
                "http://127.0.0.1:8080/v1/videos/vid_abc123/media?expires=1&sig=2",
                host
            ),
            Some("vid_abc123")
        );
        // Another host's URL is a link to fetch, not a library video.
        assert_eq!(
            library_id("http://example.com/v1/videos/vid_abc123", host),
            None
        );
        assert_eq!(library_id("https://example.com/a.mp4", host), None);
        for bad in [
            "vid_",
            "vid_../../etc",
            "/v1/videos/vid_a/timeline",
            "vid_a b",
            "VID_a",
        ] {
            assert_eq!(library_id(bad, host), None, "{bad}");
        }
        assert_eq!(library_id(&format!("vid_{}", "a".repeat(65)), host), None);
    }
}
