//! The catalog's examples and schemas: what the catalog route shows, publishing checked
//! against a type's schema (single and batch), the test route and `herald trigger` sending a
//! type's example, with the built-in catalog and with a catalog file.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::process::Server;
use super::support::receiver::TestReceiver;
use super::support::{Settings, TestApp, expect_error, expect_json};

/// One type with `example` and `schema` as JSON strings, one with inline tables, one with
/// neither.
const CATALOG: &str = r#"
[[event_types]]
type = "invoice.paid"
name = "Invoice paid"
description = "An invoice was paid in full"
example = '{"id": "inv_7", "amount": "120.00", "currency": "EUR", "lines": [{"sku": "plan-pro", "price": "120.00"}]}'
schema = '''
{
  "type": "object",
  "required": ["id", "amount", "currency"],
  "properties": {
    "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
    "currency": {"enum": ["EUR", "USD"]},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "string"}}}}
  }
}
'''

[[event_types]]
type = "invoice.voided"
description = "An invoice was voided"
example = { id = "inv_8", reason = "duplicate" }
schema = { type = "object", required = ["id", "reason"], properties = { reason = { enum = ["duplicate", "fraud"] } } }

[[event_types]]
type = "invoice.sent"
description = "An invoice was sent"
"#;

fn custom_catalog() -> Settings {
    Settings {
        dev: true,
        retry_schedule: Some("10ms,20ms,30ms".into()),
        catalog: Some(CATALOG.to_owned()),
        ..Settings::default()
    }
}

fn paid_example() -> Value {
    json!({"id": "inv_7", "amount": "120.00", "currency": "EUR", "lines": [{"sku": "plan-pro", "price": "120.00"}]})
}

/// The number of events stored in the test app's database.
fn stored_events(app: &TestApp) -> i64 {
    super::support::query_number(app.dir.path(), "SELECT count(*) FROM events")
}

/// The event of a test send's delivery is no published event: `GET /v1/events/{id}` is 404.
async fn assert_never_published(app: &TestApp, key: &str, delivery: &Value) {
    let event = format!("/v1/events/{}", delivery["event_id"].as_str().expect("event id"));
    expect_error(
        app.get(&event, key).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
}

#[tokio::test]
async fn the_catalog_route_shows_examples_and_schemas_written_either_way() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(custom_catalog()).await;
    let (_, key) = app.tenant("tenant").await;
    let list = expect_json(app.get("/v1/webhooks/event-types", &key).await, StatusCode::OK).await;
    let data = list["data"].as_array().expect("data");
    assert_eq!(
        data.len(),
        6,
        "3 of the file's, then Herald's 3 operational types"
    );
    assert_eq!(data[0]["example"], paid_example());
    assert_eq!(data[0]["schema"]["required"], json!(["id", "amount", "currency"]));
    assert_eq!(
        data[1],
        json!({
            "object": "event_type", "type": "invoice.voided", "group": "invoice",
            "name": "Invoice voided", "description": "An invoice was voided", "operational": false,
            "example": {"id": "inv_8", "reason": "duplicate"},
            "schema": {"type": "object", "required": ["id", "reason"], "properties": {"reason": {"enum": ["duplicate", "fraud"]}}}
        })
    );
    assert!(
        data[2].get("example").is_none() && data[2].get("schema").is_none(),
        "omitted when absent: {}",
        data[2]
    );
}

#[tokio::test]
async fn data_failing_its_schema_is_refused_with_the_path_and_nothing_is_stored() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(custom_catalog()).await;
    let (_, key) = app.tenant("tenant").await;
    app.publish(&key, "invoice.paid", paid_example()).await;
    app.publish(&key, "invoice.sent", json!({"anything": [1, "goes"]}))
        .await;
    assert_eq!(stored_events(&app), 2);

    let cases = [
        (
            json!({"id": "inv_9", "amount": 120, "currency": "EUR"}),
            "data.amount",
            "want string",
        ),
        (
            json!({"id": "inv_9", "amount": "120.00"}),
            "data.currency",
            "required",
        ),
        (
            json!({"id": "inv_9", "amount": "120.00", "currency": "GBP"}),
            "data.currency",
            "EUR",
        ),
        (
            json!({"id": "inv_9", "amount": "1.00", "currency": "EUR", "lines": [{"price": "1.00"}, {"price": 1}]}),
            "data.lines.1.price",
            "want string",
        ),
    ];
    for (data, param, wanted) in cases {
        let response = app
            .post(
                "/v1/events",
                &key,
                &json!({"event_type": "invoice.paid", "data": data}),
            )
            .await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_payload", Some(param)).await;
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(wanted), "{param}: {message}");
    }

    let mut events: Vec<Value> = (0..4)
        .map(|_| json!({"event_type": "invoice.paid", "data": paid_example()}))
        .collect();
    events[3]["data"]["amount"] = json!(12.5);
    let response = app
        .post("/v1/events/batch", &key, &json!({"events": events}))
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_payload",
        Some("events[3].data.amount"),
    )
    .await;
    assert_eq!(
        stored_events(&app),
        2,
        "nothing of the refused requests was stored"
    );

    events[3]["data"]["amount"] = json!("12.50");
    let accepted = expect_json(
        app.post("/v1/events/batch", &key, &json!({"events": events}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(accepted["data"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn the_test_route_sends_a_types_example_to_that_webhook_alone_and_publishes_nothing() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(custom_catalog()).await;
    let receiver = TestReceiver::start().await;
    let (_, key) = app.tenant("tenant").await;
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/t"), "event_types": ["invoice.sent"]}),
        )
        .await;
    app.create_webhook(&key, json!({"url": receiver.url("/bystander")}))
        .await;
    let test = format!("/v1/webhooks/{}/test", webhook["id"].as_str().expect("id"));

    let dlv = expect_json(
        app.post(&test, &key, &json!({"event_type": "invoice.voided"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(dlv["event_type"], "invoice.voided");
    let got = receiver.wait_for("/t", 1).await;
    let body = got[0].json();
    assert_eq!(body["event"], "invoice.voided");
    assert_eq!(body["data"], json!({"id": "inv_8", "reason": "duplicate"}));
    app.wait_status(&key, dlv["id"].as_str().expect("id"), "delivered")
        .await;
    assert_never_published(&app, &key, &dlv).await;
    assert!(
        receiver.received("/bystander").is_empty(),
        "a test goes to its webhook alone"
    );

    // Without a body: `webhook.test`, also never readable as a published event.
    let plain = expect_json(app.post(&test, &key, &json!({})).await, StatusCode::ACCEPTED).await;
    assert_eq!(plain["event_type"], "webhook.test");
    assert_never_published(&app, &key, &plain).await;

    for (event_type, code) in [
        ("invoice.refunded", "unknown_event_type"),
        ("invoice.sent", "invalid_value"),
    ] {
        let response = app.post(&test, &key, &json!({"event_type": event_type})).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, code, Some("event_type")).await;
        assert!(
            error["error"]["message"]
                .as_str()
                .expect("message")
                .contains(event_type),
            "{error}"
        );
    }
    let response = app.post(&test, &key, &json!({"event_typ": "invoice.paid"})).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("event_typ"),
    )
    .await;
}

#[tokio::test]
async fn the_built_in_examples_are_sent_by_the_test_route() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let webhook = app
        .create_webhook(
            &app.admin_key,
            json!({"url": receiver.url("/t"), "event_types": ["kyc.*"]}),
        )
        .await;
    let list = expect_json(
        app.get("/v1/webhooks/event-types", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    let filled = list["data"]
        .as_array()
        .and_then(|types| types.iter().find(|t| t["type"] == "order.filled"))
        .expect("order.filled")
        .clone();
    let test = format!("/v1/webhooks/{}/test", webhook["id"].as_str().expect("id"));
    expect_json(
        app.post(&test, &app.admin_key, &json!({"event_type": "order.filled"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let got = receiver.wait_for("/t", 1).await;
    assert_eq!(got[0].json()["event"], "order.filled");
    assert_eq!(got[0].json()["data"], filled["example"]);
    assert_eq!(got[0].json()["data"]["symbol"], "AAPL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_trigger_without_data_sends_the_catalog_example() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).expect("write catalog");
    let catalog = catalog.display().to_string();
    let server = Server::start(
        dir.path(),
        &[("HERALD_DEV", "true"), ("HERALD_CATALOG", &catalog)],
    );
    let key = server.admin_key();
    let receiver = TestReceiver::start().await;
    let created = super::support::http_client()
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/hook"), "event_types": ["invoice.*"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);

    let trigger = |event_type: &str| {
        std::process::Command::new(super::support::process::binary())
            .args(["trigger", event_type])
            .env("HERALD_URL", server.url(""))
            .env("HERALD_KEY", &key)
            .output()
            .expect("trigger")
    };
    let sent = trigger("invoice.paid");
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let got = receiver.wait_for("/hook", 1).await;
    assert_eq!(got[0].json()["event"], "invoice.paid");
    assert_eq!(got[0].json()["data"], paid_example());

    let unknown = trigger("invoice.refunded");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(
        stderr.contains("`invoice.refunded` is not an event type in the catalog"),
        "{stderr}"
    );
    let bare = trigger("invoice.sent");
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success());
    assert!(
        stderr.contains("no example") && stderr.contains("--data"),
        "{stderr}"
    );
    assert_eq!(receiver.received("/hook").len(), 1, "nothing else was published");
}
