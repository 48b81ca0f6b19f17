//! `Idempotency-Key`: replays, conflicts, and scoping to the caller's org.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::{TestApp, expect_error, expect_json};

async fn post_with_key(app: &TestApp, key: &str, idem: &str, body: &Value) -> reqwest::Response {
    app.request(Method::POST, "/v1/webhooks", key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_stored_response_without_acting_twice() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let body = json!({"url": "https://example.com/once"});

    let first = post_with_key(&app, &key, "create-once 1", &body).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = expect_json(first, StatusCode::CREATED).await;

    let second = post_with_key(&app, &key, "create-once 1", &body).await;
    assert_eq!(
        second.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let second = expect_json(second, StatusCode::CREATED).await;
    assert_eq!(first, second, "same status and body");

    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "created once");
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_409() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let first = post_with_key(&app, &key, "k1", &json!({"url": "https://example.com/a"})).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = post_with_key(&app, &key, "k1", &json!({"url": "https://example.com/b"})).await;
    expect_error(
        second,
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    )
    .await;
}

#[tokio::test]
async fn client_errors_are_replayed_too() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let body = json!({"url": "https://10.0.0.1/"});
    let first = post_with_key(&app, &key, "bad-url", &body).await;
    let first = expect_error(first, StatusCode::BAD_REQUEST, "blocked_url", Some("url")).await;
    let second = post_with_key(&app, &key, "bad-url", &body).await;
    assert!(second.headers().get("idempotent-replayed").is_some());
    assert_eq!(expect_json(second, StatusCode::BAD_REQUEST).await, first);
}

#[tokio::test]
async fn keys_are_scoped_to_the_callers_org() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, alice) = app.tenant("tenant").await;
    let (_, bob) = app.tenant("tenant").await;
    let a = post_with_key(&app, &alice, "shared", &json!({"url": "https://example.com/a"})).await;
    assert_eq!(a.status(), StatusCode::CREATED);
    let b = post_with_key(&app, &bob, "shared", &json!({"url": "https://example.com/b"})).await;
    assert!(b.headers().get("idempotent-replayed").is_none());
    let b = expect_json(b, StatusCode::CREATED).await;
    assert_eq!(b["url"], "https://example.com/b");
}

#[tokio::test]
async fn malformed_keys_are_a_400_and_an_empty_key_is_no_key() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let body = json!({"url": "https://example.com/"});
    let long = "k".repeat(256);
    let response = post_with_key(&app, &app.admin_key, &long, &body).await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
        Some("Idempotency-Key"),
    )
    .await;

    for _ in 0..2 {
        let response = post_with_key(&app, &app.admin_key, "", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }
    let list = expect_json(app.get("/v1/webhooks", &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_webhook() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app
            .request(Method::POST, "/v1/webhooks", &key)
            .header("idempotency-key", "race")
            .json(&json!({"url": "https://example.com/race"}));
        requests.spawn(async move { request.send().await.expect("request") });
    }
    let mut created = 0;
    while let Some(response) = requests.join_next().await {
        let response = response.expect("task");
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                expect_error(
                    response,
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    Some("Idempotency-Key"),
                )
                .await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(created >= 1);
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(1),
        "one webhook, however many raced"
    );
}
