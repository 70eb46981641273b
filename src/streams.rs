//! The cap on open streams: this process's count here; with replicas, each stream's place under
//! the shared cap is a lease (`cluster::streams`), held by its `StreamSlot`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiError;

/// Streams open right now, across all callers. The cap is passed in at each check rather than
/// fixed here, so a reload that changes `limits.max_concurrent_streams` applies at once: streams
/// already over a lowered cap finish, and new ones wait until the count is below it.
#[derive(Debug, Default)]
pub struct OpenStreams(Arc<AtomicUsize>);

/// One open stream's place under the cap, given back when dropped; with its place under the
/// replicas' shared cap too, when there is one.
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
    lease: Option<crate::cluster::streams::Lease>,
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlot")
            .field("shared", &self.lease.is_some())
            .finish()
    }
}

impl StreamSlot {
    pub(crate) fn with_lease(mut self, lease: crate::cluster::streams::Lease) -> Self {
        self.lease = Some(lease);
        self
    }
}

impl OpenStreams {
    pub fn try_open(&self, cap: usize) -> Result<StreamSlot, ApiError> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < cap).then_some(open + 1)
            })
            .map(|_| StreamSlot {
                open: self.0.clone(),
                lease: None,
            })
            .map_err(|_| ApiError::Overloaded {
                retry_after: Duration::from_secs(1),
            })
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_whatever_the_caller_passes_now() {
        let open = OpenStreams::default();
        let a = open.try_open(2).unwrap();
        let _b = open.try_open(2).unwrap();
        assert!(open.try_open(2).is_err());
        let c = open.try_open(3).unwrap();
        assert_eq!(open.count(), 3);
        assert!(
            open.try_open(1).is_err(),
            "over a lowered cap, nothing new opens"
        );
        drop((a, c));
        assert_eq!(open.count(), 1);
        assert!(open.try_open(1).is_err());
        assert!(open.try_open(2).is_ok());
    }
}
