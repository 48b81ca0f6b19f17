//! Retention: events past it whose deliveries have all ended go, with their deliveries and
//! attempts; an event with a pending delivery stays, whatever its age, and is still delivered.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::receiver::{Reply, TestReceiver};
use super::support::{Settings, TestApp, expect_json, metric_value};

/// Polls until `path` answers 404 (within the contract's minute), and returns how long it took.
async fn wait_gone(app: &TestApp, path: &str) -> Duration {
    let start = Instant::now();
    loop {
        let status = app.get(path, &app.admin_key).await.status();
        if status == StatusCode::NOT_FOUND {
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{path} still there after a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delivery_ids(app: &TestApp) -> Vec<String> {
    let list = expect_json(
        app.get("/v1/webhooks/events?limit=100", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn purged_events(app: &TestApp) -> f64 {
    let page = app
        .get("/metrics", &app.admin_key)
        .await
        .text()
        .await
        .expect("metrics");
    metric_value(&page, "herald_purged_total{kind=\"events\"}")
}

#[tokio::test]
async fn ended_data_past_the_retention_goes_and_a_pending_event_stays_until_delivered() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        // A pending delivery keeps retrying for about 20 s.
        retry_schedule: Some(vec!["500ms"; 40].join(",")),
        retention: Some("2s".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/down", Reply::status(503));
    app.create_webhook(
        &app.admin_key,
        json!({"url": receiver.url("/up"), "event_types": ["order.filled"]}),
    )
    .await;
    app.create_webhook(
        &app.admin_key,
        json!({"url": receiver.url("/down"), "event_types": ["account.created"]}),
    )
    .await;

    let ended = app.publish(&app.admin_key, "order.filled", json!({"n": 1})).await;
    let ended_id = ended["id"].as_str().expect("id");
    let pending = app
        .publish(&app.admin_key, "account.created", json!({"n": 2}))
        .await;
    let pending_id = pending["id"].as_str().expect("id");
    let delivered = &app.deliveries_of(&app.admin_key, ended_id).await[0];
    let delivered_id = delivered["id"].as_str().expect("id").to_owned();
    app.wait_status(&app.admin_key, &delivered_id, "delivered").await;
    let waiting = &app.deliveries_of(&app.admin_key, pending_id).await[0];
    let waiting_id = waiting["id"].as_str().expect("id").to_owned();
    receiver.wait_for("/down", 1).await;

    wait_gone(&app, &format!("/v1/events/{ended_id}")).await;
    wait_gone(&app, &format!("/v1/webhooks/events/{delivered_id}")).await;
    assert_eq!(
        app.get(
            &format!("/v1/webhooks/events/{delivered_id}/attempts"),
            &app.admin_key
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    let listed = delivery_ids(&app).await;
    assert!(
        !listed.contains(&delivered_id),
        "a purged delivery is out of the list"
    );
    assert!(purged_events(&app).await >= 1.0);

    // Older than the retention by now, but its delivery is pending: kept, and still listed.
    let kept: Value = expect_json(
        app.get(&format!("/v1/events/{pending_id}"), &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(kept["id"], pending_id);
    assert!(delivery_ids(&app).await.contains(&waiting_id));
    let still = app.wait_delivery(&app.admin_key, &waiting_id, |_| true).await;
    assert_eq!(still["status"], "pending", "{still}");

    // The endpoint comes back: the old event is delivered, and then it goes too.
    receiver.always("/down", Reply::status(204));
    app.wait_status(&app.admin_key, &waiting_id, "delivered").await;
    wait_gone(&app, &format!("/v1/events/{pending_id}")).await;
    wait_gone(&app, &format!("/v1/webhooks/events/{waiting_id}")).await;
}

#[tokio::test]
async fn events_inside_the_retention_are_kept() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retention: Some("1h".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    app.create_webhook(
        &app.admin_key,
        json!({"url": receiver.url("/up"), "event_types": ["order.filled"]}),
    )
    .await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let id = event["id"].as_str().expect("id");
    let delivery = &app.deliveries_of(&app.admin_key, id).await[0];
    app.wait_status(&app.admin_key, delivery["id"].as_str().expect("id"), "delivered")
        .await;
    // The janitor runs every second: give it a few passes over the ended event.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            app.get(&format!("/v1/events/{id}"), &app.admin_key)
                .await
                .status(),
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_orgs_own_retention_wins_over_the_default() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retention: Some("1h".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    let (org, tenant) = app.tenant("tenant").await;
    for key in [&app.admin_key, &tenant] {
        app.create_webhook(
            key,
            json!({"url": receiver.url("/up"), "event_types": ["order.filled"]}),
        )
        .await;
    }
    // The default org's event is the older one: only the org's own retention can take the other.
    let kept = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let kept_id = kept["id"].as_str().expect("id");
    let patched = expect_json(
        app.patch(
            &format!("/v1/orgs/{org}"),
            &app.admin_key,
            &json!({"retention": "1s"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["retention"], "1s");
    let short = app.publish(&tenant, "order.filled", json!({})).await;
    let short_id = short["id"].as_str().expect("id");
    receiver.wait_for("/up", 2).await;
    wait_gone(&app, &format!("/v1/events/{short_id}")).await;
    assert_eq!(
        app.get(&format!("/v1/events/{kept_id}"), &app.admin_key)
            .await
            .status(),
        StatusCode::OK,
        "the default org keeps its hour"
    );
}
