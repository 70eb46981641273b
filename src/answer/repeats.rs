//! FaceTo-AI retries any status from 423 to 509 three times, about 100 ms apart, with the same
//! `x-request-id`. chatapi has already retried and failed over before answering such a status,
//! so each client retry would start the whole round of upstream attempts again (4 rounds for one
//! upstream failure, measured with the real client's code). An upstream failure is remembered
//! by request id for `limits.repeat_window`; a request with that id inside the window gets the
//! same answer at once, and nothing goes upstream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::upstream::UpstreamError;

/// Entries kept at most: the memory a flood of failing ids may take is bounded.
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct RecentFailures {
    failures: Mutex<HashMap<String, (Instant, UpstreamError)>>,
}

impl RecentFailures {
    pub fn remember(&self, request_id: &str, error: &UpstreamError, window: Duration) {
        if window.is_zero() || request_id.is_empty() || request_id == "-" {
            return;
        }
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, (at, _)| at.elapsed() < window);
        }
        if failures.len() < MAX_ENTRIES {
            failures.insert(request_id.to_string(), (Instant::now(), error.clone()));
        }
    }

    /// The failure `request_id` met within `window`, if any.
    pub fn recall(&self, request_id: &str, window: Duration) -> Option<UpstreamError> {
        if window.is_zero() {
            return None;
        }
        let failures = self.failures.lock().ok()?;
        let (at, error) = failures.get(request_id)?;
        (at.elapsed() < window).then(|| error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_recalled_within_the_window_only() {
        let recent = RecentFailures::default();
        let error = UpstreamError::Cut {
            upstream: "u".into(),
        };
        recent.remember("id-1", &error, Duration::from_secs(10));
        recent.remember("-", &error, Duration::from_secs(10));
        assert!(recent.recall("id-1", Duration::from_secs(10)).is_some());
        assert!(recent.recall("id-2", Duration::from_secs(10)).is_none());
        assert!(
            recent.recall("-", Duration::from_secs(10)).is_none(),
            "no id: never a repeat"
        );
        assert!(recent.recall("id-1", Duration::ZERO).is_none(), "off");
        assert!(
            recent.recall("id-1", Duration::from_nanos(1)).is_none(),
            "expired"
        );
    }
}
