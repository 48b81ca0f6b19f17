//! `POST /v1/events/batch`: many events in one durable commit, validated as a whole.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::receiver::TestReceiver;
use super::support::{TestApp, expect_error, expect_json};

async fn batch(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.post("/v1/events/batch", key, body).await
}

#[tokio::test]
async fn a_batch_stores_every_event_in_order_and_each_is_delivered() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    app.create_webhook(
        &app.admin_key,
        json!({"url": receiver.url("/batch"), "event_types": ["order.*"]}),
    )
    .await;
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"event_type": "order.filled", "data": {"n": i}}))
        .chain([json!({"event_type": "account.created", "data": {"n": 50}})])
        .collect();
    let answer = expect_json(
        batch(&app, &app.admin_key, &json!({"events": events})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(answer["object"], "list");
    let data = answer["data"].as_array().expect("data");
    assert_eq!(data.len(), 51);
    for (i, event) in data.iter().enumerate() {
        assert_eq!(event["object"], "event");
        let expected = if i < 50 { 1 } else { 0 };
        assert_eq!(event["deliveries"], expected, "{event}");
        let stored = expect_json(
            app.get(
                &format!("/v1/events/{}", event["id"].as_str().expect("id")),
                &app.admin_key,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(stored["data"]["n"], i, "in order");
    }
    let received = receiver.wait_for("/batch", 50).await;
    let mut seen: Vec<i64> = received
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().expect("n"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>(), "each delivered once");
}

#[tokio::test]
async fn one_invalid_item_refuses_the_whole_batch_naming_it() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let good = json!({"event_type": "order.filled", "data": {}, "id": "first-of-a-bad-batch"});
    let cases = [
        (
            json!({"event_type": "order.nope", "data": {}}),
            "events[3].event_type",
            "unknown_event_type",
        ),
        (
            json!({"event_type": "order.filled", "data": [1]}),
            "events[3].data",
            "invalid_value",
        ),
        (
            json!({"event_type": "order.filled", "data": {}, "extra": 1}),
            "events[3].extra",
            "unknown_field",
        ),
        (json!({"data": {}}), "events[3].event_type", "missing_field"),
        (json!(1), "events[3]", "invalid_value"),
    ];
    for (bad, param, code) in cases {
        let events = json!([good, good, good, bad]);
        let response = batch(&app, &app.admin_key, &json!({"events": events})).await;
        expect_error(response, StatusCode::BAD_REQUEST, code, Some(param)).await;
    }
    // Nothing was stored: the first item's caller id is still free.
    let single = app.post("/v1/events", &app.admin_key, &good).await;
    assert_eq!(
        single.status(),
        StatusCode::ACCEPTED,
        "not a repeat: nothing was stored"
    );
}

#[tokio::test]
async fn the_number_of_events_must_be_1_to_1000() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let one = json!({"event_type": "order.filled", "data": {}});
    for events in [json!([]), Value::Array(vec![one.clone(); 1001])] {
        let response = batch(&app, &app.admin_key, &json!({"events": events})).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_value", Some("events")).await;
    }
    let missing = batch(&app, &app.admin_key, &json!({})).await;
    expect_error(missing, StatusCode::BAD_REQUEST, "missing_field", Some("events")).await;
    let full = batch(&app, &app.admin_key, &json!({"events": vec![one; 1000]})).await;
    let full = expect_json(full, StatusCode::ACCEPTED).await;
    assert_eq!(full["data"].as_array().map(Vec::len), Some(1000));
}

#[tokio::test]
async fn a_repeated_caller_id_answers_with_the_original_and_creates_nothing() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let earlier = app
        .post(
            "/v1/events",
            &app.admin_key,
            &json!({"event_type": "order.filled", "data": {"v": 1}, "id": "ord-1"}),
        )
        .await;
    let earlier = expect_json(earlier, StatusCode::ACCEPTED).await;
    let events = json!([
        {"event_type": "order.filled", "data": {"v": 2}, "id": "ord-1"},
        {"event_type": "order.filled", "data": {"v": 3}, "id": "ord-2"},
        {"event_type": "order.filled", "data": {"v": 4}, "id": "ord-2"},
    ]);
    let answer = expect_json(
        batch(&app, &app.admin_key, &json!({"events": events})).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let ids: Vec<&str> = answer["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids[0],
        earlier["id"].as_str().expect("id"),
        "the earlier original"
    );
    assert_eq!(ids[1], ids[2], "the repeat within the batch gives the first");
    assert_ne!(ids[1], ids[0]);
}

#[tokio::test]
async fn a_tenant_batches_for_its_own_org_only_and_an_investor_not_at_all() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, tenant) = app.tenant("tenant").await;
    let (_, investor) = app.tenant("investor").await;
    let other = json!({"events": [{"event_type": "order.filled", "data": {}, "org_id": app.admin_org}]});
    let response = batch(&app, &tenant, &other).await;
    expect_error(
        response,
        StatusCode::FORBIDDEN,
        "forbidden",
        Some("events[0].org_id"),
    )
    .await;
    let own = json!({"events": [{"event_type": "order.filled", "data": {}}]});
    assert_eq!(batch(&app, &tenant, &own).await.status(), StatusCode::ACCEPTED);
    let response = batch(&app, &investor, &own).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
}

#[tokio::test]
async fn a_body_over_16_mib_is_a_413() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let big = "x".repeat(200_000);
    let events: Vec<Value> = (0..90)
        .map(|_| json!({"event_type": "order.filled", "data": {"pad": big}}))
        .collect();
    let response = app
        .request(Method::POST, "/v1/events/batch", &app.admin_key)
        .json(&json!({"events": events}))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;
}
