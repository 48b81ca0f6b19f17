//! How many attempts this process has in flight to each webhook, at most, and the [`Target`]
//! they share while they overlap.
//!
//! Leases and attempts are counted apart: a webhook may hold more leases than it has
//! attempts in flight, so that when an attempt ends the next one starts at once from a lease
//! already held, instead of waiting for the engine's next claim. On PostgreSQL a claim is
//! several round trips, and with the lease count as the only cap one endpoint's deliveries
//! went no faster than claims came round (measured: 64 slots cycled every ~30 ms).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::attempt::{Opened, Sealed, Target};
use crate::domain::ids::WebhookId;

/// One gate per webhook with work in this process; a gate nobody holds is dropped.
pub struct Endpoints {
    per_webhook: usize,
    gates: Mutex<HashMap<WebhookId, Arc<Gate>>>,
}

/// A webhook's slots, and the [`Target`] its attempts share while they overlap: it goes with
/// the gate, so opened secrets stay in memory only while the webhook has attempts in flight.
struct Gate {
    slots: Arc<Semaphore>,
    target: Mutex<Option<Arc<Target>>>,
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
            let gate = gates.entry(webhook.clone()).or_insert_with(|| {
                Arc::new(Gate {
                    slots: Arc::new(Semaphore::new(self.per_webhook)),
                    target: Mutex::new(None),
                })
            });
            Arc::clone(gate)
        };
        // The gate is never closed, so this only fails if it were; then go ahead unbounded.
        let permit = Arc::clone(&gate.slots).acquire_owned().await.ok();
        Slot {
            endpoints: Arc::clone(self),
            webhook: webhook.clone(),
            gate,
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
    gate: Arc<Gate>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// The webhook's [`Target`] for this url and these sealed secrets and headers: the one an
    /// overlapping attempt prepared if it was prepared from the same, else a new one (see
    /// [`Target::prepare`] for `open`), which replaces it.
    pub fn target(
        &self,
        url: &str,
        sealed: Sealed<'_>,
        open: impl FnOnce(Sealed<'_>) -> Opened,
    ) -> Arc<Target> {
        let shared = || self.gate.target.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(target) = shared().as_ref().filter(|t| t.is_for(url, sealed)) {
            return Arc::clone(target);
        }
        // Prepared outside the lock (it decrypts); two attempts may both prepare, and the
        // last one's is kept.
        let target = Arc::new(Target::prepare(url, sealed, open));
        *shared() = Some(Arc::clone(&target));
        target
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut gates = self
            .endpoints
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock, so nobody can be about to take this gate:
        // held by the map and this slot alone, it has no other slot.
        if gates
            .get(&self.webhook)
            .is_some_and(|gate| Arc::strong_count(gate) == 2)
        {
            gates.remove(&self.webhook);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// An `open` that counts its calls and opens nothing.
    fn counted(opened: &AtomicUsize) -> impl FnOnce(Sealed<'_>) -> Opened + '_ {
        |_| {
            opened.fetch_add(1, Ordering::Relaxed);
            Opened::default()
        }
    }

    /// Sealed secrets without headers.
    fn secrets(sealed: &[Vec<u8>]) -> Sealed<'_> {
        Sealed {
            secrets: sealed,
            headers: None,
        }
    }

    #[tokio::test]
    async fn overlapping_attempts_share_a_target_until_its_url_secrets_or_headers_change() {
        let endpoints = Arc::new(Endpoints::new(4));
        let webhook = WebhookId::new();
        let (first, second) = (endpoints.enter(&webhook).await, endpoints.enter(&webhook).await);
        let opened = AtomicUsize::new(0);
        let (url, sealed) = ("https://example.com/a", vec![b"one".to_vec()]);
        let a = first.target(url, secrets(&sealed), counted(&opened));
        let b = second.target(url, secrets(&sealed), counted(&opened));
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second attempt reuses the first's target"
        );
        assert_eq!(opened.load(Ordering::Relaxed), 1);

        let rotated = vec![b"two".to_vec(), b"one".to_vec()];
        let c = second.target(url, secrets(&rotated), counted(&opened));
        assert!(!Arc::ptr_eq(&b, &c), "a rotated secret makes a new target");
        let moved = "https://example.com/b";
        let d = first.target(moved, secrets(&rotated), counted(&opened));
        assert!(!Arc::ptr_eq(&c, &d), "a new url makes a new target");
        assert!(d.is_for(moved, secrets(&rotated)) && !d.is_for(url, secrets(&rotated)));
        let with_headers = Sealed {
            secrets: &rotated,
            headers: Some(b"headers"),
        };
        let e = first.target(moved, with_headers, counted(&opened));
        assert!(!Arc::ptr_eq(&d, &e), "new headers make a new target");
        assert!(e.is_for(moved, with_headers) && !e.is_for(moved, secrets(&rotated)));
        assert_eq!(opened.load(Ordering::Relaxed), 4);

        drop((first, second));
        let later = endpoints.enter(&webhook).await;
        later.target(moved, with_headers, counted(&opened));
        assert_eq!(
            opened.load(Ordering::Relaxed),
            5,
            "once no attempt was in flight, the opened secrets were gone with the gate"
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
