//! A webhook's `ordering: "fifo"`: one attempt at a time, in the order the events were
//! accepted; a retrying delivery holds back the rest until it ends; manual retries and replays
//! queue behind what is pending; the order can be switched on a webhook with a backlog.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::receiver::{Received, Reply, TestReceiver};
use super::support::{TestApp, expect_error, expect_json};

/// The event ids a receiver path got, in arrival order.
pub fn arrival_ids(received: &[Received]) -> Vec<String> {
    let mut sorted: Vec<&Received> = received.iter().collect();
    sorted.sort_by_key(|r| r.at);
    sorted.iter().map(|r| r.header("webhook-id").to_owned()).collect()
}

/// Asserts no request to a receiver that answers each after `held` overlapped another: each
/// arrived at least `held` after the one before it.
pub fn assert_one_at_a_time(received: &[Received], held: Duration) {
    let mut at: Vec<_> = received.iter().map(|r| r.at).collect();
    at.sort();
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= held,
            "two attempts in flight at once: arrivals {:?} apart",
            pair[1] - pair[0]
        );
    }
}

async fn fifo_webhook(app: &TestApp, key: &str, url: String) -> Value {
    let webhook = app
        .create_webhook(
            key,
            json!({"url": url, "event_types": ["order.*"], "ordering": "fifo"}),
        )
        .await;
    assert_eq!(webhook["ordering"], "fifo");
    webhook
}

async fn publish_ids(app: &TestApp, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let event = app.publish(key, "order.filled", json!({"n": i})).await;
        ids.push(event["id"].as_str().expect("id").to_owned());
    }
    ids
}

#[tokio::test]
async fn a_fifo_webhook_gets_one_at_a_time_in_order_and_a_failing_head_holds_the_rest() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, key) = app.tenant("tenant").await;
    let held = Duration::from_millis(30);
    // The 3rd delivery fails twice, then succeeds.
    receiver.next("/fifo", 2, Reply::status(204).after(held));
    receiver.next("/fifo", 2, Reply::status(500).after(held));
    receiver.always("/fifo", Reply::status(204).after(held));
    fifo_webhook(&app, &key, receiver.url("/fifo")).await;

    let ids = publish_ids(&app, &key, 10).await;
    let received = receiver.wait_for("/fifo", 12).await;
    let mut expected: Vec<String> = ids[..3].to_vec();
    expected.extend([ids[2].clone(), ids[2].clone()]);
    expected.extend(ids[3..].iter().cloned());
    assert_eq!(
        arrival_ids(&received),
        expected,
        "in acceptance order, the 3rd retried before anything after it"
    );
    assert_one_at_a_time(&received, held);
}

#[tokio::test]
async fn a_retry_and_a_replay_queue_behind_the_deliveries_already_pending() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, key) = app.tenant("tenant").await;
    receiver.always("/fifo", Reply::status(500));
    let webhook = fifo_webhook(&app, &key, receiver.url("/fifo")).await;
    let webhook_id = webhook["id"].as_str().expect("id");
    let failed = publish_ids(&app, &key, 2).await;
    let mut failed_deliveries = Vec::new();
    for id in &failed {
        let delivery = app.deliveries_of(&key, id).await.remove(0);
        let id = delivery["id"].as_str().expect("id").to_owned();
        failed_deliveries.push(app.wait_status(&key, &id, "failed").await);
    }
    let before = receiver.received("/fifo").len();

    // The endpoint recovers but is slow: while the first new event is in flight, the second
    // waits, then the second failed delivery is retried and the first replayed.
    receiver.always("/fifo", Reply::status(204).after(Duration::from_millis(400)));
    let pending = publish_ids(&app, &key, 2).await;
    let retried = expect_json(
        app.post(
            &format!(
                "/v1/webhooks/events/{}/retry",
                failed_deliveries[1]["id"].as_str().expect("id")
            ),
            &key,
            &json!({}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(retried["status"], "queued");
    let replayed = expect_json(
        app.post(
            &format!("/v1/webhooks/{webhook_id}/replay"),
            &key,
            &json!({"since": failed_deliveries[0]["created_at"]}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(replayed["queued"], 1, "only the first is still failed");

    let received = receiver.wait_for("/fifo", before + 4).await;
    let mut sorted = received.clone();
    sorted.sort_by_key(|r| r.at);
    assert_eq!(
        arrival_ids(&sorted[before..]),
        vec![
            pending[0].clone(),
            pending[1].clone(),
            failed[1].clone(),
            failed[0].clone()
        ],
        "the retry and the replay went behind the pending deliveries, in the order they were queued"
    );
}

#[tokio::test]
async fn fifo_turns_on_and_off_on_a_webhook_with_a_backlog_and_nothing_is_lost() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, key) = app.tenant("tenant").await;
    let held = Duration::from_millis(20);
    receiver.always("/hook", Reply::status(204).after(held));
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/hook"), "event_types": ["order.*"]}),
        )
        .await;
    assert_eq!(webhook["ordering"], "none", "unordered by default");
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));

    let mut ids = publish_ids(&app, &key, 40).await;
    let on = expect_json(
        app.patch(&path, &key, &json!({"ordering": "fifo"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(on["ordering"], "fifo");
    ids.extend(publish_ids(&app, &key, 20).await);
    let received = receiver.wait_for("/hook", 60).await;
    // What was published after the switch went one at a time, each after every earlier one.
    let order = arrival_ids(&received);
    let fifo_part: Vec<String> = order
        .iter()
        .filter(|id| ids[40..].contains(*id))
        .cloned()
        .collect();
    assert_eq!(fifo_part, ids[40..].to_vec());
    let last_before_switch = order
        .iter()
        .rposition(|id| ids[..40].contains(id))
        .expect("the backlog arrived");
    let first_after = order
        .iter()
        .position(|id| ids[40..].contains(id))
        .expect("the rest arrived");
    assert!(
        last_before_switch < first_after,
        "nothing published after the switch overtook the backlog"
    );

    let off = expect_json(
        app.patch(&path, &key, &json!({"ordering": "none"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(off["ordering"], "none");
    ids.extend(publish_ids(&app, &key, 20).await);
    let received = receiver.wait_for("/hook", 80).await;
    let mut got = arrival_ids(&received);
    got.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(got, all, "every event delivered exactly once");
}

#[tokio::test]
async fn a_bad_ordering_is_refused_on_create_and_patch() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let key = app.admin_key.clone();
    let bad = [
        json!("FIFO"),
        json!("lifo"),
        json!(null),
        json!(true),
        json!(1),
        json!(["fifo"]),
    ];
    for ordering in &bad {
        expect_error(
            app.post(
                "/v1/webhooks",
                &key,
                &json!({"url": "https://example.com/hook", "ordering": ordering}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("ordering"),
        )
        .await;
    }
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/hook", "ordering": "fifo"}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));
    for ordering in &bad {
        expect_error(
            app.patch(&path, &key, &json!({"ordering": ordering})).await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("ordering"),
        )
        .await;
    }
    let renamed = expect_json(
        app.patch(&path, &key, &json!({"name": "n"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["ordering"], "fifo", "a PATCH of other fields keeps it");
}
