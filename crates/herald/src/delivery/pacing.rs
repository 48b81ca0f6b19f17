//! Rate-limited webhooks wait here for their turn before each attempt (see
//! [`crate::domain::rate_limit`] for how a limit becomes evenly spaced turns).
//!
//! Turns come from the store, which keeps one counter per webhook for every node; this
//! process reserves a few at a time ([`RateLimit::turns_per_reservation`]) and hands them to
//! its attempts in order. A turn is never used late by more than one interval: older ones
//! are dropped, since the counter has moved on and another node may be sending in that
//! time. A dropped or unused turn only makes the webhook a little slower than its limit,
//! never faster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::domain::ids::WebhookId;
use crate::domain::rate_limit::RateLimit;
use crate::store::Store;

pub struct Pacer {
    store: Arc<dyn Store>,
    /// Per rate-limited webhook seen: the turns reserved and not yet used. One async lock
    /// per webhook, so its attempts take turns in the order they ask.
    turns: Mutex<HashMap<WebhookId, Arc<tokio::sync::Mutex<Turns>>>>,
}

/// A run of reserved turns: the next one, how many are left, and their spacing.
#[derive(Debug, Default, Clone, Copy)]
struct Turns {
    next_us: i64,
    left: u32,
    interval_us: i64,
}

impl Turns {
    /// The next turn not already more than one interval past at `now_us`, if any is left.
    fn take(&mut self, now_us: i64) -> Option<i64> {
        while self.left > 0 {
            let turn = self.next_us;
            self.next_us += self.interval_us;
            self.left -= 1;
            if turn + self.interval_us >= now_us {
                return Some(turn);
            }
        }
        None
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Pacer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until `webhook` may send once more under `limit`. While the store cannot
    /// reserve turns it keeps trying: a limited webhook waits rather than exceed its limit.
    pub async fn wait_turn(&self, webhook: &WebhookId, limit: RateLimit) {
        let turns = Arc::clone(
            self.turns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(webhook.clone())
                .or_default(),
        );
        let turn = {
            let mut turns = turns.lock().await;
            if turns.interval_us != limit.interval_us() {
                // A new limit: what was reserved under the old one is not used.
                *turns = Turns::default();
            }
            match turns.take(now_us()) {
                Some(turn) => turn,
                None => {
                    let reserved = self.reserve(webhook, limit).await;
                    *turns = reserved;
                    turns.take(i64::MIN).unwrap_or(reserved.next_us)
                }
            }
        };
        let wait = u64::try_from(turn - now_us()).unwrap_or(0);
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
    }

    async fn reserve(&self, webhook: &WebhookId, limit: RateLimit) -> Turns {
        let count = limit.turns_per_reservation();
        let interval_us = limit.interval_us();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self
                .store
                .reserve_turns(webhook.clone(), i64::from(count) * interval_us, now_us())
                .await
            {
                Ok(first) => {
                    return Turns {
                        next_us: first,
                        left: count,
                        interval_us,
                    };
                }
                Err(e) => {
                    tracing::warn!(webhook.id = %webhook, error = %e, "cannot reserve send turns for a rate-limited webhook; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_taken_in_order_and_those_long_past_are_dropped() {
        let mut turns = Turns {
            next_us: 1_000,
            left: 4,
            interval_us: 100,
        };
        assert_eq!(turns.take(0), Some(1_000), "a turn ahead is taken");
        assert_eq!(turns.take(1_150), Some(1_100), "one interval late is still taken");
        assert_eq!(
            turns.take(1_350),
            Some(1_300),
            "a turn more than an interval late is dropped"
        );
        assert_eq!(turns.take(0), None, "the run is used up");
    }
}
