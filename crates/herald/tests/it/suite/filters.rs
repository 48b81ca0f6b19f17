//! A webhook's `filter`: matched against each event's `data` at publish time, so an event
//! that does not match creates no delivery for that webhook; validated at the edge.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::receiver::TestReceiver;
use super::support::{TestApp, expect_error, expect_json};

/// The `id`s of the events a receiver path got, from their bodies.
fn received_ids(receiver: &TestReceiver, path: &str) -> BTreeSet<String> {
    receiver
        .received(path)
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).expect("json body");
            body["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_filtered_webhook_gets_only_the_events_whose_data_matches() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let key = app.admin_key.clone();
    let filter = json!({
        "symbol": {"$in": ["AAPL", "MSFT"]},
        "fill.quantity": {"$gte": 100},
        "$or": [{"side": "buy"}, {"account.tier": "gold"}],
        "$not": {"venue": {"$prefix": "dark-"}},
    });
    let filtered = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/filtered"), "event_types": ["order.*"], "filter": filter}),
        )
        .await;
    assert_eq!(
        filtered["filter"], filter,
        "the webhook object shows the filter as given"
    );
    let plain = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/all"), "event_types": ["order.*"]}),
        )
        .await;
    assert_eq!(plain["filter"], Value::Null);

    let matching = [
        json!({"symbol": "AAPL", "fill": {"quantity": 100}, "side": "buy"}),
        json!({"symbol": "MSFT", "fill": {"quantity": 250.5}, "side": "sell", "account": {"tier": "gold"}, "venue": "lit-1"}),
    ];
    let not_matching = [
        json!({"symbol": "TSLA", "fill": {"quantity": 500}, "side": "buy"}),
        json!({"symbol": "AAPL", "fill": {"quantity": 99}, "side": "buy"}),
        json!({"symbol": "AAPL", "fill": 100, "side": "buy"}),
        json!({"symbol": "AAPL", "fill": {"quantity": "100"}, "side": "buy"}),
        json!({"symbol": "AAPL", "fill": {"quantity": 100}, "side": "sell"}),
        json!({"symbol": "AAPL", "fill": {"quantity": 100}, "side": "buy", "venue": "dark-pool"}),
        json!({"fill": {"quantity": 100}, "side": "buy"}),
    ];
    let mut expected = BTreeSet::new();
    for data in &matching {
        let event = app.publish(&key, "order.filled", data.clone()).await;
        assert_eq!(event["deliveries"], 2, "{data}");
        expected.insert(event["id"].as_str().expect("id").to_owned());
    }
    for data in &not_matching {
        let event = app.publish(&key, "order.filled", data.clone()).await;
        assert_eq!(event["deliveries"], 1, "only the unfiltered webhook: {data}");
    }
    receiver
        .wait_for("/all", matching.len() + not_matching.len())
        .await;
    receiver.wait_for("/filtered", matching.len()).await;
    assert_eq!(received_ids(&receiver, "/filtered"), expected);
}

#[tokio::test]
async fn an_event_no_filter_matches_creates_no_delivery() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, tenant) = app.tenant("tenant").await;
    app.create_webhook(
        &tenant,
        json!({"url": receiver.url("/big"), "filter": {"amount": {"$gt": 1000}}}),
    )
    .await;
    let small = app.publish(&tenant, "order.filled", json!({"amount": 5})).await;
    assert_eq!(small["deliveries"], 0);
    let small_id = small["id"].as_str().expect("id");
    assert!(app.deliveries_of(&tenant, small_id).await.is_empty());
    // A missing path matches no comparison.
    let none = app.publish(&tenant, "order.filled", json!({})).await;
    assert_eq!(none["deliveries"], 0);
    let big = app
        .publish(&tenant, "order.filled", json!({"amount": 1000.5}))
        .await;
    assert_eq!(big["deliveries"], 1);
    receiver.wait_for("/big", 1).await;
    assert_eq!(
        received_ids(&receiver, "/big"),
        BTreeSet::from([big["id"].as_str().expect("id").to_owned()])
    );
}

#[tokio::test]
async fn a_filter_is_replaced_and_removed_by_patch_and_publishes_follow_at_once() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let key = app.admin_key.clone();
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/hook"), "filter": {"symbol": "AAPL"}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));
    let count = |data: Value| {
        let app = &app;
        let key = key.clone();
        async move { app.publish(&key, "order.filled", data).await["deliveries"].clone() }
    };
    assert_eq!(count(json!({"symbol": "MSFT"})).await, 0);

    let patched = expect_json(
        app.patch(&path, &key, &json!({"filter": {"symbol": "MSFT"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["filter"], json!({"symbol": "MSFT"}));
    assert_eq!(count(json!({"symbol": "MSFT"})).await, 1);
    assert_eq!(count(json!({"symbol": "AAPL"})).await, 0);

    // A PATCH of other fields leaves the filter as it is.
    let renamed = expect_json(
        app.patch(&path, &key, &json!({"name": "n"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["filter"], json!({"symbol": "MSFT"}));

    let cleared = expect_json(
        app.patch(&path, &key, &json!({"filter": null})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["filter"], Value::Null);
    let fetched = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(fetched["filter"], Value::Null);
    assert_eq!(count(json!({"symbol": "AAPL"})).await, 1);
}

#[tokio::test]
async fn the_test_route_ignores_the_filter() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let key = app.admin_key.clone();
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/hook"), "filter": {"never": {"$exists": true}}}),
        )
        .await;
    let tested = app
        .post(
            &format!("/v1/webhooks/{}/test", webhook["id"].as_str().expect("id")),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(tested.status(), StatusCode::ACCEPTED);
    receiver.wait_for("/hook", 1).await;
}

#[tokio::test]
async fn an_invalid_filter_is_a_400_naming_the_bad_part_on_create_and_patch() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let key = app.admin_key.clone();
    let mut deep = json!({"a": 1});
    for _ in 0..16 {
        deep = json!({"$not": deep});
    }
    let cases = [
        (json!("symbol = AAPL"), "a filter is an object"),
        (json!({"symbol": {"$regex": "^A"}}), "unknown operator $regex"),
        (json!({"symbol": {"$in": "AAPL"}}), "$in takes an array"),
        (
            json!({"qty": {"$gt": {"n": 1}}}),
            "$gt takes a number or a string",
        ),
        (json!({"qty": {"$exists": "yes"}}), "$exists takes true or false"),
        (json!({"$or": [{"a": 1}, 7]}), "filter.$or[1]"),
        (json!({"$nor": []}), "unknown operator $nor"),
        (json!({"a..b": 1}), "filter.a..b"),
        (json!({"s": {"$in": vec!["x".repeat(200); 30]}}), "at most 4096"),
        (deep, "deeper than 16"),
    ];
    for (filter, says) in &cases {
        let body = expect_error(
            app.post(
                "/v1/webhooks",
                &key,
                &json!({"url": "https://example.com/hook", "filter": filter}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("filter"),
        )
        .await;
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(says), "{filter}: {message}");
    }
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(
        list["data"].as_array().expect("data").len(),
        0,
        "nothing was created"
    );

    let webhook = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/hook", "filter": {"a": 1}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));
    for (filter, _) in &cases {
        expect_error(
            app.patch(&path, &key, &json!({"filter": filter})).await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("filter"),
        )
        .await;
    }
    let fetched = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(
        fetched["filter"],
        json!({"a": 1}),
        "a refused PATCH changes nothing"
    );
}
