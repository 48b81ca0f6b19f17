//! The lease rules of recording an attempt, on the real store of each backend: a record made
//! after its lease ran out (and another claim took the delivery) only counts the attempt,
//! unless it delivered; a canceled delivery stays canceled. HTTP cannot make a lease run out
//! on demand, so these drive the store itself, against the same database a server would use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald::delivery::leases::EngineLeasing;
use herald::domain::error_class::ErrorClass;
use herald::domain::ids::{AttemptId, EventId, OrgId, WebhookId};
use herald::domain::time::{Millis, now_ms};
use herald::store::postgres::{PoolSettings, PostgresStore};
use herald::store::sqlite::SqliteStore;
use herald::store::{
    Attempt, AttemptRecord, ClaimRequest, Claimed, DeliveryStatus, NewEvent, NewWebhook, Next, Org, OrgScope,
    Store,
};

use super::support::database_url;
use crate::Backend;

async fn open(dir: &Path) -> Arc<dyn Store> {
    match super::BACKEND {
        Backend::Sqlite => Arc::new(SqliteStore::open(&dir.join("herald.db")).await.expect("open")),
        Backend::Postgres => {
            let settings = PoolSettings {
                max_connections: 4,
                statement_timeout: Duration::from_secs(30),
            };
            Arc::new(
                PostgresStore::open(&database_url(dir), &settings)
                    .await
                    .expect("open"),
            )
        }
    }
}

/// A store with one webhook and one pending delivery to it, published at the returned time.
async fn one_pending_delivery(dir: &Path) -> (Arc<dyn Store>, WebhookId, Millis) {
    let store = open(dir).await;
    let now = now_ms();
    let org = Org {
        id: OrgId::new(),
        name: "acme".into(),
        retention_ms: None,
        created_at: now,
    };
    store.create_org(org.clone()).await.expect("org");
    let webhook = WebhookId::new();
    store
        .create_webhook(NewWebhook {
            id: webhook.clone(),
            org_id: org.id.clone(),
            name: None,
            description: None,
            url: "https://example.com/hook".into(),
            event_types: None,
            filter: None,
            headers_ciphertext: None,
            rate_limit: None,
            ordering: Default::default(),
            secret_ciphertext: vec![1, 2, 3],
            secret_last4: "abcd".into(),
            now,
        })
        .await
        .expect("webhook");
    store
        .publish(NewEvent {
            id: EventId::new(),
            org_id: org.id,
            event_type: "order.filled".into(),
            payload: "{}".into(),
            source_id: None,
            dedup_after: 0,
            only_webhook: None,
            now,
            lease: None,
        })
        .await
        .expect("publish");
    (store, webhook, now)
}

/// The one delivery a claim at `now` leases until `until`.
async fn claim_one(store: &dyn Store, now: Millis, until: Millis) -> Claimed {
    let (leases, _handed) = EngineLeasing::new(
        64,
        Arc::new(tokio::sync::Semaphore::new(64)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let mut claim = store
        .claim_due(ClaimRequest {
            now,
            lease_until: until,
            limit: 1,
            leases,
        })
        .await
        .expect("claim");
    assert_eq!(claim.jobs.len(), 1, "one delivery is due");
    claim.jobs.remove(0)
}

/// One attempt of `job` with outcome `next`.
fn attempt(job: &Claimed, next: Next, now: Millis) -> AttemptRecord {
    let delivered = next == Next::Delivered;
    AttemptRecord {
        seq: job.seq,
        claim_token: job.claim_token,
        webhook_id: job.webhook_id.clone(),
        attempt: Attempt {
            id: AttemptId::new(),
            delivery_id: job.delivery_id.clone(),
            attempt_number: job.attempt_count + 1,
            started_at: now,
            duration_ms: 1,
            response_status: Some(if delivered { 204 } else { 500 }),
            response_body: None,
            response_body_truncated: false,
            error: (!delivered).then_some(ErrorClass::HttpStatus),
            error_message: None,
            signature: None,
        },
        next,
        disable_if_failing_since: 0,
        now,
    }
}

#[tokio::test]
async fn a_record_after_its_lease_ran_out_only_counts_the_attempt_unless_it_delivered() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, now) = one_pending_delivery(dir.path()).await;
    let first = claim_one(store.as_ref(), now, now + 10).await;
    // The first lease runs out; another claim takes the delivery.
    let second = claim_one(store.as_ref(), now + 20, now + 60_000).await;
    assert_eq!(second.delivery_id, first.delivery_id);
    let state = || store.get_delivery(OrgScope::Any, first.delivery_id.clone());

    for late in [Next::Failed, Next::RetryAt(now + 30)] {
        store
            .record_attempts(vec![attempt(&first, late, now + 25)])
            .await
            .expect("record");
    }
    let after_late = state().await.expect("get").expect("delivery");
    assert_eq!(
        after_late.status,
        DeliveryStatus::Pending,
        "the late records change nothing"
    );
    assert_eq!(after_late.attempt_count, 2, "but they are counted");
    assert_eq!(
        after_late.next_attempt_at,
        Some(now + 60_000),
        "the second lease still holds"
    );

    store
        .record_attempts(vec![attempt(&second, Next::RetryAt(now + 90_000), now + 30)])
        .await
        .expect("record");
    let retried = state().await.expect("get").expect("delivery");
    assert_eq!(
        retried.next_attempt_at,
        Some(now + 90_000),
        "the holder's record counts"
    );

    store
        .record_attempts(vec![attempt(&first, Next::Delivered, now + 40)])
        .await
        .expect("record");
    let delivered = state().await.expect("get").expect("delivery");
    assert_eq!(
        delivered.status,
        DeliveryStatus::Delivered,
        "delivered whoever holds the lease"
    );
    assert_eq!(delivered.attempt_count, 4);
    assert_eq!(delivered.next_attempt_at, None);
    assert_eq!(
        store.queue_stats().await.expect("stats").pending,
        0,
        "nothing is left queued"
    );
}

#[tokio::test]
async fn a_canceled_delivery_stays_canceled_whatever_its_attempt_brings() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, webhook, now) = one_pending_delivery(dir.path()).await;
    let job = claim_one(store.as_ref(), now, now + 60_000).await;
    assert!(
        store
            .delete_webhook(OrgScope::Any, webhook, now + 1)
            .await
            .expect("delete")
    );
    store
        .record_attempts(vec![attempt(&job, Next::Delivered, now + 2)])
        .await
        .expect("record");
    let delivery = store
        .get_delivery(OrgScope::Any, job.delivery_id.clone())
        .await
        .expect("get")
        .expect("delivery");
    assert_eq!(delivery.status, DeliveryStatus::Canceled);
    assert_eq!(delivery.attempt_count, 1, "the attempt is counted");
    assert_eq!(store.queue_stats().await.expect("stats").pending, 0);
}
