//! Secrets appear once, in the response that creates them, and nowhere else: not in later
//! responses, not in the logs, not in plain text in the database.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::process::Server;

#[tokio::test]
async fn signing_secrets_appear_only_in_the_response_that_creates_them() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("HERALD_LOG", "trace")]);
    let admin_key = server.admin_key();
    let client = super::support::http_client();
    let auth = format!("Bearer {admin_key}");

    let created: Value = client
        .post(server.url("/v1/webhooks"))
        .header("authorization", &auth)
        .json(&json!({"url": "https://example.com/hook", "name": "n"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let first_secret = created["signing_secret"].as_str().expect("secret").to_owned();
    let rotated: Value = client
        .post(server.url(&format!("/v1/webhooks/{id}/rotate-secret")))
        .header("authorization", &auth)
        .json(&json!({"expire_previous_in_seconds": 60}))
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    let second_secret = rotated["signing_secret"].as_str().expect("secret").to_owned();

    // Everything a user can read afterwards.
    let mut later = String::new();
    for path in [
        format!("/v1/webhooks/{id}"),
        "/v1/webhooks".to_owned(),
        "/metrics".to_owned(),
    ] {
        let response = client
            .get(server.url(&path))
            .header("authorization", &auth)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        later.push_str(&response.text().await.expect("body"));
    }
    let patched = client
        .patch(server.url(&format!("/v1/webhooks/{id}")))
        .header("authorization", &auth)
        .json(&json!({"name": "m"}))
        .send()
        .await
        .expect("patch");
    later.push_str(&patched.text().await.expect("body"));

    // The SQLite file and its WAL, or every row of the PostgreSQL database (bytea as hex).
    let stored = super::support::stored_bytes(dir.path());
    assert!(
        stored.windows(id.len()).any(|w| w == id.as_bytes()),
        "not the server's database: the webhook is not in it"
    );
    let output = server.output();
    let (_, api_key_secret) = admin_key.split_once(':').expect("key");
    for secret in [&first_secret, &second_secret] {
        let body = secret.trim_start_matches("whsec_");
        assert!(!later.contains(body), "a later response shows a signing secret");
        assert!(!output.contains(body), "the logs show a signing secret");
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let key = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64 secret");
        // As text, as raw key bytes, or as either in hex (how pg_dump shows a bytea).
        for plain in [
            body.as_bytes(),
            key.as_slice(),
            hex(body.as_bytes()).as_bytes(),
            hex(&key).as_bytes(),
        ] {
            assert!(
                !stored.windows(plain.len()).any(|w| w == plain),
                "a signing secret is stored in plain text"
            );
        }
    }
    let logs = server.stderr.lock().expect("lock").clone();
    assert!(!logs.contains(api_key_secret), "an API key secret was logged");
    assert!(
        server.stdout.lock().expect("lock").contains(api_key_secret),
        "the first admin key is printed on stdout, once, at first start"
    );
    assert!(output.contains("webhook created"), "logging was on: {output}");
    let key_file = dir.path().join("master.key");
    // Only SQLite generates a master key file; PostgreSQL is given HERALD_MASTER_KEY.
    #[cfg(unix)]
    if super::BACKEND == crate::Backend::Sqlite {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("master.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the generated master key is private");
    } else {
        assert!(
            !key_file.exists(),
            "no key file is generated when a master key is given"
        );
    }
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");
}

#[cfg(unix)]
#[tokio::test]
async fn the_embedded_database_files_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    skip_if_backend_unavailable!();
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let app = super::support::TestApp::spawn().await;
    app.create_webhook(&app.admin_key, json!({"url": "https://example.com/private"}))
        .await;
    for file in ["herald.db", "herald.db-wal", "herald.db-shm", "master.key"] {
        let mode = std::fs::metadata(app.dir.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {:o}", mode & 0o777);
    }
}

#[tokio::test]
async fn answers_that_carry_a_secret_are_never_cached() {
    skip_if_backend_unavailable!();
    let app = super::support::TestApp::spawn().await;
    let no_store = |response: &reqwest::Response| {
        response
            .headers()
            .get("cache-control")
            .map(|v| v.as_bytes().to_vec())
            == Some(b"no-store".to_vec())
    };
    let created = app
        .post(
            "/v1/webhooks",
            &app.admin_key,
            &json!({"url": "https://example.com/c"}),
        )
        .await;
    assert!(no_store(&created));
    let id = created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let rotated = app
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    assert!(no_store(&rotated));
    let key = app
        .post(
            "/v1/keys",
            &app.admin_key,
            &json!({"org_id": app.admin_org, "role": "tenant"}),
        )
        .await;
    assert_eq!(key.status(), StatusCode::CREATED);
    assert!(no_store(&key));
}
