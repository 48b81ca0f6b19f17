//! Cursor paging, forwards and backwards, while other webhooks are being created.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::{TestApp, expect_json};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn paging_forward_and_back_sees_every_webhook_once_while_others_are_created() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let mut originals = Vec::new();
    for i in 0..25 {
        let w = app
            .create_webhook(&key, json!({"url": format!("https://example.com/{i}")}))
            .await;
        originals.push(w["id"].as_str().expect("id").to_owned());
    }

    // Keep creating webhooks while we page.
    let writer = {
        let client = app.client.clone();
        let url = app.url("/v1/webhooks");
        let key = key.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let response = client
                    .post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .json(&json!({"url": format!("https://example.com/late/{i}")}))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        })
    };

    let mut forward: Vec<String> = Vec::new();
    let mut page = expect_json(app.get("/v1/webhooks?limit=7", &key).await, StatusCode::OK).await;
    assert_eq!(page["object"], "list");
    assert_eq!(
        page["prev_cursor"],
        Value::Null,
        "nothing is newer than the first page"
    );
    let mut pages = vec![page.clone()];
    loop {
        forward.extend(ids(&page));
        if !page["has_more"].as_bool().expect("has_more") {
            assert_eq!(page["next_cursor"], Value::Null);
            break;
        }
        let cursor = page["next_cursor"].as_str().expect("next_cursor while has_more");
        page = expect_json(
            app.get(&format!("/v1/webhooks?limit=7&cursor={cursor}"), &key)
                .await,
            StatusCode::OK,
        )
        .await;
        assert!(page["prev_cursor"].is_string(), "a later page can go back");
        pages.push(page.clone());
    }
    writer.await.expect("writer");

    let unique: HashSet<_> = forward.iter().collect();
    assert_eq!(unique.len(), forward.len(), "no webhook twice");
    assert!(forward.windows(2).all(|w| w[0] > w[1]), "newest first");
    for id in &originals {
        assert!(forward.contains(id), "{id} was skipped");
    }

    // Back from the last page to the first, following prev_cursor.
    let mut backward: Vec<String> = Vec::new();
    let mut page = pages.last().expect("pages").clone();
    backward.splice(0..0, ids(&page));
    while let Some(before) = page["prev_cursor"].as_str() {
        page = expect_json(
            app.get(&format!("/v1/webhooks?limit=7&before={before}"), &key)
                .await,
            StatusCode::OK,
        )
        .await;
        backward.splice(0..0, ids(&page));
    }
    assert!(
        backward.windows(2).all(|w| w[0] > w[1]),
        "pages back join up in order"
    );
    for id in &forward {
        assert!(backward.contains(id), "{id} missing when paging back");
    }
    // Paging back reaches the webhooks created while we paged forward.
    assert_eq!(backward.len(), 55);
}

#[tokio::test]
async fn limits_default_to_20_and_an_empty_org_has_an_empty_list() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let empty = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(
        empty,
        json!({"object": "list", "data": [], "has_more": false, "next_cursor": null, "prev_cursor": null})
    );
    for i in 0..21 {
        app.create_webhook(&key, json!({"url": format!("https://example.com/{i}")}))
            .await;
    }
    let page = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(ids(&page).len(), 20);
    assert_eq!(page["has_more"], true);
    let garbage = app.get("/v1/webhooks?cursor=not-a-cursor!", &key).await;
    super::support::expect_error(garbage, StatusCode::BAD_REQUEST, "invalid_cursor", Some("cursor")).await;
}
