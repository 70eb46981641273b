//! Long work told as it goes, through the protocol's progress notifications (sent only when the
//! client asked, with a `progressToken`): a video's processing steps as they finish, and an
//! answer as it streams, piece by piece, through the same relay as every chat (`Pieces`, its
//! encoder), so timeouts, the stream cap and a hang-up's stop are the relay's.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::RoleServer;

use crate::relay::{Encoder, Failure};
use crate::upstream::Event;
use crate::videos::model::{Status, Video};

/// Sends a request's progress notifications, each one further than the last.
pub struct Reporter {
    to: Option<(ProgressToken, Peer<RoleServer>)>,
    done: f64,
}

impl Reporter {
    pub fn of(context: &RequestContext<RoleServer>) -> Self {
        Self {
            to: context
                .meta
                .get_progress_token()
                .map(|token| (token, context.peer.clone())),
            done: 0.0,
        }
    }

    /// One step further, said in `message`. A client gone away is not this request's failure:
    /// its cancellation, if any, arrives on its own.
    pub async fn step(&mut self, message: impl Into<String>, total: Option<f64>) {
        let Some((token, peer)) = &self.to else {
            return;
        };
        self.done += 1.0;
        let mut param =
            ProgressNotificationParam::new(token.clone(), self.done).with_message(message);
        if let Some(total) = total {
            param = param.with_total(total.max(self.done));
        }
        if let Err(error) = peer.notify_progress(param).await {
            tracing::debug!(%error, "mcp: progress notification not sent");
        }
    }

    /// A video's state when it changes since `seen`, and each step finished since (with the
    /// seconds it took).
    pub async fn processing(&mut self, seen: &mut Seen, video: &Video) {
        if seen.status != Some(video.status) {
            seen.status = Some(video.status);
            self.step(format!("{}: {}", video.id, video.status.as_str()), None)
                .await;
        }
        let mut finished = Vec::new();
        for (step, seconds) in &video.steps.seconds {
            if seen.steps.insert(step.clone()) {
                finished.push(format!("{step} done in {seconds:.1} s"));
            }
        }
        if !finished.is_empty() {
            self.step(format!("{}: {}", video.id, finished.join(", ")), None)
                .await;
        }
    }
}

/// What has been said of a video's processing.
#[derive(Default)]
pub struct Seen {
    status: Option<Status>,
    steps: std::collections::BTreeSet<String>,
}

/// How an answer broke off, for the tool to say instead of the partial text.
pub type Broke = Arc<Mutex<Option<String>>>;

/// The relay's encoder for an answer read by a tool: each piece of text as its own bytes, and
/// nothing else on the wire (a ping is an empty piece); a failure is kept in `broke`.
pub struct Pieces {
    pub broke: Broke,
}

impl Encoder for Pieces {
    fn event(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Text(text) if !text.is_empty() => Some(Bytes::from(text)),
            _ => None,
        }
    }
    fn ping(&self) -> Bytes {
        Bytes::new()
    }
    fn failed(&mut self, failure: Failure<'_>) -> Option<Bytes> {
        *self.broke.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(failure.message.to_string());
        None
    }
    fn end(&mut self) -> Bytes {
        Bytes::new()
    }
}
