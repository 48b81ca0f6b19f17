//! Upgrades keep data: a database written by the previous release (the fixtures of
//! `tests/fixtures/upgrade/`, made by `make.py` with that release's binary) opens under this
//! build, is migrated in place, answers every webhook, event, delivery and attempt through
//! the API, and delivers what was pending.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::process::Server;
use super::support::receiver::TestReceiver;
use super::support::{database_url, expect_json, http_client};
use crate::Backend;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

/// What the previous release made in this backend's database, and the database, laid into
/// `dir` for a server to start on.
fn previous_release_database(dir: &Path) -> Value {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("fixture.json")).expect("fixture.json"),
    )
    .expect("fixture JSON");
    match super::BACKEND {
        Backend::Sqlite => {
            for file in ["herald.db", "master.key"] {
                std::fs::copy(fixtures().join("sqlite").join(file), dir.join(file)).expect("copy fixture");
            }
            fixture["sqlite"].clone()
        }
        Backend::Postgres => {
            let url = database_url(dir);
            let dump = std::fs::read_to_string(fixtures().join("postgres.sql")).expect("postgres.sql");
            crate::pg_cluster::restore(crate::pg_cluster::database_name(&url), &dump);
            fixture["postgres"].clone()
        }
    }
}

async fn get(server: &Server, key: &str, path: &str) -> Value {
    let response = http_client()
        .get(server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

#[tokio::test]
async fn a_database_of_the_previous_release_keeps_its_data_and_delivers_what_was_pending() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let made = previous_release_database(dir.path());
    // The fixture ages: a retention longer than its life, so the data it checks stays.
    let server = Server::start(
        dir.path(),
        &[("HERALD_DEV", "true"), ("HERALD_RETENTION", "36500d")],
    );
    let key = made["admin_key"].as_str().expect("admin key");

    let webhooks = get(&server, key, "/v1/webhooks").await;
    let mut listed: Vec<&str> = webhooks["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|w| w["id"].as_str().expect("id"))
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = made["webhooks"]
        .as_object()
        .expect("webhooks")
        .values()
        .map(|id| id.as_str().expect("id"))
        .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "every webhook");

    for (n, id) in made["events"].as_array().expect("events").iter().enumerate() {
        let event = get(&server, key, &format!("/v1/events/{}", id.as_str().expect("id"))).await;
        assert_eq!(event["data"]["order_id"], format!("o_{n}"), "{event}");
    }

    let deliveries = made["deliveries"].as_object().expect("deliveries");
    assert_eq!(deliveries.len(), 9, "three events, each to three webhooks");
    for (id, before) in deliveries {
        let now = get(&server, key, &format!("/v1/webhooks/events/{id}")).await;
        let attempts = get(&server, key, &format!("/v1/webhooks/events/{id}/attempts")).await;
        let made_attempts = before["attempt_count"].as_u64().expect("attempt count");
        let kept = attempts["data"].as_array().map_or(0, Vec::len) as u64;
        if before["webhook_id"] == made["webhooks"]["retrying"] {
            // Due again since the fixture was made, so the new build may retry it at once
            // (its endpoint still refuses): the earlier attempts are kept, and counted.
            assert!(now["status"] == "pending" || now["status"] == "failed", "{now}");
            assert!(now["attempt_count"].as_u64() >= Some(made_attempts), "{now}");
            assert!(kept >= made_attempts, "every attempt of {id}");
        } else {
            assert_eq!(now["status"], before["status"], "{now}");
            assert_eq!(now["attempt_count"], before["attempt_count"], "{now}");
            assert_eq!(kept, made_attempts, "every attempt of {id}");
        }
    }

    // The parked webhook's deliveries were pending all along: enabled, they go out, signed
    // with the secret the previous release sealed.
    let receiver = TestReceiver::start().await;
    let parked = made["webhooks"]["parked"].as_str().expect("parked");
    let enabled = http_client()
        .patch(server.url(&format!("/v1/webhooks/{parked}")))
        .bearer_auth(key)
        .json(&json!({"url": receiver.url("/parked"), "status": "active"}))
        .send()
        .await
        .expect("patch");
    expect_json(enabled, StatusCode::OK).await;
    let received = receiver.wait_for("/parked", 3).await;
    let secret = made["parked_signing_secret"].as_str().expect("secret");
    let verifier = standardwebhooks::Webhook::new(secret).expect("secret");
    for delivery in &received {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            headers.insert(name, delivery.header(name).parse().expect("header"));
        }
        verifier
            .verify(delivery.body.as_bytes(), &headers)
            .expect("signed with the secret sealed before the upgrade");
    }
    let mut orders: Vec<String> = received
        .iter()
        .map(|r| r.json()["data"]["order_id"].as_str().expect("order").to_owned())
        .collect();
    orders.sort();
    assert_eq!(orders, ["o_0", "o_1", "o_2"]);
}
