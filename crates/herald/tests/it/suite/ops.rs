//! Health, readiness, metrics (and that the alert rules and dashboard in deploy/ name only
//! series Herald has), and the OpenAPI document (snapshot-tested so drift fails CI, and
//! checked against docs/API.md so the human-readable reference keeps up).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::process::Server;
use super::support::receiver::TestReceiver;
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

/// The series that an expression in `text` selects: each `herald_…` name, with the
/// `label="value"` matchers written beside it (a matcher on a `$variable` of the dashboard,
/// a regex or a negation says nothing about which series exist, so it is left out).
fn selected_series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("herald_") {
        // Part of a longer word (`my_herald_x`) is not a name.
        let inside_word = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        rest = &tail[end..];
        if inside_word {
            continue;
        }
        let mut matchers = Vec::new();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            for matcher in inner.0.split(',') {
                let Some((label, value)) = matcher.split_once('=') else {
                    continue;
                };
                let label = label.trim();
                if label.ends_with('!') || value.starts_with('~') || value.contains('$') {
                    continue;
                }
                matchers.push((label.to_owned(), value.trim().trim_matches('"').to_owned()));
            }
        }
        found.push((name.to_owned(), matchers));
    }
    found
}

/// Every string in a JSON document (the dashboard's expressions and variable queries are
/// strings; their escaped quotes are plain quotes here).
fn json_strings(value: &Value, into: &mut String) {
    match value {
        Value::String(s) => {
            into.push_str(s);
            into.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| json_strings(v, into)),
        Value::Object(fields) => fields.values().for_each(|v| json_strings(v, into)),
        _ => {}
    }
}

/// Which of `wanted` a Prometheus text page lacks: a series of that exact name (a
/// histogram's `_bucket`, `_sum` and `_count` are names of their own) with every matcher's
/// label and value.
fn missing_from(page: &str, wanted: &[(String, Vec<(String, String)>)]) -> Vec<String> {
    wanted
        .iter()
        .filter(|(name, matchers)| {
            !page.lines().filter(|l| !l.starts_with('#')).any(|line| {
                let series = line.split(' ').next().unwrap_or("");
                let (series_name, labels) = series.split_once('{').unwrap_or((series, ""));
                series_name == name
                    && matchers
                        .iter()
                        .all(|(label, value)| labels.contains(&format!("{label}=\"{value}\"")))
            })
        })
        .map(|(name, matchers)| format!("{name}{matchers:?}"))
        .collect()
}

/// An alert on a series that does not exist never fires, and a panel over one stays empty:
/// so every series the kit in deploy/ names must be in `/metrics` of a Herald process that
/// has just started and delivered one event (its counters of things that never happened
/// are there at 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_alert_rules_and_dashboard_name_is_in_metrics_after_one_delivery() {
    skip_if_backend_unavailable!();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let rules = std::fs::read_to_string(root.join("prometheus/herald.rules.yml")).expect("read the rules");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/herald.json")).expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut dashboard_text = String::new();
    json_strings(&dashboard, &mut dashboard_text);
    let mut wanted = selected_series(&rules);
    let from_rules = wanted.len();
    wanted.extend(selected_series(&dashboard_text));
    assert!(
        from_rules >= 7 && wanted.len() > from_rules + 20,
        "the kit names too few series to be read right: {wanted:?}"
    );

    // A fresh process: a test-wide recorder shared with other tests would show series this
    // Herald never made. A catalog of our own, so the event needs no schema's data.
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "[[event_types]]\ntype = \"probe.sent\"\nname = \"Probe\"\ndescription = \"A probe\"\n",
    )
    .expect("write the catalog");
    let catalog = catalog.display().to_string();
    let server = Server::start(
        dir.path(),
        &[("HERALD_DEV", "true"), ("HERALD_CATALOG", catalog.as_str())],
    );
    let key = server.admin_key();
    let receiver = TestReceiver::start().await;
    let client = super::support::http_client();
    let created = client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/probe"), "event_types": ["probe.sent"]}))
        .send()
        .await
        .expect("create a webhook");
    expect_json(created, StatusCode::CREATED).await;
    let published = client
        .post(server.url("/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"event_type": "probe.sent", "data": {"n": 1}}))
        .send()
        .await
        .expect("publish");
    expect_json(published, StatusCode::ACCEPTED).await;
    receiver.wait_for("/probe", 1).await;

    // The attempt is counted as it is recorded, and the queue's gauges every few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        let missing = missing_from(&page, &wanted);
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "named in deploy/ but not in /metrics: {missing:?}\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
