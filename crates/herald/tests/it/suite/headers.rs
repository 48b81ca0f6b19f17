//! A webhook's custom `headers`: sent exactly as set on every attempt (test sends too) beside
//! Herald's own, which they can never replace; replaced and cleared by `PATCH`; refused with
//! the field named when bad; stored encrypted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::delivery::verify_independently;
use super::support::receiver::{Received, TestReceiver};
use super::support::{TestApp, expect_error, expect_json, stored_bytes};

/// The custom headers the receiver got, by their lowercase names (as HTTP has them).
fn custom(received: &Received, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| {
            let lower = name.to_ascii_lowercase();
            let value = received.headers.get(&lower).cloned().unwrap_or_default();
            (lower, value)
        })
        .collect()
}

/// Asserts that a delivery carries Herald's own headers, untouched: its event id, a
/// signature that verifies with `secret`, JSON, and Herald's user agent.
fn herald_headers_intact(received: &Received, secret: &str) {
    assert_eq!(
        received.header("webhook-id"),
        received.json()["id"].as_str().expect("id")
    );
    verify_independently(secret, received);
    assert_eq!(received.header("content-type"), "application/json");
    assert!(
        received.header("user-agent").starts_with("Herald/"),
        "{:?}",
        received.headers
    );
}

#[tokio::test]
async fn headers_arrive_exactly_as_set_and_never_replace_webhook_headers() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, key) = app.tenant("tenant").await;
    let headers = json!({
        "X-Api-Key": "k3y:with spaces & symbols ~!",
        "Authorization": "Bearer abc.def",
        "x-empty": "",
    });
    let created = app
        .create_webhook(&key, json!({"url": receiver.url("/hook"), "headers": headers}))
        .await;
    assert_eq!(created["headers"], headers, "the webhook object shows them");
    let id = created["id"].as_str().expect("id");
    let secret = created["signing_secret"].as_str().expect("secret");
    let fetched = expect_json(app.get(&format!("/v1/webhooks/{id}"), &key).await, StatusCode::OK).await;
    assert_eq!(fetched["headers"], headers);
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(list["data"][0]["headers"], headers);

    app.publish(&key, "order.filled", json!({"n": 1})).await;
    let tested = app
        .post(&format!("/v1/webhooks/{id}/test"), &key, &json!({}))
        .await;
    assert_eq!(tested.status(), StatusCode::ACCEPTED);
    let got = receiver.wait_for("/hook", 2).await;
    let names = ["X-Api-Key", "Authorization", "x-empty"];
    let expected = vec![
        ("x-api-key".to_owned(), "k3y:with spaces & symbols ~!".to_owned()),
        ("authorization".to_owned(), "Bearer abc.def".to_owned()),
        ("x-empty".to_owned(), String::new()),
    ];
    for received in &got {
        assert_eq!(custom(received, &names), expected, "{:?}", received.headers);
        assert!(received.headers.contains_key("x-empty"));
        herald_headers_intact(received, secret);
    }
    let mut events: Vec<String> = got
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    events.sort();
    assert_eq!(
        events,
        ["order.filled", "webhook.test"],
        "a published delivery and a test send"
    );

    // A webhook without headers gets Herald's alone, and shows `{}`.
    let plain = app
        .create_webhook(&key, json!({"url": receiver.url("/plain")}))
        .await;
    assert_eq!(plain["headers"], json!({}));
    app.post(
        &format!("/v1/webhooks/{}/test", plain["id"].as_str().expect("id")),
        &key,
        &json!({}),
    )
    .await;
    let got = receiver.wait_for("/plain", 1).await;
    assert!(!got[0].headers.contains_key("x-api-key"));
    herald_headers_intact(&got[0], plain["signing_secret"].as_str().expect("secret"));
}

#[tokio::test]
async fn patch_replaces_the_whole_set_and_an_empty_object_or_null_clears_it() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let key = app.admin_key.clone();
    let created = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/hook"), "headers": {"X-One": "1", "X-Two": "2"}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().expect("id"));
    let send = |n: usize| {
        let (app, key, receiver) = (&app, key.clone(), receiver.clone());
        async move {
            app.publish(&key, "order.filled", json!({"n": n})).await;
            receiver.wait_for("/hook", n).await.pop().expect("a delivery")
        }
    };
    let first = send(1).await;
    assert_eq!(first.header("x-one"), "1");
    assert_eq!(first.header("x-two"), "2");

    let patched = expect_json(
        app.patch(&path, &key, &json!({"headers": {"X-Three": "3"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["headers"], json!({"X-Three": "3"}));
    let second = send(2).await;
    assert_eq!(second.header("x-three"), "3", "the next delivery has the new set");
    assert!(!second.headers.contains_key("x-one") && !second.headers.contains_key("x-two"));

    let renamed = expect_json(
        app.patch(&path, &key, &json!({"name": "n"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        renamed["headers"],
        json!({"X-Three": "3"}),
        "a PATCH without headers leaves them"
    );

    for clear in [json!({}), Value::Null] {
        expect_json(
            app.patch(&path, &key, &json!({"headers": {"X-Back": "b"}})).await,
            StatusCode::OK,
        )
        .await;
        let cleared = expect_json(
            app.patch(&path, &key, &json!({"headers": clear})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(cleared["headers"], json!({}), "{clear} clears them");
        let fetched = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
        assert_eq!(fetched["headers"], json!({}));
    }
    let third = send(3).await;
    assert!(
        !third.headers.contains_key("x-three") && !third.headers.contains_key("x-back"),
        "{:?}",
        third.headers
    );
}

#[tokio::test]
async fn bad_headers_are_a_400_invalid_value_naming_the_field_on_create_and_patch() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let key = app.admin_key.clone();
    let many: serde_json::Map<String, Value> = (0..21).map(|i| (format!("X-{i}"), json!("v"))).collect();
    let mut cases = vec![
        (json!("X-Api-Key: k"), "headers"),
        (json!(["X-Api-Key", "k"]), "headers"),
        (json!(7), "headers"),
        (Value::Object(many), "headers"),
        (json!({"X-Key": 1}), "headers.X-Key"),
        (json!({"X-Key": null}), "headers.X-Key"),
        (json!({"X-Key": ["k"]}), "headers.X-Key"),
        (json!({"X-Key": {"k": "v"}}), "headers.X-Key"),
        (json!({"X-Bad Name": "v"}), "headers.X-Bad Name"),
        (json!({"X:Colon": "v"}), "headers.X:Colon"),
        (json!({"": "v"}), "headers."),
        (json!({"X-Key": "a\nb"}), "headers.X-Key"),
        (json!({"X-Key": "a\u{1}b"}), "headers.X-Key"),
        (json!({"X-Key": "caf\u{e9}"}), "headers.X-Key"),
        (json!({"X-Key": "x".repeat(1025)}), "headers.X-Key"),
    ];
    for reserved in [
        "webhook-id",
        "Webhook-Signature",
        "WEBHOOK-TIMESTAMP",
        "webhook-anything",
        "Content-Type",
        "content-length",
        "HOST",
        "User-Agent",
        "Connection",
        "Transfer-Encoding",
        "TE",
        "trailer",
        "Upgrade",
    ] {
        cases.push((json!({ reserved: "v" }), ""));
    }
    let param = |headers: &Value, param: &'static str| {
        if param.is_empty() {
            let name = headers
                .as_object()
                .and_then(|o| o.keys().next())
                .expect("one name");
            format!("headers.{name}")
        } else {
            param.to_owned()
        }
    };
    for (headers, at) in &cases {
        let at = param(headers, at);
        expect_error(
            app.post(
                "/v1/webhooks",
                &key,
                &json!({"url": "https://example.com/hook", "headers": headers}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some(&at),
        )
        .await;
    }
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(
        list["data"].as_array().expect("data").len(),
        0,
        "nothing was created"
    );

    let twenty: serde_json::Map<String, Value> = (0..20).map(|i| (format!("X-{i}"), json!("v"))).collect();
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/hook", "headers": {"X-Kept": "k"}}),
        )
        .await;
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().expect("id"));
    for (headers, at) in &cases {
        let at = param(headers, at);
        expect_error(
            app.patch(&path, &key, &json!({"headers": headers})).await,
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some(&at),
        )
        .await;
    }
    let fetched = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(
        fetched["headers"],
        json!({"X-Kept": "k"}),
        "a refused PATCH changes nothing"
    );
    let most = Value::Object(twenty);
    let patched = expect_json(
        app.patch(&path, &key, &json!({"headers": most})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["headers"], most, "20 headers are allowed");
}

#[tokio::test]
async fn header_values_are_stored_encrypted() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let key = app.admin_key.clone();
    let value = "plain-header-value-7f3a9c";
    let created = app
        .create_webhook(
            &key,
            json!({"url": "https://example.com/hook", "headers": {"X-Api-Key": value}}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    let patched = "patched-header-value-2b8e1d";
    expect_json(
        app.patch(
            &format!("/v1/webhooks/{id}"),
            &key,
            &json!({"headers": {"X-Api-Key": patched}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let stored = stored_bytes(app.dir.path());
    assert!(
        stored.windows(id.len()).any(|w| w == id.as_bytes()),
        "not the server's database: the webhook is not in it"
    );
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for plain in [value, patched] {
        for form in [plain.as_bytes().to_vec(), hex(plain.as_bytes()).into_bytes()] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_slice()),
                "a header value is stored in plain text"
            );
        }
    }
}
