//! How many deliveries this process holds leased, per webhook, and the cap on it; and the
//! engine's answer to a store that asks what it may lease ([`EngineLeasing`]).
//!
//! A webhook's leases are capped so one endpoint holds a bounded share of the engine's
//! window and its backlog is leased in due order, a little ahead of its attempts. The count
//! used to be read from the database (a partial index on leased rows, counted by every
//! claim and by every publish that leased): on PostgreSQL that count was a tenth of the
//! database's time in the throughput benchmark, and the index one more entry written with
//! each lease. Counted here instead, a lease is held from the transaction that takes it until
//! its attempt is recorded (or the job is dropped), whatever its stored lease end says. So
//! the cap is exact within a process and per node across several: each node holds at most
//! `per_webhook` leases to one webhook.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore, mpsc};

use crate::domain::ids::WebhookId;
use crate::domain::rate_limit::RateLimit;
use crate::store::{Claimed, Lease, Leasing};

/// The engine's state as a store sees it through [`Leasing`]: the leases per webhook, the
/// window of deliveries in flight, and where deliveries leased at publish go.
#[derive(Debug)]
pub struct EngineLeasing {
    leases: Arc<Leases>,
    window: Arc<Semaphore>,
    fresh: mpsc::UnboundedSender<Vec<Claimed>>,
    /// Wakes the engine to claim what a publish left due.
    wake: Arc<Notify>,
}

impl EngineLeasing {
    /// Leasing for an engine with `window`, each webhook capped at `per_webhook`, woken
    /// through `wake`; the receiver gets what publishes leased.
    pub fn new(
        per_webhook: u32,
        window: Arc<Semaphore>,
        wake: Arc<Notify>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Vec<Claimed>>) {
        let (fresh, handed) = mpsc::unbounded_channel();
        let leasing = Arc::new(Self {
            leases: Leases::new(per_webhook),
            window,
            fresh,
            wake,
        });
        (leasing, handed)
    }
}

impl Leasing for EngineLeasing {
    fn held(&self) -> Vec<(String, u32)> {
        self.leases.held()
    }

    fn per_webhook(&self) -> u32 {
        self.leases.per_webhook()
    }

    fn hold(&self, webhook: &WebhookId) -> Lease {
        Lease::new(self.leases.hold(webhook))
    }

    /// The window's permit travels with the lease: the attempt gives it back when done.
    fn try_fresh(&self, webhook: &WebhookId, rate_limit: Option<RateLimit>) -> Option<Lease> {
        let cap = RateLimit::lease_cap(rate_limit, self.leases.per_webhook());
        let hold = self.leases.try_hold(webhook, cap)?;
        let slot = Arc::clone(&self.window).try_acquire_owned().ok()?;
        Some(Lease::new((hold, slot)))
    }

    /// If the engine has stopped, these leases run out and the deliveries are claimed again.
    fn committed(&self, leased: Vec<Claimed>, due_left: bool) {
        if !leased.is_empty() {
            let _ = self.fresh.send(leased);
        }
        if due_left {
            self.wake.notify_one();
        }
    }
}

#[derive(Debug)]
pub struct Leases {
    per_webhook: u32,
    held: Mutex<HashMap<WebhookId, u32>>,
}

impl Leases {
    pub fn new(per_webhook: u32) -> Arc<Self> {
        Arc::new(Self {
            per_webhook,
            held: Mutex::new(HashMap::new()),
        })
    }

    pub fn per_webhook(&self) -> u32 {
        self.per_webhook
    }

    /// The leases held now, per webhook (only webhooks holding some).
    pub fn held(&self) -> Vec<(String, u32)> {
        self.lock()
            .iter()
            .map(|(webhook, n)| (webhook.as_str().to_owned(), *n))
            .collect()
    }

    /// A lease on `webhook` if it holds fewer than `cap` (at most the cap of every webhook).
    pub fn try_hold(self: &Arc<Self>, webhook: &WebhookId, cap: u32) -> Option<LeaseHold> {
        let mut held = self.lock();
        let n = held.entry(webhook.clone()).or_insert(0);
        if *n >= cap.min(self.per_webhook) {
            return None;
        }
        *n += 1;
        Some(self.counted(webhook))
    }

    /// A lease on `webhook` that a claim's budget already allowed for.
    pub fn hold(self: &Arc<Self>, webhook: &WebhookId) -> LeaseHold {
        *self.lock().entry(webhook.clone()).or_insert(0) += 1;
        self.counted(webhook)
    }

    /// The hold for a lease already counted.
    fn counted(self: &Arc<Self>, webhook: &WebhookId) -> LeaseHold {
        LeaseHold {
            leases: Arc::clone(self),
            webhook: webhook.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, u32>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One lease held; dropping it gives the webhook its room back.
#[derive(Debug)]
pub struct LeaseHold {
    leases: Arc<Leases>,
    webhook: WebhookId,
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        let mut held = self.leases.lock();
        if let Some(n) = held.get_mut(&self.webhook) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.webhook);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_holds_at_most_its_cap_and_a_dropped_lease_frees_room() {
        let leases = Leases::new(2);
        let (a, b) = (WebhookId::new(), WebhookId::new());
        let first = leases.try_hold(&a, 2).expect("under the cap");
        let _second = leases.try_hold(&a, 2).expect("under the cap");
        assert!(leases.try_hold(&a, 2).is_none(), "two leases reach a cap of two");
        let _other = leases.try_hold(&b, 2).expect("another webhook has its own room");
        drop(first);
        let third = leases.try_hold(&a, 2).expect("a dropped lease frees its room");
        assert_eq!(
            leases.held().into_iter().find(|(w, _)| w == a.as_str()),
            Some((a.as_str().to_owned(), 2))
        );
        drop(third);
        drop(_second);
        assert_eq!(
            leases.held(),
            vec![(b.as_str().to_owned(), 1)],
            "a webhook holding nothing is forgotten"
        );
    }

    #[test]
    fn a_lease_a_claim_already_took_is_counted_whatever_the_cap() {
        let leases = Leases::new(1);
        let a = WebhookId::new();
        let by_publish = leases.try_hold(&a, 2).expect("under the cap");
        let by_claim = leases.hold(&a);
        assert_eq!(leases.held(), vec![(a.as_str().to_owned(), 2)]);
        drop(by_publish);
        drop(by_claim);
        assert!(leases.held().is_empty());
    }
}
