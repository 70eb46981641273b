//! FaceTo-AI retries any status from 423 to 509 three times, about 100 ms apart, with the same
//! `x-request-id`. chatapi has already retried and failed over before answering such a status,
//! so each client retry would start the whole round of upstream attempts again (4 rounds for one
//! upstream failure, measured with the real client's code). An upstream failure is remembered
//! for `limits.repeat_window`; a repeat inside the window gets the same answer at once, and
//! nothing goes upstream.
//!
//! A repeat is the same request, not the same id: the same key (`scope`: a digest of the key and
//! the request id, so another caller's id names another failure) and the same upstream request
//! (`digest`). Anything else with that id is a new request and goes upstream: a request id is the
//! caller's word, and one caller's failure must not answer another's question. The digest is
//! taken only when it is compared or kept — when the id failed before, or the request just
//! failed — never on the way to an answer that works.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::upstream::{ChatRequest, UpstreamError};

/// Entries kept at most: the memory a flood of failing ids may take is bounded.
const MAX_ENTRIES: usize = 4096;

/// Whose request id this is: a digest of the key the caller presented and the id, or `None` when
/// the request has no id worth remembering or repeats are off.
pub fn scope(key: Option<&str>, request_id: &str, window: Duration) -> Option<String> {
    if window.is_zero() || request_id.is_empty() || request_id == "-" {
        return None;
    }
    let mut hash = Sha256::new();
    hash.update(key.unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(request_id.as_bytes());
    Some(hex(&hash.finalize()))
}

/// The request as it goes upstream (the persona applied to the turns, grounding and options):
/// equal for a retry of the same body in any dialect, different for another conversation.
fn digest(request: &ChatRequest) -> String {
    use std::fmt::Write;
    // Written straight into the hash: a long conversation is not first copied into a string.
    struct Hashing(Sha256);
    impl Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    let _ = write!(hashing, "{request:?}");
    hex(&hashing.0.finalize())
}

/// The failure this request met within `window`, if it is a repeat: the same scope's earlier
/// failure, remembered here or read back from the replicas at admission (`shared_failed`), for
/// the same request. The digest is taken only when there is such a failure to compare with.
pub fn repeated(
    local: &RecentFailures,
    scope: Option<&str>,
    shared_failed: Option<Failure>,
    request: &ChatRequest,
    window: Duration,
) -> Option<UpstreamError> {
    let earlier = scope.and_then(|scope| local.recall(scope, window));
    if earlier.is_none() && shared_failed.is_none() {
        return None;
    }
    let digest = digest(request);
    earlier
        .and_then(|f| f.answers(&digest))
        .or_else(|| shared_failed.and_then(|f| f.answers(&digest)))
}

/// Bytes as lowercase hex (digests written as keys and ids).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A failure as remembered: the body it answered, and what the caller was told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub digest: String,
    pub error: UpstreamError,
}

impl Failure {
    /// The error, when `digest` is the body this failure answered.
    pub fn answers(self, digest: &str) -> Option<UpstreamError> {
        (self.digest == digest).then_some(self.error)
    }
}

#[derive(Default)]
pub struct RecentFailures {
    failures: Mutex<HashMap<String, (Instant, Failure)>>,
}

impl RecentFailures {
    pub fn remember(&self, scope: &str, failure: &Failure, window: Duration) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, (at, _)| at.elapsed() < window);
        }
        if failures.len() < MAX_ENTRIES || failures.contains_key(scope) {
            failures.insert(scope.to_string(), (Instant::now(), failure.clone()));
        }
    }

    /// The failure `scope` met within `window`, if any; whether it answers this request is its
    /// digest's to say ([`Failure::answers`]).
    pub fn recall(&self, scope: &str, window: Duration) -> Option<Failure> {
        let failures = self.failures.lock().ok()?;
        let (at, failure) = failures.get(scope)?;
        if at.elapsed() >= window {
            return None;
        }
        Some(failure.clone())
    }
}

pub mod shared;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn a_failure_is_recalled_for_the_same_key_id_and_body_within_the_window_only() {
        let recent = RecentFailures::default();
        let window = Duration::from_secs(10);
        let failure = Failure {
            digest: "body-a".into(),
            error: UpstreamError::Cut {
                upstream: "u".into(),
            },
        };
        let mine = scope(Some("key-1"), "id-1", window).unwrap();
        recent.remember(&mine, &failure, window);
        let recalled = |scope: &str, digest: &str, window| {
            recent
                .recall(scope, window)
                .and_then(|failure| failure.answers(digest))
        };
        assert!(recalled(&mine, "body-a", window).is_some());
        assert!(
            recalled(&mine, "body-b", window).is_none(),
            "another body under the same id is a new request"
        );
        let theirs = scope(Some("key-2"), "id-1", window).unwrap();
        assert!(
            recalled(&theirs, "body-a", window).is_none(),
            "another key's id is its own"
        );
        assert!(
            scope(Some("key-1"), "-", window).is_none(),
            "no id: never a repeat"
        );
        assert!(
            scope(Some("key-1"), "id-1", Duration::ZERO).is_none(),
            "off"
        );
        assert!(
            recalled(&mine, "body-a", Duration::from_nanos(1)).is_none(),
            "expired"
        );
    }
}
