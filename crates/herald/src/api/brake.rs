//! The brake on guessing credentials: failed authentications (API keys and dashboard sign-ins)
//! are counted per client address over a minute; past `HERALD_AUTH_FAILURE_LIMIT` that
//! address's failures are answered 429 with `Retry-After` until its minute is over. A valid
//! key is never held back, even from a braked address: the brake costs an attacker their
//! answers, never a legitimate client behind the same address its access. (API keys carry 256
//! random bits, so the brake is about noise and load, and making guessing visible: a metric
//! and a rate-limited warning.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::telemetry::Throttle;

/// The window failures are counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; a flood from many addresses cannot grow the table past this.
const MAX_ADDRESSES: usize = 10_000;
/// The warning about braked addresses is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub struct FailureBrake {
    /// Failures per address per minute before the brake; 0: no brake.
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
    warnings: Throttle,
}

struct Window {
    started: Instant,
    failures: u32,
}

impl FailureBrake {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
            warnings: Throttle::new(WARN_EVERY),
        }
    }

    /// Counts a failed authentication from `address`; returns how long the caller must wait
    /// when the address is over its limit (answer 429), `None` when it is not (answer 401).
    pub fn failed(&self, address: IpAddr) -> Option<Duration> {
        metrics::counter!("herald_auth_failures_total").increment(1);
        if self.limit == 0 {
            return None;
        }
        let now = Instant::now();
        let mut windows = self.windows.lock().ok()?;
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&address) {
            windows.retain(|_, window| now.duration_since(window.started) < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                return None;
            }
        }
        let window = windows.entry(address).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures <= self.limit {
            return None;
        }
        let wait = WINDOW.saturating_sub(now.duration_since(window.started));
        let failures = window.failures;
        drop(windows);
        metrics::counter!("herald_auth_throttled_total").increment(1);
        if self.warnings.due().is_some() {
            tracing::warn!(
                client.address = %address,
                auth.failures = failures,
                "repeated failed authentications: this address is answered 429 for now (HERALD_AUTH_FAILURE_LIMIT)"
            );
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_braked_past_its_limit_and_others_are_not() {
        let brake = FailureBrake::new(3);
        let guesser: IpAddr = "192.0.2.1".parse().expect("ip");
        let bystander: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(brake.failed(guesser), None);
        }
        let wait = brake.failed(guesser).expect("braked");
        assert!(wait > Duration::ZERO && wait <= WINDOW);
        assert_eq!(brake.failed(bystander), None);
    }

    #[test]
    fn a_limit_of_zero_turns_the_brake_off() {
        let brake = FailureBrake::new(0);
        let address: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..1_000).all(|_| brake.failed(address).is_none()));
    }
}
