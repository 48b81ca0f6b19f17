//! Operational events (API.md section 11): Herald announces a webhook disabled (a 410 or the
//! failure clock), enabled again, and a delivery failed for good, into the webhook's org and
//! the operator's, to the webhooks that name those types, exactly once per change.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::receiver::{Received, Reply, TestReceiver};
use super::support::{Settings, TestApp, expect_error, expect_json};

/// A webhook at `path` of `receiver` subscribed to `events` (`None`: every type); its id.
async fn webhook(
    app: &TestApp,
    key: &str,
    receiver: &TestReceiver,
    path: &str,
    events: Option<Value>,
) -> String {
    let mut body = json!({"url": receiver.url(path)});
    if let Some(events) = events {
        body["event_types"] = events;
    }
    let w = app.create_webhook(key, body).await;
    w["id"].as_str().expect("id").to_owned()
}

/// The bodies a receiver path got, in arrival order.
fn bodies(received: &[Received]) -> Vec<Value> {
    received.iter().map(Received::json).collect()
}

/// The `event` of each body a receiver path got.
fn types_at(receiver: &TestReceiver, path: &str) -> Vec<String> {
    bodies(&receiver.received(path))
        .iter()
        .map(|b| b["event"].as_str().expect("event").to_owned())
        .collect()
}

/// Waits for the first body of `event_type` at `path`.
async fn wait_for_type(receiver: &TestReceiver, path: &str, event_type: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(body) = bodies(&receiver.received(path))
            .into_iter()
            .find(|b| b["event"] == event_type)
        {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {event_type} at {path}: {:?}",
            types_at(receiver, path)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How many delivery events of `event_type` the org behind `key` has: each published event
/// makes one per subscribed webhook, so this counts announcements without waiting for arrivals.
async fn deliveries_of_type(app: &TestApp, key: &str, event_type: &str) -> usize {
    let list = expect_json(
        app.get(
            &format!("/v1/webhooks/events?limit=100&event_type={event_type}"),
            key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    list["data"].as_array().expect("data").len()
}

#[tokio::test]
async fn a_410_announces_the_disabled_webhook_to_its_org_and_the_operator_and_enabling_it_again_too() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (tenant_org, tenant) = app.tenant("tenant").await;
    receiver.next("/gone", 1, Reply::status(410));
    let gone = webhook(&app, &tenant, &receiver, "/gone", Some(json!(["order.*"]))).await;
    webhook(
        &app,
        &tenant,
        &receiver,
        "/tenant-ops",
        Some(json!(["webhook.disabled"])),
    )
    .await;
    webhook(&app, &tenant, &receiver, "/everything", None).await;
    webhook(&app, &tenant, &receiver, "/star", Some(json!(["*"]))).await;
    let admin = app.admin_key.clone();
    webhook(
        &app,
        &admin,
        &receiver,
        "/operator-ops",
        Some(json!(["webhook.*"])),
    )
    .await;

    app.publish(&tenant, "order.filled", json!({"id": "ord_1"})).await;
    let tenant_told = receiver.wait_for("/tenant-ops", 1).await;
    let operator_told = receiver.wait_for("/operator-ops", 1).await;
    for told in [&tenant_told[0], &operator_told[0]] {
        let body = told.json();
        assert_eq!(body["event"], "webhook.disabled");
        let data = &body["data"];
        assert_eq!(data["webhook_id"], gone.as_str());
        assert_eq!(data["org_id"], tenant_org.as_str());
        assert_eq!(data["url"], receiver.url("/gone"));
        assert_eq!(data["reason"], "gone");
        assert!(
            data["disabled_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{data}"
        );
        assert!(
            !told.header("webhook-signature").is_empty(),
            "signed like any event"
        );
    }
    // Readable as an event in each org it was published into, and only there.
    let tenant_event = tenant_told[0].json()["id"].as_str().expect("id").to_owned();
    let event = expect_json(
        app.get(&format!("/v1/events/{tenant_event}"), &tenant).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(event["event_type"], "webhook.disabled");
    let operator_event = operator_told[0].json()["id"].as_str().expect("id").to_owned();
    assert_ne!(operator_event, tenant_event, "one event per org");
    let response = app.get(&format!("/v1/events/{operator_event}"), &tenant).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let path = format!("/v1/webhooks/{gone}");
    expect_json(
        app.patch(&path, &tenant, &json!({"status": "active"})).await,
        StatusCode::OK,
    )
    .await;
    let enabled = wait_for_type(&receiver, "/operator-ops", "webhook.enabled").await;
    assert_eq!(enabled["data"]["webhook_id"], gone.as_str());
    assert_eq!(enabled["data"]["org_id"], tenant_org.as_str());
    assert!(enabled["data"]["enabled_at"].is_string());
    // Enabling a webhook that is already active announces nothing.
    expect_json(
        app.patch(&path, &tenant, &json!({"status": "active"})).await,
        StatusCode::OK,
    )
    .await;

    // Announced once each: the enabling came after the disabling, so every announcement of
    // the disabling is stored by now.
    assert_eq!(deliveries_of_type(&app, &tenant, "webhook.disabled").await, 1);
    assert_eq!(deliveries_of_type(&app, &tenant, "webhook.enabled").await, 0);
    assert_eq!(deliveries_of_type(&app, &admin, "webhook.disabled").await, 1);
    assert_eq!(deliveries_of_type(&app, &admin, "webhook.enabled").await, 1);
    // `*` and "every type" never include operational events.
    assert_eq!(types_at(&receiver, "/everything"), ["order.filled"]);
    assert_eq!(types_at(&receiver, "/star"), ["order.filled"]);
}

#[tokio::test]
async fn the_failure_clock_announces_the_webhook_disabled_as_failing() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("30ms,30ms,30ms,30ms,30ms".into()),
        disable_after: Some("100ms".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/dead", Reply::status(500));
    let (tenant_org, tenant) = app.tenant("tenant").await;
    let dead = webhook(&app, &tenant, &receiver, "/dead", Some(json!(["order.*"]))).await;
    webhook(
        &app,
        &tenant,
        &receiver,
        "/tenant-ops",
        Some(json!(["webhook.disabled"])),
    )
    .await;
    let admin = app.admin_key.clone();
    webhook(
        &app,
        &admin,
        &receiver,
        "/operator-ops",
        Some(json!(["webhook.disabled"])),
    )
    .await;
    app.publish(&tenant, "order.filled", json!({})).await;
    for path in ["/tenant-ops", "/operator-ops"] {
        let told = receiver.wait_for(path, 1).await;
        let data = told[0].json()["data"].clone();
        assert_eq!(data["webhook_id"], dead.as_str(), "{path}");
        assert_eq!(data["org_id"], tenant_org.as_str(), "{path}");
        assert_eq!(data["reason"], "failing", "{path}");
    }
    assert_eq!(deliveries_of_type(&app, &tenant, "webhook.disabled").await, 1);
    assert_eq!(deliveries_of_type(&app, &admin, "webhook.disabled").await, 1);
}

#[tokio::test]
async fn a_delivery_failed_for_good_is_announced_once_and_a_failing_announcement_announces_nothing() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (tenant_org, tenant) = app.tenant("tenant").await;
    receiver.always("/dead", Reply::status(503));
    // The tenant's own watcher fails too: its delivery of `delivery.failed` ends failed and
    // must not announce itself.
    receiver.always("/tenant-ops", Reply::status(500));
    let dead = webhook(&app, &tenant, &receiver, "/dead", Some(json!(["order.*"]))).await;
    let watcher = webhook(
        &app,
        &tenant,
        &receiver,
        "/tenant-ops",
        Some(json!(["delivery.failed"])),
    )
    .await;
    let admin = app.admin_key.clone();
    webhook(
        &app,
        &admin,
        &receiver,
        "/operator-ops",
        Some(json!(["delivery.*", "webhook.enabled"])),
    )
    .await;

    let event = app.publish(&tenant, "order.filled", json!({})).await;
    let event_id = event["id"].as_str().expect("id");
    let delivery = app.deliveries_of(&tenant, event_id).await[0].clone();
    let delivery_id = delivery["id"].as_str().expect("id");
    let failed = app.wait_status(&tenant, delivery_id, "failed").await;

    let told = receiver.wait_for("/operator-ops", 1).await[0].json();
    assert_eq!(told["event"], "delivery.failed");
    assert_eq!(
        told["data"],
        json!({
            "delivery_id": delivery_id,
            "event_id": event_id,
            "event_type": "order.filled",
            "webhook_id": dead,
            "org_id": tenant_org,
            "attempts": failed["attempt_count"],
            "last_error": "http_status",
            "last_response_status": 503,
        })
    );
    // The watcher's own delivery of it runs out of retries too.
    let announcement = receiver.wait_for("/tenant-ops", 1).await[0].json();
    assert_eq!(announcement["data"]["delivery_id"], delivery_id);
    let list = expect_json(
        app.get(&format!("/v1/webhooks/events?webhook_id={watcher}"), &tenant)
            .await,
        StatusCode::OK,
    )
    .await;
    let watched = list["data"][0]["id"].as_str().expect("id").to_owned();
    app.wait_status(&tenant, &watched, "failed").await;

    // A barrier: an announcement made after that failure; once it is stored, so is anything
    // the failure could have announced.
    let path = format!("/v1/webhooks/{watcher}");
    expect_json(
        app.patch(&path, &tenant, &json!({"status": "disabled"})).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.patch(&path, &tenant, &json!({"status": "active"})).await,
        StatusCode::OK,
    )
    .await;
    wait_for_type(&receiver, "/operator-ops", "webhook.enabled").await;
    assert_eq!(deliveries_of_type(&app, &tenant, "delivery.failed").await, 1);
    assert_eq!(deliveries_of_type(&app, &admin, "delivery.failed").await, 1);
}

#[tokio::test]
async fn operational_types_cannot_be_published_but_can_be_subscribed_to_by_name() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let key = app.admin_key.clone();
    for event_type in ["webhook.disabled", "webhook.enabled", "delivery.failed"] {
        let response = app
            .post("/v1/events", &key, &json!({"event_type": event_type, "data": {}}))
            .await;
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "reserved_event_type",
            Some("event_type"),
        )
        .await;
    }
    let batch = json!({"events": [
        {"event_type": "order.filled", "data": {}},
        {"event_type": "delivery.failed", "data": {}},
    ]});
    let response = app.post("/v1/events/batch", &key, &batch).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "reserved_event_type",
        Some("events[1].event_type"),
    )
    .await;

    let catalog = expect_json(app.get("/v1/webhooks/event-types", &key).await, StatusCode::OK).await;
    let operational: Vec<&str> = catalog["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|t| t["operational"] == true)
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert_eq!(
        operational,
        ["webhook.disabled", "webhook.enabled", "delivery.failed"]
    );
    for events in [
        json!(["webhook.*"]),
        json!(["delivery.*"]),
        json!(["delivery.failed", "order.*"]),
    ] {
        let w = app
            .create_webhook(
                &key,
                json!({"url": "https://example.com/ops", "event_types": events}),
            )
            .await;
        assert_eq!(w["event_types"], events);
    }
}
