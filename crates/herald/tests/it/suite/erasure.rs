//! Erasing an org: hidden at once (the routes' side), then its data deleted in the background:
//! pending deliveries canceled, rows gone from storage, the org itself forgotten.

use std::time::{Duration, Instant};

use herald::domain::ids::{EventId, OrgId};
use herald::store::OrgScope;
use reqwest::StatusCode;
use serde_json::json;

use super::support::receiver::{Reply, TestReceiver};
use super::support::{Settings, TestApp};

#[tokio::test]
async fn an_erased_orgs_data_is_deleted_in_the_background_and_its_endpoints_hear_no_more() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some(vec!["200ms"; 40].join(",")),
        // A short lease, so the data goes a few seconds after the erasure.
        delivery_timeout: Some("1s".into()),
        ..Settings::default()
    })
    .await;
    let receiver = TestReceiver::start().await;
    receiver.always("/down", Reply::status(503));
    let (org, tenant) = app.tenant("tenant").await;
    app.create_webhook(
        &tenant,
        json!({"url": receiver.url("/up"), "event_types": ["order.filled"]}),
    )
    .await;
    app.create_webhook(
        &tenant,
        json!({"url": receiver.url("/down"), "event_types": ["account.created"]}),
    )
    .await;
    // One event whose delivery ends, one whose delivery keeps failing (pending at erasure).
    app.publish(&tenant, "order.filled", json!({})).await;
    app.publish(&tenant, "account.created", json!({})).await;
    receiver.wait_for("/up", 1).await;
    receiver.wait_for("/down", 2).await;
    // The admin's own data stays.
    let own = app.publish(&app.admin_key, "order.filled", json!({})).await;

    let erased = app.delete(&format!("/v1/orgs/{org}"), &app.admin_key).await;
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);

    // Its failing endpoint stops hearing from Herald within a couple of seconds.
    let start = Instant::now();
    let mut heard = receiver.received("/down").len();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        let now = receiver.received("/down").len();
        if now != heard {
            heard = now;
            quiet_since = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "an erased org's endpoint is still called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The routes hide an erased org at once (its lookups already answer "none"), so the
    // background deletion is watched where it shows: the org's row leaves the store's list of
    // orgs, and the purge counters move.
    let store = app.store().await;
    let org_id = OrgId::parse(&org).expect("org id");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .org_lifecycles()
        .await
        .expect("orgs")
        .iter()
        .any(|stored| stored.id == org_id)
    {
        assert!(
            Instant::now() < deadline,
            "the erased org is still stored after a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counters move just after the rows go.
    let page = loop {
        let page = app
            .get("/metrics", &app.admin_key)
            .await
            .text()
            .await
            .expect("metrics");
        if super::support::metric_value(&page, "herald_purged_total{kind=\"orgs\"}") >= 1.0 {
            break page;
        }
        assert!(Instant::now() < deadline, "no org counted as purged: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let purged =
        |kind: &str| super::support::metric_value(&page, &format!("herald_purged_total{{kind=\"{kind}\"}}"));
    // (At least: the test binary's other servers share the process's counters.)
    assert!(purged("events") >= 2.0, "the org's two events: {page}");
    assert!(purged("deliveries") >= 2.0, "{page}");
    let own_id = EventId::parse(own["id"].as_str().expect("id")).expect("event id");
    assert!(
        store
            .get_event(OrgScope::Any, own_id)
            .await
            .expect("get")
            .is_some()
    );
}
