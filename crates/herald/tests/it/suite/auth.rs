//! Authentication (Basic and Bearer), roles, and org isolation.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::{Settings, TestApp, expect_error, expect_json};

#[tokio::test]
async fn basic_and_bearer_credentials_both_work() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(&app.admin_key);
    let response = app
        .client
        .get(app.url("/v1/webhooks"))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.get("/v1/webhooks", &app.admin_key).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_a_401() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/webhooks"))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;

    let (key_id, secret) = app.admin_key.split_once(':').expect("key");
    let wrong_secret = format!("{key_id}:{}x", &secret[..secret.len() - 1]);
    let unknown_id = format!("key_01jd5k3m6x7y8z9a0b1c2d3e4f:{secret}");
    for bad in [wrong_secret.as_str(), unknown_id.as_str(), "garbage", key_id] {
        let response = app.get("/v1/webhooks", bad).await;
        let body = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
        assert!(!body.to_string().contains(secret));
    }
    let response = app
        .client
        .get(app.url("/v1/webhooks"))
        .header("authorization", "Digest abc")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
}

#[tokio::test]
async fn investor_keys_are_refused_on_every_webhook_route() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant_key) = app.tenant("tenant").await;
    let key = expect_json(
        app.post(
            "/v1/keys",
            &app.admin_key,
            &json!({"org_id": org, "role": "investor"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let investor = key["key"].as_str().expect("key").to_owned();
    let webhook = app
        .create_webhook(&tenant_key, json!({"url": "https://example.com/"}))
        .await;
    let id = webhook["id"].as_str().expect("id");

    let routes = [
        (Method::GET, "/v1/webhooks/event-types".to_owned()),
        (Method::POST, "/v1/webhooks".to_owned()),
        (Method::GET, "/v1/webhooks".to_owned()),
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::PATCH, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::POST, format!("/v1/webhooks/{id}/test")),
        (Method::POST, format!("/v1/webhooks/{id}/replay")),
        (Method::GET, "/v1/webhooks/events".to_owned()),
        (
            Method::GET,
            "/v1/webhooks/events/dlv_01jd5k3m6x7y8z9a0b1c2d3e4f".to_owned(),
        ),
        (
            Method::GET,
            "/v1/webhooks/events/dlv_01jd5k3m6x7y8z9a0b1c2d3e4f/attempts".to_owned(),
        ),
        (
            Method::POST,
            "/v1/webhooks/events/dlv_01jd5k3m6x7y8z9a0b1c2d3e4f/retry".to_owned(),
        ),
    ];
    for (method, path) in routes {
        let mut request = app.request(method.clone(), &path, &investor);
        if method == Method::POST || method == Method::PATCH {
            request = request.json(&json!({"url": "https://example.com/", "since": "2026-01-01T00:00:00Z"}));
        }
        let response = request.send().await.expect("request");
        expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
    }
    // Still there: nothing the investor sent had an effect.
    let fetched = expect_json(
        app.get(&format!("/v1/webhooks/{id}"), &tenant_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fetched["status"], "active");
}

#[tokio::test]
async fn another_orgs_webhook_is_not_found_for_every_route() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, alice) = app.tenant("tenant").await;
    let (_, bob) = app.tenant("tenant").await;
    let webhook = app
        .create_webhook(&alice, json!({"url": "https://example.com/"}))
        .await;
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));

    expect_error(
        app.get(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    expect_error(
        app.patch(&path, &bob, &json!({"name": "mine"})).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    expect_error(
        app.delete(&path, &bob).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    let rotate = app.post(&format!("{path}/rotate-secret"), &bob, &json!({})).await;
    expect_error(rotate, StatusCode::NOT_FOUND, "resource_not_found", None).await;
    let list = expect_json(app.get("/v1/webhooks", &bob).await, StatusCode::OK).await;
    assert_eq!(list["data"], json!([]));

    let fetched = expect_json(app.get(&path, &alice).await, StatusCode::OK).await;
    assert_eq!(
        fetched["name"],
        serde_json::Value::Null,
        "bob's patch changed nothing"
    );
}

#[tokio::test]
async fn tenants_cannot_act_for_another_org_but_admins_can() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (alice_org, alice) = app.tenant("tenant").await;
    let (bob_org, _) = app.tenant("tenant").await;

    let response = app
        .post(
            "/v1/webhooks",
            &alice,
            &json!({"url": "https://example.com/", "org_id": bob_org}),
        )
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", Some("org_id")).await;
    let response = app.get(&format!("/v1/webhooks?org_id={bob_org}"), &alice).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", Some("org_id")).await;
    let own = app.get(&format!("/v1/webhooks?org_id={alice_org}"), &alice).await;
    assert_eq!(own.status(), StatusCode::OK);

    // The admin creates in bob's org; bob's list shows it, the admin's own org does not.
    let created = app
        .create_webhook(
            &app.admin_key,
            json!({"url": "https://example.com/for-bob", "org_id": bob_org}),
        )
        .await;
    let listed = expect_json(
        app.get(&format!("/v1/webhooks?org_id={bob_org}"), &app.admin_key)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], created["id"]);
    let own = expect_json(app.get("/v1/webhooks", &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(own["data"], json!([]));
    // By id, an admin sees any org's webhook, or only the named org's when it names one.
    let path = format!("/v1/webhooks/{}", created["id"].as_str().expect("id"));
    assert_eq!(app.get(&path, &app.admin_key).await.status(), StatusCode::OK);
    let scoped = app
        .get(&format!("{path}?org_id={alice_org}"), &app.admin_key)
        .await;
    assert_eq!(scoped.status(), StatusCode::NOT_FOUND);

    let unknown = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/", "org_id": "org_01jd5k3m6x7y8z9a0b1c2d3e4f"}),
        )
        .await;
    expect_error(unknown, StatusCode::BAD_REQUEST, "unknown_org", Some("org_id")).await;
}

#[tokio::test]
async fn only_admins_manage_orgs_and_keys() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let response = app.post("/v1/orgs", &tenant, &json!({"name": "sneaky"})).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
    let response = app
        .post("/v1/keys", &tenant, &json!({"org_id": org, "role": "admin"}))
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;
    let response = app.get("/v1/orgs", &tenant).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden", None).await;

    let response = app
        .post(
            "/v1/keys",
            &app.admin_key,
            &json!({"org_id": org, "role": "owner"}),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_value", Some("role")).await;
    let orgs = expect_json(app.get("/v1/orgs", &app.admin_key).await, StatusCode::OK).await;
    assert_eq!(
        orgs["data"].as_array().map(Vec::len),
        Some(2),
        "default and the tenant's"
    );
    let one = expect_json(
        app.get(&format!("/v1/orgs/{org}"), &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["object"], "org");
}

#[tokio::test]
async fn guessing_keys_is_braked_with_a_429_that_never_holds_back_a_valid_key() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        auth_failure_limit: Some(5),
        ..Settings::default()
    })
    .await;
    let (key_id, _) = app.admin_key.split_once(':').expect("id:secret");
    let guess = format!("{key_id}:wrong-secret");
    for _ in 0..5 {
        let response = app.get("/v1/webhooks", &guess).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key", None).await;
    }
    let braked = app.get("/v1/webhooks", &guess).await;
    let retry_after: u64 = braked
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_error(
        braked,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_authentications",
        None,
    )
    .await;

    // The valid key, from the same address, still works at once.
    let response = app.get("/v1/webhooks", &app.admin_key).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Requests without credentials are mistakes, not guesses: still a 401.
    let anonymous = app
        .client
        .get(app.url("/v1/webhooks"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains("herald_auth_throttled_total"), "{metrics}");
}
