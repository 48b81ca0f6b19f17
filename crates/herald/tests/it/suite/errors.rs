//! Every error status of the contract, in the contract's body, never axum's plain text.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::{Settings, TestApp, expect_error};

#[tokio::test]
async fn malformed_json_is_a_400_in_the_contract_format() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let response = app
        .request(Method::POST, "/v1/webhooks", &app.admin_key)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_json", None).await;

    let response = app
        .request(Method::POST, "/v1/webhooks", &app.admin_key)
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_body", None).await;
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let missing = app
        .post("/v1/webhooks", &app.admin_key, &json!({"name": "x"}))
        .await;
    expect_error(missing, StatusCode::BAD_REQUEST, "missing_field", Some("url")).await;

    let typo = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/", "event_typs": ["order.*"]}),
        )
        .await;
    let body = expect_error(typo, StatusCode::BAD_REQUEST, "unknown_field", Some("event_typs")).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("event_typs"))
    );

    let wrong_type = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/", "event_types": "order.*"}),
        )
        .await;
    expect_error(
        wrong_type,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("event_types"),
    )
    .await;

    let too_long = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/", "name": "n".repeat(257)}),
        )
        .await;
    expect_error(too_long, StatusCode::BAD_REQUEST, "invalid_value", Some("name")).await;

    let bad_query = app.get("/v1/webhooks?limit=1000", &app.admin_key).await;
    expect_error(bad_query, StatusCode::BAD_REQUEST, "invalid_limit", Some("limit")).await;
    let unknown_query = app.get("/v1/webhooks?status=active", &app.admin_key).await;
    expect_error(
        unknown_query,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("status"),
    )
    .await;
}

#[tokio::test]
async fn bodies_that_are_not_declared_json_are_a_415() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .request(Method::POST, "/v1/webhooks", &app.admin_key)
            .body(r#"{"url":"https://example.com/"}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("request");
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        )
        .await;
    }
    let with_charset = app
        .request(Method::POST, "/v1/webhooks", &app.admin_key)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"url":"https://example.com/"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(with_charset.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn actions_without_input_refuse_a_body_they_cannot_read() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    for path in [
        "/v1/webhooks/wh_01m84cqemse6ns1ch8mmadpwt0/test",
        "/v1/webhooks/events/dlv_01m84cqemse6ns1ch8mmadpwt0/retry",
    ] {
        let text = app
            .request(Method::POST, path, &app.admin_key)
            .header("content-type", "text/plain")
            .body("please retry")
            .send()
            .await
            .expect("request");
        expect_error(
            text,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        )
        .await;
        let field = app
            .request(Method::POST, path, &app.admin_key)
            .header("content-type", "application/json")
            .body(r#"{"force": true}"#)
            .send()
            .await
            .expect("request");
        expect_error(field, StatusCode::BAD_REQUEST, "unknown_field", Some("force")).await;
        let empty = app
            .request(Method::POST, path, &app.admin_key)
            .send()
            .await
            .expect("request");
        assert_eq!(
            empty.status(),
            StatusCode::NOT_FOUND,
            "no body is fine; the id does not exist: {path}"
        );
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_a_413() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        max_payload_bytes: Some(1024),
        ..Settings::default()
    })
    .await;
    // The API body limit is the payload limit plus envelope room, at least 1 MiB.
    let huge = json!({"url": "https://example.com/", "description": "x".repeat(2 * 1024 * 1024)});
    let response = app.post("/v1/webhooks", &app.admin_key, &huge).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let response = app.get("/v1/nothing-here", &app.admin_key).await;
    expect_error(response, StatusCode::NOT_FOUND, "route_not_found", None).await;
    let response = app
        .request(Method::PUT, "/v1/webhooks", &app.admin_key)
        .send()
        .await
        .expect("request");
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    )
    .await;
}

#[tokio::test]
async fn malformed_ids_are_simply_not_found() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    for id in ["nope", "wh_123", "org_01jd5k3m6x7y8z9a0b1c2d3e4f", "wh_%FF"] {
        let response = app.get(&format!("/v1/webhooks/{id}"), &app.admin_key).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["type"], "not_found_error");
    }
}

#[tokio::test]
async fn data_nested_deeper_than_64_levels_is_a_400_naming_data() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let nested = |levels: usize| {
        format!(
            r#"{{"event_type":"order.filled","data":{}{}{}}}"#,
            r#"{"a":"#.repeat(levels - 1),
            "{}",
            "}".repeat(levels - 1)
        )
    };
    let send = |body: String| {
        app.request(Method::POST, "/v1/events", &app.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = send(nested(10_000)).await.expect("request");
    expect_error(deep, StatusCode::BAD_REQUEST, "invalid_value", Some("data")).await;
    let just_over = send(nested(65)).await.expect("request");
    expect_error(just_over, StatusCode::BAD_REQUEST, "invalid_value", Some("data")).await;
    let at_the_limit = send(nested(64)).await.expect("request");
    assert_eq!(at_the_limit.status(), StatusCode::ACCEPTED);
}
