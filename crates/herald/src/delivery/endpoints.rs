//! How many attempts this process has in flight to each webhook, at most.
//!
//! Leases and attempts are counted apart: a webhook may hold more leases than it has
//! attempts in flight, so that when an attempt ends the next one starts at once from a lease
//! already held, instead of waiting for the engine's next claim. On PostgreSQL a claim is
//! several round trips, and with the lease count as the only cap one endpoint's deliveries
//! went no faster than claims came round (measured: 64 slots cycled every ~30 ms).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::ids::WebhookId;

/// One gate per webhook with work in this process; a gate nobody holds is dropped.
pub struct Endpoints {
    per_webhook: usize,
    gates: Mutex<HashMap<WebhookId, Arc<Semaphore>>>,
}

impl Endpoints {
    pub fn new(per_webhook: u32) -> Self {
        Self {
            per_webhook: usize::try_from(per_webhook).unwrap_or(usize::MAX),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a free slot at `webhook` (first come, first served, so deliveries start in
    /// the order they were leased) and holds it until the returned [`Slot`] is dropped.
    pub async fn enter(self: &Arc<Self>, webhook: &WebhookId) -> Slot {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
            let gate = gates
                .entry(webhook.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_webhook)));
            Arc::clone(gate)
        };
        // The gate is never closed, so this only fails if it were; then go ahead unbounded.
        let permit = Arc::clone(&gate).acquire_owned().await.ok();
        Slot {
            endpoints: Arc::clone(self),
            webhook: webhook.clone(),
            gate: Some(gate),
            permit,
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.gates.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A held slot at one webhook.
pub struct Slot {
    endpoints: Arc<Endpoints>,
    webhook: WebhookId,
    gate: Option<Arc<Semaphore>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        drop(self.gate.take());
        let mut gates = self
            .endpoints
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock, so nobody can be about to take this gate.
        if gates
            .get(&self.webhook)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(&self.webhook);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_webhook_gets_at_most_its_slots_and_the_next_waits_in_turn() {
        let endpoints = Arc::new(Endpoints::new(2));
        let (a, b) = (WebhookId::new(), WebhookId::new());
        let first = endpoints.enter(&a).await;
        let _second = endpoints.enter(&a).await;
        let other = endpoints.enter(&b).await;
        let waiting = tokio::spawn({
            let endpoints = Arc::clone(&endpoints);
            let a = a.clone();
            async move { endpoints.enter(&a).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a third attempt to a full webhook waits");
        drop(other);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "another webhook's slot does not free this one"
        );
        drop(first);
        let third = waiting.await.expect("the waiting attempt gets the freed slot");
        drop(third);
        assert_eq!(
            endpoints.tracked(),
            1,
            "webhook b's gate went when its last slot did"
        );
    }

    #[tokio::test]
    async fn gates_are_dropped_once_nobody_holds_them() {
        let endpoints = Arc::new(Endpoints::new(64));
        let mut slots = Vec::new();
        for _ in 0..10 {
            slots.push(endpoints.enter(&WebhookId::new()).await);
        }
        assert_eq!(endpoints.tracked(), 10);
        drop(slots);
        assert_eq!(endpoints.tracked(), 0, "no gate outlives its last slot");
    }
}
