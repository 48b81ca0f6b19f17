//! The address guard: a webhook may only reach public addresses, checked when it connects
//! (after DNS), unless the operator allowed the network.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::receiver::TestReceiver;
use super::support::{Settings, TestApp, expect_error};

/// Not development mode: plain http is allowed (the receiver has no TLS) but private
/// addresses are not.
async fn guarded_app(allowed: Option<&str>) -> TestApp {
    TestApp::spawn_with(Settings {
        allow_http: true,
        retry_schedule: Some("1h".into()),
        allowed_target_networks: allowed.map(str::to_owned),
        ..Settings::default()
    })
    .await
}

async fn first_attempt(app: &TestApp, url: &str) -> Value {
    app.create_webhook(&app.admin_key, json!({"url": url})).await;
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let dlv = &app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await[0];
    let id = dlv["id"].as_str().expect("id");
    app.wait_delivery(&app.admin_key, id, |d| d["attempt_count"] == 1)
        .await;
    app.attempts(&app.admin_key, id).await.remove(0)
}

#[tokio::test]
async fn hostnames_that_resolve_to_loopback_are_blocked_when_connecting() {
    skip_if_backend_unavailable!();
    let app = guarded_app(None).await;
    let receiver = TestReceiver::start().await;
    let mut hosts = vec!["localhost".to_owned()];
    // The machine's own name usually resolves to loopback too (127.0.1.1 on Debian).
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let name = name.trim().to_owned();
        let resolves_to_loopback = tokio::net::lookup_host((name.as_str(), 80))
            .await
            .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
            .unwrap_or(false);
        if !name.is_empty() && resolves_to_loopback {
            hosts.push(name);
        }
    }
    for host in hosts {
        let url = format!("http://{host}:{}/ssrf", receiver.addr.port());
        let attempt = first_attempt(&app, &url).await;
        assert_eq!(attempt["error"], "blocked_address", "{host}: {attempt}");
        assert_eq!(attempt["response_status"], Value::Null);
        let message = attempt["error_message"].as_str().expect("message");
        assert!(message.contains("HERALD_ALLOWED_TARGET_NETWORKS"), "{message}");
        // The tenant learns nothing of what the name resolves to.
        for leak in ["127.", "::1", &host] {
            assert!(!message.contains(leak), "the message names `{leak}`: {message}");
        }
    }
    assert!(
        receiver.received("/ssrf").is_empty(),
        "nothing reached the loopback receiver"
    );
}

#[tokio::test]
async fn ip_literals_in_private_ranges_are_refused_in_every_spelling() {
    skip_if_backend_unavailable!();
    let app = guarded_app(None).await;
    for host in [
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "[::ffff:7f00:1]",
        "2130706433",
    ] {
        let response = app
            .post(
                "/v1/webhooks",
                &app.admin_key,
                &json!({"url": format!("http://{host}:9/x")}),
            )
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "blocked_url", Some("url")).await;
    }
}

#[tokio::test]
async fn an_allowed_network_is_exempt_from_the_block() {
    skip_if_backend_unavailable!();
    let app = guarded_app(Some("127.0.0.0/8,::1/128")).await;
    let receiver = TestReceiver::start().await;
    let attempt = first_attempt(&app, &receiver.url("/allowed")).await;
    assert_eq!(attempt["error"], Value::Null, "{attempt}");
    assert_eq!(attempt["response_status"], 204);
    let attempt = first_attempt(&app, &receiver.ip_url("/allowed")).await;
    assert_eq!(
        attempt["response_status"], 204,
        "an allowed IP literal is accepted too"
    );
}

#[tokio::test]
async fn unresolvable_hosts_and_tls_failures_are_named() {
    skip_if_backend_unavailable!();
    let app = guarded_app(Some("127.0.0.0/8,::1/128")).await;
    let attempt = first_attempt(&app, "http://no-such-host.invalid/x").await;
    assert_eq!(attempt["error"], "dns", "{attempt}");
    // TLS spoken to a plain-HTTP server fails in the handshake.
    let receiver = TestReceiver::start().await;
    let attempt = first_attempt(&app, &format!("https://localhost:{}/tls", receiver.addr.port())).await;
    assert_eq!(attempt["error"], "tls", "{attempt}");
}
