//! Health, readiness, metrics, and the OpenAPI document (snapshot-tested so drift fails CI,
//! and checked against docs/API.md so the human-readable reference keeps up).

use reqwest::StatusCode;
use serde_json::Value;

use super::support::{TestApp, expect_json};

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let health = expect_json(
        app.client.get(app.url("/healthz")).send().await.expect("get"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(health["status"], "ok");
    let ready = expect_json(
        app.client.get(app.url("/readyz")).send().await.expect("get"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ready["database"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_per_route_with_latency_histograms() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.get("/v1/webhooks", &app.admin_key).await;
    }
    let response = app.client.get(app.url("/metrics")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    assert!(
        text.lines().any(|l| l.starts_with("herald_http_requests_total")
            && l.contains("route=\"/v1/webhooks\"")
            && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(
        text.contains("herald_http_request_duration_seconds_bucket") && text.contains("le=\"0.005\""),
        "latency is a histogram: {text}"
    );
}

/// The OpenAPI document a freshly started Herald serves.
async fn served_openapi() -> serde_json::Value {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("get");
    expect_json(response, StatusCode::OK).await
}

#[tokio::test]
async fn the_openapi_document_matches_the_committed_snapshot() {
    skip_if_backend_unavailable!();
    let served = served_openapi().await;
    assert!(served["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    let operations: Vec<&str> = served["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|m| m.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    for expected in [
        "create_webhook",
        "list_webhooks",
        "get_webhook",
        "update_webhook",
        "delete_webhook",
        "rotate_webhook_secret",
        "list_event_types",
    ] {
        assert!(
            operations.contains(&expected),
            "{expected} missing from {operations:?}"
        );
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).expect("json") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &pretty).expect("write snapshot");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
    assert!(
        committed == served,
        "the OpenAPI document changed; review it and run `UPDATE_SNAPSHOTS=1 cargo test openapi` to accept"
    );
}

/// docs/API.md is the human-readable reference: each operation has a heading such as
/// ``### `GET /v1/webhooks/{id}` ``, so the two cannot drift apart unnoticed.
#[tokio::test]
async fn every_operation_in_the_openapi_document_is_documented_in_docs_api_md() {
    skip_if_backend_unavailable!();
    let served = served_openapi().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md");
    let docs = std::fs::read_to_string(&path).expect("read docs/API.md");
    let mut missing = Vec::new();
    let mut operations = 0;
    for (route, item) in served["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations += 1;
            let heading = format!("### `{} {route}`", method.to_uppercase());
            if !docs.lines().any(|line| line.trim_end() == heading) {
                missing.push(heading);
            }
        }
    }
    assert!(operations > 0, "no operations in the OpenAPI document");
    assert!(
        missing.is_empty(),
        "docs/API.md lacks a heading for these operations of /v1/openapi.json:\n{}",
        missing.join("\n")
    );
}
