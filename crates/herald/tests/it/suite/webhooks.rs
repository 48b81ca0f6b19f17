//! Creating, reading, changing, deleting webhooks and rotating their secrets.

use reqwest::StatusCode;
use serde_json::json;

use super::support::{Settings, TestApp, expect_error, expect_json};

#[tokio::test]
async fn creating_a_webhook_returns_it_with_its_signing_secret_once() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let created = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/hooks", "name": "orders", "description": "fills", "event_types": ["order.filled", "transfer.*"]}),
        )
        .await;

    let id = created["id"].as_str().expect("id");
    assert!(id.starts_with("wh_") && id.len() == 29, "{id}");
    assert_eq!(created["object"], "webhook");
    assert_eq!(created["url"], "https://example.com/hooks");
    assert_eq!(created["name"], "orders");
    assert_eq!(created["description"], "fills");
    assert_eq!(created["status"], "active");
    assert_eq!(created["event_types"], json!(["order.filled", "transfer.*"]));
    assert_eq!(created["has_signing_secret"], true);
    let secret = created["signing_secret"].as_str().expect("secret on create");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        created["signing_secret_last4"].as_str(),
        Some(&secret[secret.len() - 4..])
    );
    assert!(
        created.get("last_triggered_at").is_none(),
        "omitted until the first attempt"
    );
    assert!(created.get("disabled_reason").is_none());
    let created_at = created["created_at"].as_str().expect("created_at");
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );

    let fetched = expect_json(app.get(&format!("/v1/webhooks/{id}"), &key).await, StatusCode::OK).await;
    assert!(
        fetched.get("signing_secret").is_none(),
        "the secret is shown only on create"
    );
    assert!(fetched.get("last_triggered_at").is_none());
    assert_eq!(fetched["event_types"], created["event_types"]);
}

#[tokio::test]
async fn omitted_event_types_mean_every_type_and_aliases_are_accepted() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let all = app
        .create_webhook(&key, json!({"url": "https://example.com/a"}))
        .await;
    assert_eq!(all["event_types"], serde_json::Value::Null);

    let by_alias = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/b", "eventTypeNames": ["order.filled"]}),
        )
        .await;
    assert_eq!(by_alias["event_types"], json!(["order.filled"]));
    let by_events = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/c", "events": ["kyc.*", "kyc.*"]}),
        )
        .await;
    assert_eq!(
        by_events["event_types"],
        json!(["kyc.*"]),
        "duplicates are dropped"
    );
}

#[tokio::test]
async fn event_types_that_match_nothing_in_the_catalog_are_refused() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    for bad in [
        json!(["order.fill"]),
        json!(["order.filled", "orders.*"]),
        json!(["webhook.test"]),
        json!(["Order.Filled"]),
    ] {
        let response = app
            .post(
                "/v1/webhooks",
                &key,
                &json!({"url": "https://example.com/", "event_types": bad}),
            )
            .await;
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "unknown_event_type",
            Some("event_types"),
        )
        .await;
    }
    let response = app
        .post(
            "/v1/webhooks",
            &key,
            &json!({"url": "https://example.com/", "event_types": []}),
        )
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("event_types"),
    )
    .await;
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn a_replaced_catalog_decides_which_types_exist() {
    skip_if_backend_unavailable!();
    let catalog = "[[event_types]]\ntype = \"invoice.paid\"\nname = \"Invoice paid\"\ndescription = \"An invoice was paid\"\n";
    let app = TestApp::spawn_with(Settings {
        catalog: Some(catalog.to_owned()),
        ..Settings::default()
    })
    .await;
    let list = expect_json(
        app.get("/v1/webhooks/event-types", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;
    let data = list["data"].as_array().expect("data");
    assert_eq!(
        data[0],
        json!({"object": "event_type", "type": "invoice.paid", "group": "invoice", "name": "Invoice paid", "description": "An invoice was paid", "operational": false})
    );
    let operational: Vec<&str> = data[1..].iter().filter_map(|t| t["type"].as_str()).collect();
    assert_eq!(
        operational,
        ["webhook.disabled", "webhook.enabled", "delivery.failed"],
        "Herald's own types are in every catalog"
    );
    app.create_webhook(
        &app.admin_key,
        json!({"url": "https://example.com/", "events": ["invoice.*"]}),
    )
    .await;
    let response = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/", "events": ["order.filled"]}),
        )
        .await;
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "unknown_event_type",
        Some("event_types"),
    )
    .await;
}

#[tokio::test]
async fn the_built_in_catalog_lists_every_type_with_group_description_and_example() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let list = expect_json(app.get("/v1/webhooks/event-types", &key).await, StatusCode::OK).await;
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.iter().filter(|t| t["operational"] == false).count(), 17);
    assert_eq!(data.iter().filter(|t| t["operational"] == true).count(), 3);
    let filled = data
        .iter()
        .find(|t| t["type"] == "order.filled")
        .expect("order.filled");
    assert_eq!(filled["group"], "order");
    assert_eq!(filled["name"], "Order filled");
    assert_eq!(filled["description"], "Order fully filled");
    assert_eq!(filled["operational"], false);
    assert_eq!(filled["example"]["status"], "filled");
    assert!(
        data.iter()
            .all(|t| t["example"].is_object() && t.get("schema").is_none()),
        "every built-in type has an example and no schema"
    );
    assert!(
        data.iter().all(|t| t["type"] != "webhook.test"),
        "webhook.test is never listed"
    );
}

#[tokio::test]
async fn urls_must_be_https_and_must_not_name_private_addresses() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let cases = [
        ("http://example.com/", "invalid_url"),
        ("ftp://example.com/", "invalid_url"),
        ("not a url", "invalid_url"),
        ("https://127.0.0.1/hook", "blocked_url"),
        ("https://[::1]/hook", "blocked_url"),
        ("https://[::ffff:127.0.0.1]/hook", "blocked_url"),
        ("https://0.0.0.0/hook", "blocked_url"),
        ("https://10.0.0.5/hook", "blocked_url"),
        ("https://169.254.169.254/latest", "blocked_url"),
    ];
    for (url, code) in cases {
        let response = app.post("/v1/webhooks", &key, &json!({"url": url})).await;
        expect_error(response, StatusCode::BAD_REQUEST, code, Some("url")).await;
    }
    let long = format!("https://example.com/{}", "a".repeat(2040));
    let response = app.post("/v1/webhooks", &key, &json!({"url": long})).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_url", Some("url")).await;
}

#[tokio::test]
async fn plain_http_is_accepted_when_the_operator_allows_it() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        allow_http: true,
        ..Settings::default()
    })
    .await;
    let created = app
        .create_webhook(&app.admin_key, json!({"url": "http://example.com/hook"}))
        .await;
    assert_eq!(created["url"], "http://example.com/hook");
    let response = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "http://127.0.0.1/"}),
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "blocked_url", Some("url")).await;
}

#[tokio::test]
async fn a_url_without_a_scheme_is_refused_as_having_no_scheme_even_in_dev_mode() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        ..Settings::default()
    })
    .await;
    let response = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "localhost:3000/hook"}),
        )
        .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "invalid_url", Some("url")).await;
    assert_eq!(
        body["error"]["message"],
        "url has no scheme: write it with https:// (or http://), e.g. http://localhost:3000/hook"
    );
}

#[tokio::test]
async fn patching_changes_only_the_given_fields_and_advances_updated_at() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let created = app
        .create_webhook(&key, json!({"url": "https://example.com/a", "name": "first", "description": "d", "events": ["order.*"]}))
        .await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().expect("id"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let patched = expect_json(
        app.patch(
            &path,
            &key,
            &json!({"name": "second", "event_types": ["kyc.verification.approved"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "second");
    assert_eq!(patched["description"], "d", "untouched");
    assert_eq!(patched["url"], "https://example.com/a", "untouched");
    assert_eq!(
        patched["event_types"],
        json!(["kyc.verification.approved"]),
        "the set is replaced"
    );
    assert!(patched["updated_at"].as_str() > created["updated_at"].as_str());
    assert_eq!(patched["created_at"], created["created_at"]);

    let cleared = expect_json(
        app.patch(
            &path,
            &key,
            &json!({"description": null, "event_types": null, "url": "https://example.org/b"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["description"], serde_json::Value::Null);
    assert_eq!(
        cleared["event_types"],
        serde_json::Value::Null,
        "null = every type"
    );
    assert_eq!(cleared["url"], "https://example.org/b");

    let refused = app
        .patch(&path, &key, &json!({"url": "https://192.168.1.1/"}))
        .await;
    expect_error(refused, StatusCode::BAD_REQUEST, "blocked_url", Some("url")).await;
    let refused = app.patch(&path, &key, &json!({"url": null})).await;
    expect_error(refused, StatusCode::BAD_REQUEST, "invalid_url", Some("url")).await;
    let refused = app.patch(&path, &key, &json!({"status": "paused"})).await;
    expect_error(refused, StatusCode::BAD_REQUEST, "invalid_value", Some("status")).await;
    let refused = app
        .patch(&path, &key, &json!({"signing_secret": "whsec_x"}))
        .await;
    expect_error(
        refused,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        Some("signing_secret"),
    )
    .await;
}

#[tokio::test]
async fn disabling_shows_a_reason_and_enabling_removes_it() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let created = app
        .create_webhook(&key, json!({"url": "https://example.com/a"}))
        .await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().expect("id"));

    let disabled = expect_json(
        app.patch(&path, &key, &json!({"status": "disabled"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(disabled["status"], "disabled");
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );

    let enabled = expect_json(
        app.patch(&path, &key, &json!({"status": "active"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(enabled["status"], "active");
    assert!(enabled.get("disabled_reason").is_none());
}

#[tokio::test]
async fn deleted_webhooks_are_gone_from_get_list_and_every_route() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let kept = app
        .create_webhook(&key, json!({"url": "https://example.com/kept"}))
        .await;
    let gone = app
        .create_webhook(&key, json!({"url": "https://example.com/gone"}))
        .await;
    let path = format!("/v1/webhooks/{}", gone["id"].as_str().expect("id"));

    let response = app.delete(&path, &key).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.expect("body"), "");

    expect_error(
        app.get(&path, &key).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    expect_error(
        app.delete(&path, &key).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    expect_error(
        app.patch(&path, &key, &json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
        None,
    )
    .await;
    let rotate = app.post(&format!("{path}/rotate-secret"), &key, &json!({})).await;
    expect_error(rotate, StatusCode::NOT_FOUND, "resource_not_found", None).await;

    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    let ids: Vec<_> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(ids, vec![kept["id"].clone()]);
}

#[tokio::test]
async fn rotating_a_secret_returns_a_new_one_and_updates_last4() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let created = app
        .create_webhook(&key, json!({"url": "https://example.com/a"}))
        .await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().expect("id"));

    // No body at all is fine: the old secret stops at once.
    let response = app
        .request(reqwest::Method::POST, &format!("{path}/rotate-secret"), &key)
        .send()
        .await
        .expect("request");
    let rotated = expect_json(response, StatusCode::OK).await;
    assert_eq!(rotated["object"], "signing_secret");
    let secret = rotated["signing_secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"));
    assert_ne!(rotated["signing_secret"], created["signing_secret"]);

    let fetched = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(
        fetched["signing_secret_last4"].as_str(),
        Some(&secret[secret.len() - 4..])
    );

    let overlap = app
        .post(
            &format!("{path}/rotate-secret"),
            &key,
            &json!({"expire_previous_in_seconds": 3600}),
        )
        .await;
    expect_json(overlap, StatusCode::OK).await;
    let too_long = app
        .post(
            &format!("{path}/rotate-secret"),
            &key,
            &json!({"expire_previous_in_seconds": 604_801}),
        )
        .await;
    expect_error(
        too_long,
        StatusCode::BAD_REQUEST,
        "invalid_value",
        Some("expire_previous_in_seconds"),
    )
    .await;
}

#[tokio::test]
async fn a_rotation_overlap_keeps_the_previous_secret_signing_until_it_expires() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let created = app
        .create_webhook(&app.admin_key, json!({"url": "https://example.com/a"}))
        .await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/v1/webhooks/{id}/rotate-secret");

    let first = app
        .post(
            &path,
            &app.admin_key,
            &json!({"expire_previous_in_seconds": 3600}),
        )
        .await;
    expect_json(first, StatusCode::OK).await;

    // What the delivery engine will sign with: read through the store the server uses.
    let store = app.store().await;
    let webhook_id = herald::domain::ids::WebhookId::parse(id).expect("id");
    let now = herald::domain::time::now_ms();
    let secrets = store
        .webhook_secrets(webhook_id.clone(), now)
        .await
        .expect("secrets");
    assert_eq!(secrets.len(), 2, "new and previous both sign during the overlap");
    assert!(secrets[0].expires_at.is_none(), "the current secret comes first");
    assert!(secrets[1].expires_at.is_some_and(|t| t > now + 3_500_000));

    // A rotation without overlap ends every previous secret at once.
    expect_json(app.post(&path, &app.admin_key, &json!({})).await, StatusCode::OK).await;
    let secrets = store
        .webhook_secrets(webhook_id, herald::domain::time::now_ms())
        .await
        .expect("secrets");
    assert_eq!(secrets.len(), 1, "only the newest secret signs");
    assert!(secrets[0].expires_at.is_none());
}
