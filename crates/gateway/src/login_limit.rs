//! The failed-login limit: at most N failed password logins per window, counted per
//! account and per client address (SPEC §4), so that neither one account can be guessed
//! at from many addresses nor many accounts from one address.
//!
//! The counts live in this process only. Several gateways each allow N, which still
//! bounds guessing; a shared count would need a store the gateway deliberately lacks.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What failed logins are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    /// The normalized (lower-case) login name.
    Account(String),
    Address(IpAddr),
}

/// Counts failed logins in a sliding window.
#[derive(Debug)]
pub struct LoginLimiter {
    attempts: u32,
    window: Duration,
    failures: Mutex<HashMap<Subject, VecDeque<Instant>>>,
}

/// How many subjects may be tracked before expired entries are swept: a bound on the
/// memory an attacker can make the gateway spend by failing with made-up names.
const SWEEP_ABOVE: usize = 10_000;

impl LoginLimiter {
    pub fn new(attempts: u32, window: Duration) -> Self {
        LoginLimiter { attempts: attempts.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when the account or the address has used up its failures.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(account, address, Instant::now())
    }

    pub fn record_failure(&self, account: &str, address: Option<IpAddr>) {
        self.record_failure_at(account, address, Instant::now());
    }

    /// A successful login clears the account's count (not the address's: one right
    /// password must not buy an address more guesses at other accounts).
    pub fn record_success(&self, account: &str) {
        self.lock().remove(&Subject::Account(account.to_lowercase()));
    }

    fn subjects(account: &str, address: Option<IpAddr>) -> impl Iterator<Item = Subject> {
        std::iter::once(Subject::Account(account.to_lowercase())).chain(address.map(Subject::Address))
    }

    fn check_at(&self, account: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let mut retry_after: Option<Duration> = None;
        for subject in Self::subjects(account, address) {
            let Some(times) = failures.get_mut(&subject) else { continue };
            self.forget_expired(times, now);
            if times.len() >= self.attempts as usize {
                // The oldest failure in the window is the first to leave it.
                let wait = times.front().map_or(Duration::ZERO, |oldest| (*oldest + self.window).duration_since(now));
                retry_after = Some(retry_after.map_or(wait, |longest| longest.max(wait)));
            }
        }
        match retry_after {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    fn record_failure_at(&self, account: &str, address: Option<IpAddr>, now: Instant) {
        let mut failures = self.lock();
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| times.back().is_some_and(|last| now.duration_since(*last) < self.window));
        }
        for subject in Self::subjects(account, address) {
            let times = failures.entry(subject).or_default();
            self.forget_expired(times, now);
            times.push_back(now);
            // Only the newest `attempts` failures matter for the decision.
            while times.len() > self.attempts as usize {
                times.pop_front();
            }
        }
    }

    fn forget_expired(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|oldest| now.duration_since(*oldest) >= self.window) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, VecDeque<Instant>>> {
        // A panic while holding the lock leaves counts, not broken invariants.
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn an_account_is_blocked_after_its_failures_until_the_window_moves_on() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let start = Instant::now();
        for second in 0..3 {
            // From different addresses: the account's own count is what blocks.
            let at = start + Duration::from_secs(second);
            assert!(limiter.check_at("ann@example.com", address(second as u8), at).is_ok());
            limiter.record_failure_at("ann@example.com", address(second as u8), at);
        }
        let wait =
            limiter.check_at("ANN@example.com", address(9), start + Duration::from_secs(10)).expect_err("blocked");
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check_at("ann@example.com", address(9), start + WINDOW).is_ok());
    }

    #[test]
    fn an_address_is_blocked_after_failures_on_many_accounts() {
        let limiter = LoginLimiter::new(3, WINDOW);
        let now = Instant::now();
        for account in ["a@example.com", "b@example.com", "c@example.com"] {
            limiter.record_failure_at(account, address(1), now);
        }
        assert!(limiter.check_at("d@example.com", address(1), now).is_err());
        assert!(limiter.check_at("d@example.com", address(2), now).is_ok());
    }

    #[test]
    fn a_success_clears_the_account_but_not_the_address() {
        let limiter = LoginLimiter::new(2, WINDOW);
        let now = Instant::now();
        limiter.record_failure_at("ann@example.com", address(1), now);
        limiter.record_failure_at("ann@example.com", address(2), now);
        assert!(limiter.check_at("ann@example.com", address(3), now).is_err());
        limiter.record_success("ann@example.com");
        assert!(limiter.check_at("ann@example.com", address(3), now).is_ok());
        limiter.record_failure_at("bob@example.com", address(1), now);
        limiter.record_success("bob@example.com");
        assert!(limiter.check_at("carl@example.com", address(1), now).is_err(), "the address keeps its count");
    }
}
