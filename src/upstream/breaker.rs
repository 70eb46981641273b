//! A small circuit breaker: after `threshold` failures in a row an upstream is skipped for
//! `cooldown`; the first call after the cool-down is the trial that closes it again or re-opens it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    pub fn allows(&self) -> bool {
        match self.open_until.lock() {
            Ok(guard) => guard.is_none_or(|until| Instant::now() >= until),
            Err(_) => true,
        }
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if let Ok(mut guard) = self.open_until.lock() {
            *guard = None;
        }
    }

    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.threshold > 0 && failures >= self.threshold {
            if let Ok(mut guard) = self.open_until.lock() {
                *guard = Some(Instant::now() + self.cooldown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure();
        assert!(b.allows());
        b.failure();
        assert!(!b.allows());
        b.success();
        assert!(b.allows());
    }

    #[test]
    fn reopens_for_a_trial_after_cooldown() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failure();
        assert!(b.allows());
    }
}
