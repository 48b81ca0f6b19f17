//! At-least-once across `kill -9`: the built binary is killed with deliveries in flight and
//! restarted on the same database; every accepted event is still delivered.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::support::process::Server;
use super::support::receiver::{Reply, TestReceiver};
use super::support::{http_client, wait_all_delivered};

const EVENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_event_is_delivered_after_a_kill_9_and_restart() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("HERALD_DEV", "true"),
        (
            "HERALD_RETRY_SCHEDULE",
            "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
        ),
        ("HERALD_DELIVERY_TIMEOUT", "1s"),
    ];
    let receiver = TestReceiver::start().await;
    // Until the kill the endpoint answers nothing in time, so deliveries are in flight or
    // waiting for a retry when the process dies.
    receiver.always("/crash", Reply::status(204).after(Duration::from_secs(5)));

    let server = Server::start(dir.path(), &env);
    let key = server.admin_key();
    let client = http_client();
    let created = client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/crash"), "event_types": ["order.*"]}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(created.status(), 201);

    let mut accepted = HashSet::new();
    for i in 0..EVENTS {
        let response = client
            .post(server.url("/v1/events"))
            .bearer_auth(&key)
            .json(&json!({"event_type": "order.filled", "data": {"n": i}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 202);
        let event: serde_json::Value = response.json().await.expect("json");
        accepted.insert(event["id"].as_str().expect("id").to_owned());
    }
    receiver.wait_for("/crash", 10).await;
    server.kill_hard();
    receiver.always("/crash", Reply::status(204));

    let server = Server::start(dir.path(), &env);
    // Every accepted event is delivered: the store says so, and the receiver saw each id.
    wait_all_delivered(&server.url(""), &key, EVENTS).await;
    let seen: HashSet<String> = receiver
        .received("/crash")
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert!(accepted.is_subset(&seen));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempts_in_flight_finish_and_records_them() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("HERALD_DEV", "true"), ("HERALD_DELIVERY_TIMEOUT", "10s")];
    let receiver = TestReceiver::start().await;
    receiver.always("/slow", Reply::status(204).after(Duration::from_millis(800)));
    let server = Server::start(dir.path(), &env);
    let key = server.admin_key();
    let client = http_client();
    client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/slow")}))
        .send()
        .await
        .expect("create webhook");
    let event: serde_json::Value = client
        .post(server.url("/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"event_type": "order.filled", "data": {}}))
        .send()
        .await
        .expect("publish")
        .json()
        .await
        .expect("json");
    receiver.wait_for("/slow", 1).await;
    assert_eq!(receiver.answered("/slow"), 0, "the attempt is in flight");
    assert!(server.stop().success(), "a graceful stop");
    assert_eq!(receiver.answered("/slow"), 1, "the stop waited for the answer");

    // After a restart the delivery is already delivered, with that one attempt.
    let server = Server::start(dir.path(), &env);
    let list: serde_json::Value = client
        .get(server.url("/v1/webhooks/events"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let delivery = &list["data"][0];
    assert_eq!(delivery["event_id"], event["id"]);
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempt_count"], 1);
    assert_eq!(receiver.received("/slow").len(), 1, "not sent twice");
}
