//! `Idempotency-Key`: replays, conflicts, scoping to the API key that sent it, and stored
//! answers sealed at rest.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::{TestApp, expect_error, expect_json, stored_bytes};

async fn post_with_key(app: &TestApp, key: &str, idem: &str, body: &Value) -> reqwest::Response {
    post_to(app, "/v1/webhooks", key, idem, body).await
}

async fn post_to(app: &TestApp, path: &str, key: &str, idem: &str, body: &Value) -> reqwest::Response {
    app.request(Method::POST, path, key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn replayed(response: &reqwest::Response) -> bool {
    response.headers().get("idempotent-replayed").is_some()
}

/// A key of `role` in `org`, made by the admin.
async fn key_in(app: &TestApp, org: &str, role: &str) -> String {
    let body = json!({"org_id": org, "role": role});
    let key = expect_json(
        app.post("/v1/keys", &app.admin_key, &body).await,
        StatusCode::CREATED,
    )
    .await;
    key["key"].as_str().expect("key").to_owned()
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
async fn an_admins_new_key_is_never_replayed_to_a_tenant_or_investor_of_the_same_org() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let org = app.admin_org.clone();
    let tenant = key_in(&app, &org, "tenant").await;
    let investor = key_in(&app, &org, "investor").await;
    let body = json!({"org_id": org, "role": "admin"});
    let made = post_to(&app, "/v1/keys", &app.admin_key, "new admin", &body).await;
    let made = expect_json(made, StatusCode::CREATED).await;
    let secret = made["key"].as_str().expect("key").to_owned();

    for other in [&tenant, &investor] {
        let response = post_to(&app, "/v1/keys", other, "new admin", &body).await;
        assert!(!replayed(&response), "another caller's answer was replayed");
        let text = response.text().await.expect("body");
        assert!(!text.contains(&secret), "the admin key leaked: {text}");
        let error: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(error["error"]["code"], "forbidden", "{text}");
    }
    // The admin who made it still gets its own answer back.
    let again = post_to(&app, "/v1/keys", &app.admin_key, "new admin", &body).await;
    assert!(replayed(&again));
    assert_eq!(
        expect_json(again, StatusCode::CREATED).await["key"],
        secret.as_str()
    );
}

#[tokio::test]
async fn a_tenants_signing_secret_is_never_replayed_to_an_investor() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let investor = key_in(&app, &org, "investor").await;
    let body = json!({"url": "https://example.com/secret"});
    let created = expect_json(
        post_with_key(&app, &tenant, "mine", &body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();

    let stolen = post_with_key(&app, &investor, "mine", &body).await;
    assert!(!replayed(&stolen));
    expect_error(stolen, StatusCode::FORBIDDEN, "forbidden", None).await;

    let rotate = format!("/v1/webhooks/{id}/rotate-secret");
    let rotated = post_to(&app, &rotate, &tenant, "rotate", &json!({})).await;
    let rotated = expect_json(rotated, StatusCode::OK).await;
    assert!(
        rotated["signing_secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let stolen = post_to(&app, &rotate, &investor, "rotate", &json!({})).await;
    assert!(!replayed(&stolen));
    expect_error(stolen, StatusCode::FORBIDDEN, "forbidden", None).await;
}

#[tokio::test]
async fn an_investors_stored_403_is_not_replayed_to_a_tenant() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let investor = key_in(&app, &org, "investor").await;
    let body = json!({"url": "https://example.com/after-403"});
    let refused = post_with_key(&app, &investor, "same", &body).await;
    expect_error(refused, StatusCode::FORBIDDEN, "forbidden", None).await;
    let refused_again = post_with_key(&app, &investor, "same", &body).await;
    assert!(replayed(&refused_again), "the investor's own 403 is kept for it");

    let allowed = post_with_key(&app, &tenant, "same", &body).await;
    assert!(!replayed(&allowed));
    let allowed = expect_json(allowed, StatusCode::CREATED).await;
    assert_eq!(allowed["url"], "https://example.com/after-403");
}

#[tokio::test]
async fn stored_answers_keep_no_secret_readable_in_the_database() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let created = post_with_key(&app, &tenant, "create", &json!({"url": "https://example.com/s"})).await;
    let created = expect_json(created, StatusCode::CREATED).await;
    let id = created["id"].as_str().expect("id");
    let rotate = format!("/v1/webhooks/{id}/rotate-secret");
    let rotated = expect_json(
        post_to(&app, &rotate, &tenant, "rotate", &json!({})).await,
        StatusCode::OK,
    )
    .await;
    let body = json!({"org_id": org, "role": "tenant"});
    let key = expect_json(
        post_to(&app, "/v1/keys", &app.admin_key, "key", &body).await,
        StatusCode::CREATED,
    )
    .await;

    // The answers are stored: each replays.
    assert!(replayed(
        &post_to(&app, &rotate, &tenant, "rotate", &json!({})).await
    ));
    assert!(replayed(
        &post_to(&app, "/v1/keys", &app.admin_key, "key", &body).await
    ));

    let secrets = [
        created["signing_secret"].as_str().expect("secret").to_owned(),
        rotated["signing_secret"].as_str().expect("secret").to_owned(),
        key["key"]
            .as_str()
            .expect("key")
            .split_once(':')
            .expect("id:secret")
            .1
            .to_owned(),
        key["basic_auth"].as_str().expect("basic auth").to_owned(),
    ];
    let stored = stored_bytes(app.dir.path());
    for secret in &secrets {
        // The base64 body of a whsec_ secret, and the API key's secret, in any form stored.
        // pg_dump prints a bytea column as hex, so look for that spelling too.
        let needle = secret.trim_start_matches("whsec_");
        let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
        for form in [needle, hex.as_str()] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "a secret is readable in the database"
            );
        }
    }
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
