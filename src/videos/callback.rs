//! Telling an uploader that processing ended: a POST of `{"videoNo","clientId","status"}` (the
//! body Memories.ai's callbacks carry, `PARSE` or `FAIL`) to the URL given with the upload.
//! Every attempt goes through `url_guard` (the address is checked and pinned, redirects are not
//! followed), and a failed one is retried with back-off; nothing waits on it.

use std::time::Duration;

use serde_json::json;

use super::model::{Status, Video};
use super::url_guard;

const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the delivery in the background when the video asked for one.
pub fn notify(video: &Video, allow_private: bool) {
    let Some(url) = video.callback.clone() else {
        return;
    };
    let status = if video.status == Status::Ready {
        "PARSE"
    } else {
        "FAIL"
    };
    let client_id = video
        .labels
        .get("unique_id")
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let body = json!({"videoNo": video.id, "clientId": client_id, "status": status}).to_string();
    let id = video.id.clone();
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match post(&url, &body, allow_private).await {
                Ok(()) => {
                    tracing::info!(video = %id, attempt, "callback delivered");
                    return;
                }
                Err(why) => {
                    tracing::warn!(video = %id, attempt, %why, "callback not delivered");
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    });
}

async fn post(url: &str, body: &str, allow_private: bool) -> Result<(), String> {
    let checked = url_guard::check(url, allow_private)
        .await
        .map_err(|e| e.to_string())?;
    let client = checked
        .client()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(checked.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}
