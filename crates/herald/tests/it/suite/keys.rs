//! API keys and the org lifecycle (admin routes): listing, naming and revoking keys, an
//! org's retention, and erasing an org.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::{TestApp, expect_error, expect_json};

/// Creates a key; returns (its object with the secret, `key_id:secret`).
async fn create_key(app: &TestApp, body: Value) -> (Value, String) {
    let key = expect_json(
        app.post("/v1/keys", &app.admin_key, &body).await,
        StatusCode::CREATED,
    )
    .await;
    let secret = key["key"].as_str().expect("key").to_owned();
    (key, secret)
}

async fn list_keys(app: &TestApp, query: &str) -> Vec<Value> {
    let page = expect_json(
        app.get(&format!("/v1/keys{query}"), &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["object"], "list");
    page["data"].as_array().expect("data").clone()
}

fn ids(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item["id"].as_str().expect("id"))
        .collect()
}

/// Polls `done` every 20 ms until it holds or `budget` has passed since `from`.
async fn within(budget: Duration, from: Instant, mut done: impl AsyncFnMut() -> bool) -> bool {
    loop {
        if done().await {
            return true;
        }
        if from.elapsed() > budget {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn keys_are_listed_newest_first_by_org_without_secrets() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, _) = app.tenant("tenant").await;
    let (first, first_secret) = create_key(
        &app,
        json!({"org_id": org, "role": "investor", "name": "reports"}),
    )
    .await;
    let (second, _) = create_key(&app, json!({"org_id": org, "role": "admin"})).await;

    let listed = list_keys(&app, &format!("?org_id={org}")).await;
    let first_id = first["id"].as_str().expect("id");
    let second_id = second["id"].as_str().expect("id");
    assert_eq!(ids(&listed)[..2], [second_id, first_id], "newest first");
    assert_eq!(listed.len(), 3, "the tenant key too: {listed:?}");
    assert!(listed.iter().all(|k| k["org_id"] == org.as_str()));
    let reports = &listed[1];
    assert_eq!(reports["object"], "api_key");
    assert_eq!(reports["role"], "investor");
    assert_eq!(reports["name"], "reports");
    assert!(reports["created_at"].as_str().expect("created_at").ends_with('Z'));
    assert!(reports.get("last_used_at").is_none(), "never used: {reports}");
    for key in &listed {
        for field in ["key", "basic_auth", "secret", "secret_hash"] {
            assert!(key.get(field).is_none(), "{field} listed: {key}");
        }
    }
    let (_, secret) = first_secret.split_once(':').expect("secret");
    let everything = list_keys(&app, "?limit=100").await;
    assert!(!Value::Array(everything.clone()).to_string().contains(secret));
    assert!(ids(&everything).contains(&app.admin_key.split_once(':').expect("id").0));

    let page = expect_json(
        app.get(&format!("/v1/keys?org_id={org}&limit=1"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["has_more"], true);
    let unknown = app
        .get("/v1/keys?org_id=org_01jd5k3m6x7y8z9a0b1c2d3e4f", &app.admin_key)
        .await;
    expect_error(unknown, StatusCode::BAD_REQUEST, "unknown_org", Some("org_id")).await;
}

#[tokio::test]
async fn a_key_name_is_optional_and_validated() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (named, _) = create_key(
        &app,
        json!({"org_id": app.admin_org, "role": "tenant", "name": " ci "}),
    )
    .await;
    assert_eq!(named["name"], "ci", "trimmed");
    // The create answer is the key object plus the secret.
    let listed = list_keys(&app, &format!("?org_id={}", app.admin_org)).await;
    let mut shown = named.clone();
    for secret in ["key", "basic_auth"] {
        shown.as_object_mut().expect("object").remove(secret);
    }
    assert_eq!(shown, listed[0]);
    let (unnamed, _) = create_key(&app, json!({"org_id": app.admin_org, "role": "tenant"})).await;
    assert!(unnamed.get("name").is_none(), "{unnamed}");
    let too_long = "x".repeat(201);
    for bad in [json!(""), json!("   "), json!(too_long), json!(12)] {
        let response = app
            .post(
                "/v1/keys",
                &app.admin_key,
                &json!({"org_id": app.admin_org, "role": "tenant", "name": bad}),
            )
            .await;
        let status = response.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "name {bad}");
        if bad.is_string() {
            expect_error(response, status, "invalid_value", Some("name")).await;
        }
    }
}

#[tokio::test]
async fn last_used_at_appears_after_the_first_use() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    assert_eq!(app.get("/v1/webhooks", &tenant).await.status(), StatusCode::OK);
    let used = within(Duration::from_secs(10), Instant::now(), async || {
        let keys = list_keys(&app, &format!("?org_id={org}")).await;
        keys[0].get("last_used_at").and_then(Value::as_str).is_some()
    })
    .await;
    assert!(used, "last_used_at never appeared");
}

#[tokio::test]
async fn a_revoked_key_is_refused_and_gone_from_the_list() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    // Used once, so the server holds it in its cache.
    assert_eq!(app.get("/v1/webhooks", &tenant).await.status(), StatusCode::OK);
    let id = tenant.split_once(':').expect("id").0;
    let revoked = app.delete(&format!("/v1/keys/{id}"), &app.admin_key).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let response = app.get("/v1/webhooks", &tenant).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
    assert!(list_keys(&app, &format!("?org_id={org}")).await.is_empty());

    let again = app.delete(&format!("/v1/keys/{id}"), &app.admin_key).await;
    expect_error(again, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    for unknown in ["key_01jd5k3m6x7y8z9a0b1c2d3e4f", "nonsense"] {
        let response = app.delete(&format!("/v1/keys/{unknown}"), &app.admin_key).await;
        expect_error(response, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    }
}

#[tokio::test]
async fn the_last_active_admin_key_cannot_be_revoked() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let own = app.admin_key.split_once(':').expect("id").0;
    let response = app.delete(&format!("/v1/keys/{own}"), &app.admin_key).await;
    expect_error(response, StatusCode::CONFLICT, "last_admin_key", None).await;

    // With a second admin key (in another org) the first may go, then not the second.
    let (org, _) = app.tenant("tenant").await;
    let (_, other) = create_key(&app, json!({"org_id": org, "role": "admin"})).await;
    let response = app.delete(&format!("/v1/keys/{own}"), &other).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let other_id = other.split_once(':').expect("id").0;
    let response = app.delete(&format!("/v1/keys/{other_id}"), &other).await;
    expect_error(response, StatusCode::CONFLICT, "last_admin_key", None).await;
    assert_eq!(app.get("/v1/keys", &other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn tenant_and_investor_keys_get_403_on_key_and_org_routes() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let (_, investor) = create_key(&app, json!({"org_id": org, "role": "investor"})).await;
    let own = tenant.split_once(':').expect("id").0;
    let routes = [
        (Method::GET, "/v1/keys".to_owned(), None),
        (Method::DELETE, format!("/v1/keys/{own}"), None),
        (
            Method::PATCH,
            format!("/v1/orgs/{org}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/v1/orgs/{org}"), None),
    ];
    for key in [&tenant, &investor] {
        for (method, path, body) in &routes {
            let mut request = app.request(method.clone(), path, key);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request");
            expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
        }
    }
    // Nothing was revoked or changed.
    assert_eq!(app.get("/v1/webhooks", &tenant).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_org_retention_is_set_normalised_validated_and_reset() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, _) = app.tenant("tenant").await;
    let path = format!("/v1/orgs/{org}");
    let created = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(created["retention"], Value::Null);

    for (given, shown) in [
        ("7d", "7d"),
        ("90s", "90s"),
        ("12h", "12h"),
        ("48h", "2d"),
        ("1s", "1s"),
    ] {
        let org_out = expect_json(
            app.patch(&path, &app.admin_key, &json!({"retention": given}))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(org_out["retention"], shown, "{given}");
    }
    let renamed = expect_json(
        app.patch(&path, &app.admin_key, &json!({"name": "renamed"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "renamed");
    assert_eq!(renamed["retention"], "1s", "a name change keeps the retention");

    for bad in [
        json!("0s"),
        json!("-1s"),
        json!("abc"),
        json!("500ms"),
        json!(""),
        json!(7),
    ] {
        let response = app.patch(&path, &app.admin_key, &json!({"retention": bad})).await;
        let status = response.status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "retention {bad}");
        if bad.is_string() {
            expect_error(response, status, "invalid_value", Some("retention")).await;
        }
    }
    let response = app
        .patch(&path, &app.admin_key, &json!({"retentoin": "7d"}))
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("retentoin"),
    )
    .await;
    let response = app.patch(&path, &app.admin_key, &json!({"name": ""})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_value", Some("name")).await;

    let reset = expect_json(
        app.patch(&path, &app.admin_key, &json!({"retention": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reset["retention"], Value::Null);
    assert_eq!(reset["name"], "renamed");
    let fetched = expect_json(app.get(&path, &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(fetched, reset);

    let response = app
        .patch(
            "/v1/orgs/org_01jd5k3m6x7y8z9a0b1c2d3e4f",
            &app.admin_key,
            &json!({"name": "x"}),
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "resource_not_found", None).await;
}

#[tokio::test]
async fn an_erased_org_and_everything_in_it_answer_404_at_once() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let (org, tenant) = app.tenant("tenant").await;
    let webhook = app
        .create_webhook(&tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let webhook_id = webhook["id"].as_str().expect("id").to_owned();
    let event = app.publish(&tenant, "order.filled", json!({"n": 1})).await;
    let event_id = event["id"].as_str().expect("id").to_owned();
    let deliveries = app.deliveries_of(&tenant, &event_id).await;
    let delivery_id = deliveries[0]["id"].as_str().expect("id").to_owned();

    let erased = app.delete(&format!("/v1/orgs/{org}"), &app.admin_key).await;
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);

    let response = app.get("/v1/webhooks", &tenant).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
    let admin = &app.admin_key;
    for path in [
        format!("/v1/orgs/{org}"),
        format!("/v1/webhooks/{webhook_id}"),
        format!("/v1/webhooks/{webhook_id}?org_id={org}"),
        format!("/v1/events/{event_id}"),
        format!("/v1/events/{event_id}?org_id={org}"),
        format!("/v1/webhooks/events/{delivery_id}"),
        format!("/v1/webhooks/events/{delivery_id}?org_id={org}"),
        format!("/v1/webhooks/events/{delivery_id}/attempts?org_id={org}"),
    ] {
        let response = app.get(&path, admin).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        format!("/v1/webhooks?org_id={org}"),
        format!("/v1/webhooks/events?org_id={org}"),
    ] {
        let response = app.get(&path, admin).await;
        expect_error(response, StatusCode::BAD_REQUEST, "unknown_org", Some("org_id")).await;
    }
    let publish = app
        .post(
            "/v1/events",
            admin,
            &json!({"event_type": "order.filled", "data": {}, "org_id": org}),
        )
        .await;
    expect_error(publish, StatusCode::BAD_REQUEST, "unknown_org", Some("org_id")).await;
    let orgs = expect_json(app.get("/v1/orgs?limit=100", admin).await, StatusCode::OK).await;
    assert!(!ids(orgs["data"].as_array().expect("data")).contains(&org.as_str()));
    let keys = list_keys(&app, "?limit=100").await;
    assert!(keys.iter().all(|k| k["org_id"] != org.as_str()), "{keys:?}");

    let again = app.delete(&format!("/v1/orgs/{org}"), admin).await;
    expect_error(again, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    let response = app
        .patch(&format!("/v1/orgs/{org}"), admin, &json!({"name": "back"}))
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    let response = app
        .post("/v1/keys", admin, &json!({"org_id": org, "role": "tenant"}))
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "unknown_org", Some("org_id")).await;
}

#[tokio::test]
async fn the_org_holding_the_callers_own_key_cannot_be_erased() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let response = app
        .delete(&format!("/v1/orgs/{}", app.admin_org), &app.admin_key)
        .await;
    expect_error(response, StatusCode::CONFLICT, "org_in_use", None).await;
    let still = app
        .get(&format!("/v1/orgs/{}", app.admin_org), &app.admin_key)
        .await;
    assert_eq!(still.status(), StatusCode::OK);
    let response = app
        .delete("/v1/orgs/org_01jd5k3m6x7y8z9a0b1c2d3e4f", &app.admin_key)
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "resource_not_found", None).await;
}
