//! The delivery engine end to end: real receivers on loopback, the real dispatcher.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::receiver::{Received, Reply, TestReceiver};
use super::support::{Settings, TestApp, expect_error, expect_json, metric_value};

/// Verifies a delivery with the `standardwebhooks` crate: an implementation that is not ours.
pub(super) fn verify_independently(secret: &str, received: &Received) {
    let verifier = standardwebhooks::Webhook::new(secret).expect("secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, received.header(name).parse().expect("header"));
    }
    verifier
        .verify(received.body.as_bytes(), &headers)
        .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
}

async fn webhook(app: &TestApp, key: &str, url: &str, events: Value) -> (String, String) {
    let w = app
        .create_webhook(key, json!({"url": url, "event_types": events}))
        .await;
    (
        w["id"].as_str().expect("id").to_owned(),
        w["signing_secret"].as_str().expect("secret").to_owned(),
    )
}

#[tokio::test]
async fn a_published_event_arrives_signed_and_verifies_with_an_independent_implementation() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (webhook_id, secret) =
        webhook(&app, &app.admin_key, &receiver.url("/orders"), json!(["order.*"])).await;

    let event = app
        .publish(
            &app.admin_key,
            "order.filled",
            json!({"order_id": "o_1", "qty": 5}),
        )
        .await;
    assert_eq!(event["object"], "event");
    assert_eq!(event["deliveries"], 1);
    let event_id = event["id"].as_str().expect("id");
    assert!(event_id.starts_with("evt_"));

    let got = receiver.wait_for("/orders", 1).await;
    let delivery = &got[0];
    verify_independently(&secret, delivery);
    assert_eq!(delivery.header("webhook-id"), event_id);
    assert_eq!(delivery.header("content-type"), "application/json");
    assert!(delivery.header("user-agent").starts_with("Herald/"));
    let body = delivery.json();
    assert_eq!(body["id"], event_id);
    assert_eq!(body["event"], "order.filled");
    assert_eq!(body["data"], json!({"order_id": "o_1", "qty": 5}));
    assert_eq!(body["timestamp"], event["created_at"]);

    let dlv = &app.deliveries_of(&app.admin_key, event_id).await[0];
    let dlv = app
        .wait_status(&app.admin_key, dlv["id"].as_str().expect("id"), "delivered")
        .await;
    assert_eq!(dlv["object"], "delivery_event");
    assert_eq!(dlv["webhook_id"], webhook_id.as_str());
    assert_eq!(dlv["attempt_count"], 1);
    assert_eq!(dlv["last_response_status"], 204);
    assert!(dlv["delivered_at"].is_string());
    assert_eq!(dlv["next_attempt_at"], Value::Null);
    assert_eq!(dlv["payload"], body, "the payload is the body sent");

    let attempts = app
        .attempts(&app.admin_key, dlv["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["object"], "delivery_attempt");
    assert_eq!(attempts[0]["attempt_number"], 1);
    assert_eq!(attempts[0]["response_status"], 204);
    assert_eq!(attempts[0]["error"], Value::Null);

    let fetched = expect_json(
        app.get(&format!("/v1/events/{event_id}"), &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched["data"], json!({"order_id": "o_1", "qty": 5}));
    let w = expect_json(
        app.get(&format!("/v1/webhooks/{webhook_id}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(w["last_triggered_at"].is_string(), "set by the first attempt");
}

#[tokio::test]
async fn an_event_fans_out_to_every_subscribed_active_webhook_only() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    webhook(&app, &app.admin_key, &receiver.url("/orders"), json!(["order.*"])).await;
    webhook(
        &app,
        &app.admin_key,
        &receiver.url("/filled"),
        json!(["order.filled"]),
    )
    .await;
    app.create_webhook(&app.admin_key, json!({"url": receiver.url("/all")}))
        .await;
    webhook(&app, &app.admin_key, &receiver.url("/kyc"), json!(["kyc.*"])).await;
    let (paused, _) = webhook(&app, &app.admin_key, &receiver.url("/paused"), json!(["*"])).await;
    app.patch(
        &format!("/v1/webhooks/{paused}"),
        &app.admin_key,
        &json!({"status": "disabled"}),
    )
    .await;
    // Another org's webhook never sees this org's events.
    let (_, other) = app.tenant("tenant").await;
    app.create_webhook(&other, json!({"url": receiver.url("/other")}))
        .await;

    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    assert_eq!(event["deliveries"], 3);
    for path in ["/orders", "/filled", "/all"] {
        receiver.wait_for(path, 1).await;
    }
    let partial = app
        .publish(&app.admin_key, "order.partially_filled", json!({}))
        .await;
    assert_eq!(partial["deliveries"], 2);
    receiver.wait_for("/orders", 2).await;
    receiver.wait_for("/all", 2).await;
    assert!(receiver.received("/kyc").is_empty());
    assert!(receiver.received("/paused").is_empty());
    assert!(receiver.received("/other").is_empty());
    assert_eq!(receiver.received("/filled").len(), 1);
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_webhook_id_until_delivered() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.next("/flaky", 2, Reply::status(500).body("boom"));
    webhook(&app, &app.admin_key, &receiver.url("/flaky"), json!(["order.*"])).await;

    let event = app.publish(&app.admin_key, "order.accepted", json!({})).await;
    let got = receiver.wait_for("/flaky", 3).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == event["id"]), "{ids:?}");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the body never changes"
    );

    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    let dlv = app.wait_status(&app.admin_key, id, "delivered").await;
    assert_eq!(dlv["attempt_count"], 3);
    let attempts = app.attempts(&app.admin_key, id).await;
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["response_status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(204)]);
    assert_eq!(attempts[0]["error"], "http_status");
    assert_eq!(attempts[0]["response_body"], "boom");
    assert_eq!(attempts[2]["error"], Value::Null);
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt_number"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[tokio::test]
async fn exhausted_retries_end_failed_and_a_manual_retry_delivers() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.always("/down", Reply::status(503));
    webhook(&app, &app.admin_key, &receiver.url("/down"), json!(["order.*"])).await;

    let event = app.publish(&app.admin_key, "order.rejected", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id").to_owned();
    let failed = app.wait_status(&app.admin_key, &id, "failed").await;
    assert_eq!(failed["attempt_count"], 4, "the first attempt and three retries");
    assert_eq!(failed["last_error"], "http_status");
    assert_eq!(failed["next_attempt_at"], Value::Null);
    let failed_list = expect_json(
        app.get("/v1/webhooks/events?status=failed", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(failed_list["data"][0]["id"], id.as_str());

    receiver.always("/down", Reply::status(200));
    let retried = app
        .post(
            &format!("/v1/webhooks/events/{id}/retry"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    let retried = expect_json(retried, StatusCode::ACCEPTED).await;
    assert_eq!(
        retried,
        json!({"object": "delivery_retry", "id": id, "status": "queued"})
    );
    let delivered = app.wait_status(&app.admin_key, &id, "delivered").await;
    assert_eq!(delivered["attempt_count"], 5);

    // A delivered one can be sent again, too.
    let again = app
        .post(
            &format!("/v1/webhooks/events/{id}/retry"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    app.wait_delivery(&app.admin_key, &id, |d| {
        d["attempt_count"] == 6 && d["status"] == "delivered"
    })
    .await;
    assert_eq!(receiver.received("/down").len(), 6);
}

#[tokio::test]
async fn a_slow_answer_is_recorded_as_a_timeout() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("1h".into()),
        delivery_timeout: Some("200ms".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/slow", Reply::status(200).after(Duration::from_secs(3)));
    webhook(&app, &app.admin_key, &receiver.url("/slow"), json!(["order.*"])).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let dlv = app
        .wait_delivery(&app.admin_key, dlv["id"].as_str().expect("id"), |d| {
            d["attempt_count"] == 1
        })
        .await;
    assert_eq!(dlv["status"], "pending", "retried later");
    assert_eq!(dlv["last_error"], "timeout");
    assert_eq!(dlv["last_response_status"], Value::Null);
}

#[tokio::test]
async fn redirects_are_never_followed() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.always(
        "/moved",
        Reply::status(302).header("location", &receiver.url("/elsewhere")),
    );
    webhook(&app, &app.admin_key, &receiver.url("/moved"), json!(["order.*"])).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    app.wait_status(&app.admin_key, id, "failed").await;
    let attempts = app.attempts(&app.admin_key, id).await;
    assert!(
        attempts
            .iter()
            .all(|a| a["error"] == "redirect" && a["response_status"] == 302)
    );
    assert!(receiver.received("/elsewhere").is_empty());
}

#[tokio::test]
async fn a_410_disables_the_webhook_and_its_deliveries_wait_until_it_is_enabled() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.next("/gone", 1, Reply::status(410));
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/gone"), json!(["order.*"])).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    let parked = app
        .wait_delivery(&app.admin_key, id, |d| d["attempt_count"] == 1)
        .await;
    assert_eq!(parked["status"], "pending");
    assert_eq!(
        parked["next_attempt_at"],
        Value::Null,
        "parked while the webhook is disabled"
    );

    let path = format!("/v1/webhooks/{webhook_id}");
    let w = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(w["status"], "disabled");
    assert!(
        w["disabled_reason"].as_str().is_some_and(|r| r.contains("410")),
        "{w}"
    );
    // New events do not go to a disabled webhook.
    let later = app.publish(&app.admin_key, "order.filled", json!({})).await;
    assert_eq!(later["deliveries"], 0);

    app.patch(&path, &app.admin_key, &json!({"status": "active"}))
        .await;
    app.wait_status(&app.admin_key, id, "delivered").await;
    assert_eq!(receiver.received("/gone").len(), 2);
}

#[tokio::test]
async fn retry_after_pushes_the_next_attempt_back() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.next("/busy", 1, Reply::status(429).header("retry-after", "2"));
    webhook(&app, &app.admin_key, &receiver.url("/busy"), json!(["order.*"])).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    let waiting = app
        .wait_delivery(&app.admin_key, id, |d| d["attempt_count"] == 1)
        .await;
    let last = herald::domain::time::parse_rfc3339(waiting["last_attempt_at"].as_str().expect("last"))
        .expect("time");
    let next = herald::domain::time::parse_rfc3339(waiting["next_attempt_at"].as_str().expect("next"))
        .expect("time");
    assert!(
        next - last >= 1_900,
        "the schedule says 10ms, the endpoint asked for 2s: {waiting}"
    );
    app.wait_status(&app.admin_key, id, "delivered").await;
}

#[tokio::test]
async fn during_a_rotation_overlap_deliveries_carry_both_signatures() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (webhook_id, old_secret) =
        webhook(&app, &app.admin_key, &receiver.url("/rot"), json!(["order.*"])).await;
    let rotated = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/rotate-secret"),
            &app.admin_key,
            &json!({"expire_previous_in_seconds": 600}),
        )
        .await;
    let new_secret = expect_json(rotated, StatusCode::OK).await["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    app.publish(&app.admin_key, "order.filled", json!({})).await;
    let got = receiver.wait_for("/rot", 1).await;
    assert_eq!(
        got[0].header("webhook-signature").split(' ').count(),
        2,
        "{:?}",
        got[0].headers
    );
    verify_independently(&old_secret, &got[0]);
    verify_independently(&new_secret, &got[0]);

    // Without an overlap, only the new secret signs.
    let rotated = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/rotate-secret"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    let newest = expect_json(rotated, StatusCode::OK).await["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    app.publish(&app.admin_key, "order.filled", json!({})).await;
    let got = receiver.wait_for("/rot", 2).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 1);
    verify_independently(&newest, &got[1]);
}

#[tokio::test]
async fn replay_requeues_the_failed_deliveries_of_a_time_window() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.always("/outage", Reply::status(500));
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/outage"), json!(["order.*"])).await;
    let since = herald::domain::time::format_ms(herald::domain::time::now_ms() - 1000);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
        let dlv = &app
            .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
            .await[0];
        ids.push(dlv["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        app.wait_status(&app.admin_key, id, "failed").await;
    }
    receiver.always("/outage", Reply::status(204));
    let path = format!("/v1/webhooks/{webhook_id}/replay");
    let replay = app.post(&path, &app.admin_key, &json!({"since": since})).await;
    assert_eq!(
        expect_json(replay, StatusCode::ACCEPTED).await,
        json!({"object": "replay", "queued": 3})
    );
    for id in &ids {
        app.wait_status(&app.admin_key, id, "delivered").await;
    }
    let nothing_left = app.post(&path, &app.admin_key, &json!({"since": since})).await;
    assert_eq!(expect_json(nothing_left, StatusCode::ACCEPTED).await["queued"], 0);
    let bad = app
        .post(&path, &app.admin_key, &json!({"since": "yesterday"}))
        .await;
    expect_error(bad, StatusCode::BAD_REQUEST, "invalid_value", Some("since")).await;
}

#[tokio::test]
async fn deleting_a_webhook_cancels_its_pending_deliveries_and_keeps_them_queryable() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("1h".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/later", Reply::status(500));
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/later"), json!(["order.*"])).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    app.wait_delivery(&app.admin_key, id, |d| d["attempt_count"] == 1)
        .await;

    assert_eq!(
        app.delete(&format!("/v1/webhooks/{webhook_id}"), &app.admin_key)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let canceled = app.wait_status(&app.admin_key, id, "canceled").await;
    assert_eq!(canceled["next_attempt_at"], Value::Null);
    let retry = app
        .post(
            &format!("/v1/webhooks/events/{id}/retry"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    expect_error(retry, StatusCode::CONFLICT, "delivery_canceled", None).await;
    let listed = expect_json(
        app.get(
            &format!("/v1/webhooks/events?webhook_id={webhook_id}"),
            &app.admin_key,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_test_route_sends_a_webhook_test_event_to_that_webhook_alone() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (webhook_id, secret) = webhook(&app, &app.admin_key, &receiver.url("/t"), json!(["kyc.*"])).await;
    app.create_webhook(&app.admin_key, json!({"url": receiver.url("/bystander")}))
        .await;
    let response = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/test"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    let dlv = expect_json(response, StatusCode::ACCEPTED).await;
    assert_eq!(dlv["object"], "delivery_event");
    assert_eq!(dlv["event_type"], "webhook.test");
    assert_eq!(dlv["webhook_id"], webhook_id.as_str());
    let got = receiver.wait_for("/t", 1).await;
    verify_independently(&secret, &got[0]);
    assert_eq!(got[0].json()["event"], "webhook.test");
    app.wait_status(&app.admin_key, dlv["id"].as_str().expect("id"), "delivered")
        .await;
    assert!(receiver.received("/bystander").is_empty());
}

#[tokio::test]
async fn a_slow_endpoint_never_delays_deliveries_to_other_endpoints() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    // Far longer than the test takes even on a loaded machine: the slow endpoint must not
    // have answered once when the last fast delivery arrives.
    receiver.always("/slow", Reply::status(200).after(Duration::from_secs(60)));
    webhook(&app, &app.admin_key, &receiver.url("/slow"), json!(["order.*"])).await;
    webhook(&app, &app.admin_key, &receiver.url("/fast"), json!(["kyc.*"])).await;
    // A backlog for the slow endpoint first: more than the 64 it may have in flight, and
    // more still due behind them than a claim reads from the head of the queue (128), so
    // the fast endpoint's work is found only by looking past the full webhook's backlog.
    for _ in 0..300 {
        app.publish(&app.admin_key, "order.filled", json!({})).await;
    }
    receiver.wait_for("/slow", 1).await;
    for _ in 0..20 {
        app.publish(&app.admin_key, "kyc.verification.approved", json!({}))
            .await;
    }
    receiver.wait_for("/fast", 20).await;
    assert_eq!(
        receiver.answered("/slow"),
        0,
        "all 20 fast deliveries arrived while the slow endpoint had not answered once"
    );
    assert!(
        receiver.received("/slow").len() <= 64,
        "the slow endpoint gets a bounded number at once"
    );
}

#[tokio::test]
async fn a_repeated_caller_id_returns_the_original_event_and_creates_nothing() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    webhook(&app, &app.admin_key, &receiver.url("/once"), json!(["order.*"])).await;
    let body = json!({"event_type": "order.filled", "data": {"n": 1}, "id": "fill-123"});
    let first = expect_json(
        app.post("/v1/events", &app.admin_key, &body).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let again = expect_json(
        app.post("/v1/events", &app.admin_key, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["deliveries"], 1);
    receiver.wait_for("/once", 1).await;
    let list = expect_json(
        app.get("/v1/webhooks/events", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(1),
        "one delivery in all"
    );
    // Ids are per org.
    let (_, other) = app.tenant("tenant").await;
    let theirs = app.post("/v1/events", &other, &body).await;
    assert_eq!(theirs.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn concurrent_publishes_with_one_caller_id_store_one_event() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    webhook(&app, &app.admin_key, &receiver.url("/race"), json!(["order.*"])).await;
    // Sent together, so they are written together (one batch on PostgreSQL).
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..16 {
        let id = if n % 2 == 0 {
            "fill-race".to_owned()
        } else {
            format!("fill-{n}")
        };
        let request = app
            .request(Method::POST, "/v1/events", &app.admin_key)
            .json(&json!({"event_type": "order.filled", "data": {"n": n}, "id": id}));
        requests.spawn(async move { (id, request.send().await.expect("request")) });
    }
    let (mut created, mut repeated) = (Vec::new(), Vec::new());
    while let Some(answer) = requests.join_next().await {
        let (id, response) = answer.expect("task");
        let status = response.status();
        let event: Value = response.json().await.expect("json");
        assert_eq!(event["deliveries"], 1, "{id}: {event}");
        match status {
            StatusCode::ACCEPTED => created.push((id, event["id"].clone())),
            StatusCode::OK => repeated.push((id, event["id"].clone())),
            other => panic!("unexpected {other} for {id}"),
        }
    }
    assert_eq!(
        created.len(),
        9,
        "eight distinct ids and one of the repeated: {created:?}"
    );
    assert_eq!(repeated.len(), 7);
    let original = created
        .iter()
        .find(|(id, _)| id == "fill-race")
        .map(|(_, event)| event.clone())
        .expect("the repeated id was created once");
    assert!(
        repeated.iter().all(|(_, event)| *event == original),
        "{repeated:?}"
    );
    receiver.wait_for("/race", 9).await;
    let list = expect_json(
        app.get("/v1/webhooks/events?limit=100", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(9),
        "one delivery per event"
    );
}

#[tokio::test]
async fn bad_events_are_refused_with_the_field_named() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        max_payload_bytes: Some(100),
        ..Settings::default()
    })
    .await;
    let cases = [
        (
            json!({"event_type": "order.filed", "data": {}}),
            StatusCode::BAD_REQUEST,
            "unknown_event_type",
            Some("event_type"),
        ),
        (
            json!({"event_type": "webhook.test", "data": {}}),
            StatusCode::BAD_REQUEST,
            "unknown_event_type",
            Some("event_type"),
        ),
        (
            json!({"event_type": "order.filled", "data": [1]}),
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("data"),
        ),
        (
            json!({"event_type": "order.filled"}),
            StatusCode::BAD_REQUEST,
            "missing_field",
            Some("data"),
        ),
        (
            json!({"event_type": "order.filled", "data": {}, "typ": 1}),
            StatusCode::BAD_REQUEST,
            "unknown_field",
            Some("typ"),
        ),
        (
            json!({"event_type": "order.filled", "data": {"x": "y".repeat(200)}}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Some("data"),
        ),
    ];
    for (body, status, code, param) in cases {
        let response = app.post("/v1/events", &app.admin_key, &body).await;
        expect_error(response, status, code, param).await;
    }
    let (org, _) = app.tenant("tenant").await;
    let investor = expect_json(
        app.post(
            "/v1/keys",
            &app.admin_key,
            &json!({"org_id": org, "role": "investor"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let response = app
        .post(
            "/v1/events",
            investor["key"].as_str().expect("key"),
            &json!({"event_type": "order.filled", "data": {}}),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
}

#[tokio::test]
async fn delivery_events_of_another_org_are_not_found() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, alice) = app.tenant("tenant").await;
    let (_, bob) = app.tenant("tenant").await;
    webhook(&app, &alice, &receiver.url("/alice"), json!(["order.*"])).await;
    let event = app.publish(&alice, "order.filled", json!({})).await;
    let dlv = &app.deliveries_of(&alice, event["id"].as_str().expect("id")).await[0];
    let id = dlv["id"].as_str().expect("id");
    for path in [
        format!("/v1/webhooks/events/{id}"),
        format!("/v1/webhooks/events/{id}/attempts"),
        format!("/v1/events/{}", event["id"].as_str().expect("id")),
    ] {
        expect_error(
            app.get(&path, &bob).await,
            StatusCode::NOT_FOUND,
            "resource_not_found",
            None,
        )
        .await;
    }
    let retry = app
        .post(&format!("/v1/webhooks/events/{id}/retry"), &bob, &json!({}))
        .await;
    expect_error(retry, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    let list = expect_json(app.get("/v1/webhooks/events", &bob).await, StatusCode::OK).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn delivery_events_filter_by_status_type_webhook_and_time() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.always("/bad", Reply::status(500));
    let (good, _) = webhook(&app, &app.admin_key, &receiver.url("/good"), json!(["order.*"])).await;
    webhook(&app, &app.admin_key, &receiver.url("/bad"), json!(["kyc.*"])).await;
    let before = herald::domain::time::format_ms(herald::domain::time::now_ms() - 1);
    let ok = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let bad = app
        .publish(&app.admin_key, "kyc.verification.rejected", json!({}))
        .await;
    let ok_dlv = app
        .deliveries_of(&app.admin_key, ok["id"].as_str().expect("id"))
        .await[0]["id"]
        .clone();
    let bad_dlv = app
        .deliveries_of(&app.admin_key, bad["id"].as_str().expect("id"))
        .await[0]["id"]
        .clone();
    app.wait_status(&app.admin_key, ok_dlv.as_str().expect("id"), "delivered")
        .await;
    app.wait_status(&app.admin_key, bad_dlv.as_str().expect("id"), "failed")
        .await;

    let only = |query: String| {
        let app = &app;
        async move {
            let list = expect_json(
                app.get(&format!("/v1/webhooks/events?{query}"), &app.admin_key)
                    .await,
                StatusCode::OK,
            )
            .await;
            list["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|d| d["id"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("status=delivered".into()).await, vec![ok_dlv.clone()]);
    assert_eq!(only("status=failed".into()).await, vec![bad_dlv.clone()]);
    assert_eq!(
        only("event_type=kyc.verification.rejected".into()).await,
        vec![bad_dlv.clone()]
    );
    assert_eq!(only(format!("webhook_id={good}")).await, vec![ok_dlv.clone()]);
    assert_eq!(only(format!("created_after={before}")).await.len(), 2);
    assert_eq!(only(format!("created_before={before}")).await.len(), 0);
    let bad_status = app.get("/v1/webhooks/events?status=lost", &app.admin_key).await;
    expect_error(
        bad_status,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("status"),
    )
    .await;
    let bad_time = app
        .get("/v1/webhooks/events?created_after=monday", &app.admin_key)
        .await;
    expect_error(
        bad_time,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("created_after"),
    )
    .await;
}

/// The app's `/metrics` page.
async fn metrics_page(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body")
}

#[tokio::test]
async fn delivery_metrics_count_outcomes_and_report_the_queue() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    webhook(&app, &app.admin_key, &receiver.url("/m"), json!(["order.*"])).await;
    app.publish(&app.admin_key, "order.filled", json!({})).await;
    receiver.wait_for("/m", 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics_page(&app).await;
        let ready = text.contains("herald_deliveries_total{outcome=\"delivered\"}")
            && text.contains("herald_attempt_duration_seconds_bucket")
            && text.contains("herald_queue_depth")
            && text.contains("herald_oldest_pending_age_seconds");
        if ready {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics missing: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_webhook_failing_for_longer_than_disable_after_is_disabled() {
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
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/dead"), json!(["order.*"])).await;
    app.publish(&app.admin_key, "order.filled", json!({})).await;
    let path = format!("/v1/webhooks/{webhook_id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let disabled = loop {
        let w = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
        if w["status"] == "disabled" {
            break w;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reason = disabled["disabled_reason"].as_str().expect("reason");
    assert!(reason.contains("HERALD_DISABLE_AFTER"), "{reason}");
    // Counted for the operator's alert, under its cause. (The recorder is shared by the
    // tests of this process, so at least one.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = metrics_page(&app).await;
        if metric_value(&page, "herald_webhooks_disabled_total{reason=\"failing\"}") >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not counted: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_success_resets_the_failure_clock() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("20ms,20ms,1h".into()),
        disable_after: Some("3s".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.next("/wobbly", 2, Reply::status(500));
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/wobbly"), json!(["order.*"])).await;
    let first = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, first["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    app.wait_status(&app.admin_key, id, "delivered").await;
    let first_failure = herald::domain::time::parse_rfc3339(
        app.attempts(&app.admin_key, id).await[0]["started_at"]
            .as_str()
            .expect("started_at"),
    )
    .expect("time");
    // Let more than HERALD_DISABLE_AFTER pass since the first failure, then fail again:
    // only the success in between keeps the webhook active.
    while herald::domain::time::now_ms() < first_failure + 3_500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.always("/wobbly", Reply::status(500));
    let second = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, second["id"].as_str().expect("id"))
        .await[0];
    app.wait_delivery(&app.admin_key, dlv["id"].as_str().expect("id"), |d| {
        d["attempt_count"].as_i64() >= Some(1)
    })
    .await;
    let w = expect_json(
        app.get(&format!("/v1/webhooks/{webhook_id}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        w["status"], "active",
        "the failure clock restarted at the success: {w}"
    );
}

#[tokio::test]
async fn a_re_enabled_webhook_starts_a_fresh_failure_clock() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("20ms,1h".into()),
        // Long enough that one attempt and its record on a busy CI machine stay well inside it.
        disable_after: Some("500ms".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/down", Reply::status(500));
    let (webhook_id, _) = webhook(&app, &app.admin_key, &receiver.url("/down"), json!(["order.*"])).await;
    let path = format!("/v1/webhooks/{webhook_id}");
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id").to_owned();
    app.wait_delivery(&app.admin_key, &id, |d| d["attempt_count"] == 2)
        .await;
    // Long after the first failure, the operator disables and re-enables the webhook.
    let first = herald::domain::time::now_ms();
    while herald::domain::time::now_ms() < first + 700 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.patch(&path, &app.admin_key, &json!({"status": "disabled"}))
        .await;
    app.patch(&path, &app.admin_key, &json!({"status": "active"}))
        .await;
    let retried = app
        .post(
            &format!("/v1/webhooks/events/{id}/retry"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    app.wait_delivery(&app.admin_key, &id, |d| d["attempt_count"].as_i64() >= Some(3))
        .await;
    let w = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(
        w["status"], "active",
        "a failure just after re-enabling is not 500ms of failure: {w}"
    );
}
