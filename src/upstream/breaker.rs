//! A small circuit breaker: after `threshold` failures in a row an upstream is skipped for
//! `cooldown`; then exactly one call is let through as the trial that closes it again (success)
//! or re-opens it (failure). Concurrent callers meanwhile skip it, as while it was open.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// The one trial call after a cool-down is under way.
    trial: AtomicBool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            trial: AtomicBool::new(false),
        }
    }

    /// Whether a call may go: closed, or past the cool-down (shown in `/readyz`). Takes nothing.
    pub fn allows(&self) -> bool {
        match self.open_until.lock() {
            Ok(guard) => guard.is_none_or(|until| Instant::now() >= until),
            Err(_) => true,
        }
    }

    /// Claims the right to call: always while closed; after the cool-down, only the first
    /// caller (the trial) until that call has succeeded or failed.
    pub fn try_call(&self) -> bool {
        let open = match self.open_until.lock() {
            Ok(guard) => *guard,
            Err(_) => None,
        };
        match open {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) => self
                .trial
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
        }
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if let Ok(mut guard) = self.open_until.lock() {
            *guard = None;
        }
        self.trial.store(false, Ordering::Release);
    }

    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.threshold > 0 && failures >= self.threshold {
            if let Ok(mut guard) = self.open_until.lock() {
                *guard = Some(Instant::now() + self.cooldown);
            }
        }
        self.trial.store(false, Ordering::Release);
    }

    /// The call ended without saying anything about the upstream's health (the caller's own
    /// error, a full local queue): a trial it held is released for the next caller.
    pub fn neither(&self) {
        self.trial.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure();
        assert!(b.try_call());
        b.failure();
        assert!(!b.allows());
        assert!(!b.try_call());
        b.success();
        assert!(b.allows() && b.try_call());
    }

    #[test]
    fn after_the_cooldown_exactly_one_trial_goes() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failure();
        assert!(b.allows());
        assert!(b.try_call(), "the trial");
        assert!(!b.try_call(), "nobody else while the trial runs");
        assert!(!b.try_call());
        b.failure();
        assert!(
            b.try_call(),
            "the trial failed: after the cool-down, one more"
        );
        b.success();
        assert!(b.try_call() && b.try_call(), "closed: everyone");
    }
}
