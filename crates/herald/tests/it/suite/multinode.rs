//! Several Herald nodes on one PostgreSQL, and PostgreSQL going away under load. These run
//! in the `postgres` half only: the embedded store is one node by design.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::process::Server;
use super::support::receiver::{Reply, TestReceiver};
use super::support::{http_client, metric_value, wait_all_delivered};

/// Two nodes on one PostgreSQL database: the first starts (and bootstraps) it, the second
/// joins it; the data dirs live as long as the nodes need them.
fn two_nodes(env: &[(&str, &str)]) -> (Server, Server, [tempfile::TempDir; 2]) {
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let node_a = Server::start(dirs[0].path(), env);
    let url = super::support::database_url(dirs[0].path());
    std::fs::write(dirs[1].path().join("postgres-database-url"), &url).expect("share the database");
    let node_b = Server::start(dirs[1].path(), env);
    (node_a, node_b, dirs)
}

/// Creates a webhook through `node`.
async fn create_webhook(node: &Server, key: &str, body: Value) {
    let created = http_client()
        .post(node.url("/v1/webhooks"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
}

/// Publishes `n` events round-robin through `nodes`, 8 at a time; returns the accepted ids.
async fn publish_round_robin(urls: &[String], key: &str, n: usize) -> Vec<String> {
    let client = http_client();
    let mut accepted = Vec::with_capacity(n);
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..n {
        let request = client
            .post(format!("{}/v1/events", urls[i % urls.len()]))
            .bearer_auth(key)
            .json(&json!({"event_type": "order.filled", "data": {"n": i}}));
        batch.spawn(async move {
            let response = request.send().await.expect("publish");
            assert_eq!(response.status(), 202);
            let event: Value = response.json().await.expect("json");
            event["id"].as_str().expect("id").to_owned()
        });
        if batch.len() >= 8 {
            accepted.push(batch.join_next().await.expect("task").expect("join"));
        }
    }
    while let Some(id) = batch.join_next().await {
        accepted.push(id.expect("join"));
    }
    accepted
}

/// Polls until `receiver` has seen every id in `ids` on `path`.
async fn wait_all_seen(receiver: &TestReceiver, path: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let seen: HashSet<String> = receiver
            .received(path)
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = ids.iter().filter(|id| !seen.contains(*id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted events never arrived",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_work_and_the_survivor_finishes_after_a_kill_9() {
    skip_if_backend_unavailable!();
    let env = [
        ("HERALD_DEV", "true"),
        ("HERALD_RETRY_SCHEDULE", "100ms,100ms,100ms,100ms,100ms"),
        ("HERALD_DELIVERY_TIMEOUT", "1s"),
    ];
    let (node_a, node_b, _dirs) = two_nodes(&env);
    let key = node_a.admin_key();
    assert!(
        !node_b.output().contains("First start"),
        "only the first node bootstraps"
    );

    let receiver = TestReceiver::start().await;
    create_webhook(
        &node_a,
        &key,
        json!({"url": receiver.url("/shared"), "event_types": ["order.*"]}),
    )
    .await;

    // Normal operation: 2,000 events through both nodes, each delivered exactly once.
    let urls = [node_a.url(""), node_b.url("")];
    let accepted = publish_round_robin(&urls, &key, 2_000).await;
    wait_all_seen(&receiver, "/shared", &accepted).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.received("/shared") {
        *per_id.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempted by two nodes at once: {twice:?}");
    wait_all_delivered(&node_a.url(""), &key, 2_000).await;

    // Then node B dies mid-run; node A delivers everything, B's leases included.
    receiver.always("/shared", Reply::status(204).after(Duration::from_millis(30)));
    let more = publish_round_robin(&urls, &key, 500).await;
    receiver.wait_for("/shared", 2_050).await;
    node_b.kill_hard();
    wait_all_seen(&receiver, "/shared", &more).await;
    wait_all_delivered(&node_a.url(""), &key, 2_500).await;
    assert!(node_a.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_nothing_and_delivery_resumes() {
    skip_if_backend_unavailable!();
    let cluster = crate::pg_cluster::own_cluster().expect("a cluster of our own");
    cluster.create_database("outage");
    let url = cluster.url("outage");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("HERALD_DEV", "true"),
        ("HERALD_DATABASE_URL", url.as_str()),
        ("HERALD_RETRY_SCHEDULE", "100ms,200ms,500ms,1s,1s,1s"),
        ("HERALD_DATABASE_STATEMENT_TIMEOUT", "5s"),
    ];
    let node = Server::start(dir.path(), &env);
    let key = node.admin_key();
    let receiver = TestReceiver::start().await;
    let client = http_client();
    client
        .post(node.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/outage")}))
        .send()
        .await
        .expect("create");

    // A steady publisher: every 202 is an acknowledged event; a 503 must say Retry-After.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (accepted, unavailable, stop) =
            (Arc::clone(&accepted), Arc::clone(&unavailable), Arc::clone(&stop));
        let (client, base, key) = (client.clone(), node.url(""), key.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let response = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
                    .json(&json!({"event_type": "order.filled", "data": {"i": i}}))
                    .send()
                    .await
                    .expect("Herald stays up");
                match response.status().as_u16() {
                    202 => {
                        let event: Value = response.json().await.expect("json");
                        accepted
                            .lock()
                            .expect("lock")
                            .push(event["id"].as_str().expect("id").to_owned());
                    }
                    503 => {
                        assert!(response.headers().contains_key("retry-after"));
                        let body: Value = response.json().await.expect("a JSON error body");
                        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
                        *unavailable.lock().expect("lock") += 1;
                    }
                    other => panic!(
                        "publishing answered {other}: {}",
                        response.text().await.unwrap_or_default()
                    ),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    wait_until("some events are accepted", &|| {
        accepted.lock().expect("lock").len() >= 30
    });
    cluster.stop();
    wait_until("publishes are refused with 503", &|| {
        *unavailable.lock().expect("lock") >= 2
    });
    let ready: reqwest::StatusCode = client
        .get(node.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status();
    assert_eq!(ready, 503, "/readyz reports the database down");
    cluster.start();
    let before = accepted.lock().expect("lock").len();
    wait_until("publishing works again", &|| {
        accepted.lock().expect("lock").len() >= before + 30
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.await.expect("publisher");

    let accepted = accepted.lock().expect("lock").clone();
    wait_all_seen(&receiver, "/outage", &accepted).await;
    wait_all_delivered(&node.url(""), &key, accepted.len()).await;
    let ready = client
        .get(node.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status();
    assert_eq!(ready, 200);
    assert!(node.stop().success(), "Herald never crashed");
}

/// One series of one node's `/metrics`.
async fn node_metric(node: &Server, series: &str) -> f64 {
    let page = http_client()
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    metric_value(&page, series)
}

/// `herald_purged_total{kind="events"}` of one node.
async fn purged_events(node: &Server) -> u64 {
    node_metric(node, "herald_purged_total{kind=\"events\"}").await as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_purge_together_each_event_once_and_neither_fails() {
    skip_if_backend_unavailable!();
    let env = [("HERALD_DEV", "true"), ("HERALD_RETENTION", "1s")];
    let (node_a, node_b, _dirs) = two_nodes(&env);
    let key = node_a.admin_key();
    let receiver = TestReceiver::start().await;
    create_webhook(
        &node_a,
        &key,
        json!({"url": receiver.url("/purged"), "event_types": ["order.*"]}),
    )
    .await;

    let urls = [node_a.url(""), node_b.url("")];
    let accepted = publish_round_robin(&urls, &key, 1_500).await;
    wait_all_seen(&receiver, "/purged", &accepted).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let purged = purged_events(&node_a).await + purged_events(&node_b).await;
        assert!(purged <= 1_500, "{purged} events deleted of 1,500");
        if purged == 1_500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{purged} of 1,500 events purged in a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in accepted.iter().step_by(100) {
        let status = http_client()
            .get(node_b.url(&format!("/v1/events/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(status, 404, "{id}");
    }
    for node in [&node_a, &node_b] {
        assert!(
            !node.output().contains("cannot purge"),
            "a purge failed: {}",
            node.output()
        );
    }
    assert!(node_a.stop().success());
    assert!(node_b.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_by_another_within_a_second() {
    skip_if_backend_unavailable!();
    let (node_a, node_b, _dirs) = two_nodes(&[]);
    let admin = node_a.admin_key();
    let client = http_client();

    let org: Value = client
        .post(node_a.url("/v1/orgs"))
        .bearer_auth(&admin)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .expect("org")
        .json()
        .await
        .expect("json");
    let key: Value = client
        .post(node_a.url("/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"org_id": org["id"], "role": "tenant"}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let tenant = key["key"].as_str().expect("key").to_owned();
    let status_on_b = || client.get(node_b.url("/v1/webhooks")).bearer_auth(&tenant).send();
    // Node B has the key in its cache now.
    assert_eq!(status_on_b().await.expect("request").status(), 200);

    let revoked_at = Instant::now();
    let revoked = client
        .delete(node_a.url(&format!("/v1/keys/{}", key["id"].as_str().expect("id"))))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    loop {
        let status = status_on_b().await.expect("request").status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() <= Duration::from_secs(1),
            "node B still accepts the key {:?} after the revoke",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And it stays refused.
    assert_eq!(status_on_b().await.expect("request").status(), 401);
    drop(node_b);
    assert!(node_a.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_rate_limit() {
    skip_if_backend_unavailable!();
    let env = [("HERALD_DEV", "true")];
    let (node_a, node_b, _dirs) = two_nodes(&env);
    let key = node_a.admin_key();
    let receiver = TestReceiver::start().await;
    create_webhook(
        &node_a,
        &key,
        json!({"url": receiver.url("/limited"), "event_types": ["order.*"], "rate_limit": 20}),
    )
    .await;

    let urls = [node_a.url(""), node_b.url("")];
    let accepted = publish_round_robin(&urls, &key, 200).await;
    wait_all_seen(&receiver, "/limited", &accepted).await;
    let arrived = receiver.received("/limited");
    assert_eq!(arrived.len(), 200, "each delivery once");
    let most = super::rate_limits::most_in_any_window(&arrived, Duration::from_secs(2));
    assert!(
        most <= 44,
        "{most} deliveries in two seconds at a shared limit of 20"
    );
    let took = super::rate_limits::span(&arrived);
    assert!(
        took >= Duration::from_millis(9_500),
        "200 deliveries at 20/s took {took:?}"
    );
    for node in [&node_a, &node_b] {
        let delivered = node_metric(node, "herald_deliveries_total{outcome=\"delivered\"}").await;
        assert!(delivered > 0.0, "both nodes delivered under the shared limit");
    }
    assert!(node_a.stop().success());
    assert!(node_b.stop().success());
}

/// Publishes `n` events one after another, alternating between `urls`: their acceptance order
/// is the order returned.
async fn publish_in_turn(urls: &[String], key: &str, n: usize) -> Vec<String> {
    let client = http_client();
    let mut accepted = Vec::with_capacity(n);
    for i in 0..n {
        let response = client
            .post(format!("{}/v1/events", urls[i % urls.len()]))
            .bearer_auth(key)
            .json(&json!({"event_type": "order.filled", "data": {"n": i}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 202);
        let event: Value = response.json().await.expect("json");
        accepted.push(event["id"].as_str().expect("id").to_owned());
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_webhook_on_two_nodes_has_one_attempt_in_flight_and_keeps_order_through_a_kill_9() {
    skip_if_backend_unavailable!();
    let env = [("HERALD_DEV", "true"), ("HERALD_DELIVERY_TIMEOUT", "1s")];
    let (node_a, node_b, _dirs) = two_nodes(&env);
    let key = node_a.admin_key();
    let receiver = TestReceiver::start().await;
    let held = Duration::from_millis(25);
    receiver.always("/fifo", Reply::status(204).after(held));
    create_webhook(
        &node_a,
        &key,
        json!({"url": receiver.url("/fifo"), "event_types": ["order.*"], "ordering": "fifo"}),
    )
    .await;

    let urls = [node_a.url(""), node_b.url("")];
    let accepted = publish_in_turn(&urls, &key, 80).await;
    // Node B dies while the line is being worked through; node A finishes it.
    receiver.wait_for("/fifo", 30).await;
    node_b.kill_hard();
    wait_all_seen(&receiver, "/fifo", &accepted).await;

    let received = receiver.received("/fifo");
    let mut first_seen: Vec<String> = Vec::new();
    for id in super::fifo::arrival_ids(&received) {
        if !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    assert_eq!(
        first_seen, accepted,
        "each event first arrived in acceptance order (a resend after the kill only repeats one)"
    );
    super::fifo::assert_one_at_a_time(&received, held);
    assert!(node_a.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_announce_each_webhook_disabled_once() {
    skip_if_backend_unavailable!();
    let env = [("HERALD_DEV", "true")];
    let (node_a, node_b, _dirs) = two_nodes(&env);
    let key = node_a.admin_key();
    let receiver = TestReceiver::start().await;
    receiver.always("/gone", Reply::status(410));
    let watcher = json!({"url": receiver.url("/ops"), "event_types": ["webhook.*"]});
    create_webhook(&node_a, &key, watcher).await;
    let mut gone = Vec::new();
    for _ in 0..20 {
        let body = json!({"url": receiver.url("/gone"), "event_types": ["order.*"]});
        let created = http_client()
            .post(node_a.url("/v1/webhooks"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .expect("create");
        let created: Value = created.json().await.expect("webhook");
        gone.push(created["id"].as_str().expect("id").to_owned());
    }
    // Both nodes publish, so both claim and disable, and both announcers see every change.
    publish_in_turn(&[node_a.url(""), node_b.url("")], &key, 2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let disabled = loop {
        let disabled: Vec<String> = receiver
            .received("/ops")
            .iter()
            .map(|r| r.json())
            .filter(|b| b["event"] == "webhook.disabled")
            .map(|b| b["data"]["webhook_id"].as_str().expect("id").to_owned())
            .collect();
        if disabled.len() >= gone.len() {
            break disabled;
        }
        assert!(Instant::now() < deadline, "{} of 20 announced", disabled.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let distinct: HashSet<&String> = disabled.iter().collect();
    assert_eq!(distinct.len(), gone.len(), "every disabled webhook announced");

    // A barrier: an announcement made after every disabling; once it arrived, a second
    // announcement of any disabling would be stored too.
    let enable = http_client()
        .patch(node_b.url(&format!("/v1/webhooks/{}", gone[0])))
        .bearer_auth(&key)
        .json(&json!({"status": "active", "url": receiver.url("/fine")}))
        .send()
        .await
        .expect("enable");
    assert_eq!(enable.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !receiver
        .received("/ops")
        .iter()
        .any(|r| r.json()["event"] == "webhook.enabled")
    {
        assert!(Instant::now() < deadline, "webhook.enabled never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list: Value = http_client()
        .get(node_a.url("/v1/webhooks/events?limit=100&event_type=webhook.disabled"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["data"].as_array().expect("data").len(),
        gone.len(),
        "each change announced once across both nodes"
    );
    assert!(node_a.stop().success());
    assert!(node_b.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_minted_on_one_node_opens_on_another() {
    skip_if_backend_unavailable!();
    let (node_a, node_b, _dirs) = two_nodes(&[]);
    let key = node_a.admin_key();
    let minted: Value = http_client()
        .post(node_a.url("/v1/portal-sessions"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let url = minted["url"].as_str().expect("url");
    let path = &url[url.find("/portal/").expect("portal path")..];
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let opened = browser.get(node_b.url(path)).send().await.expect("open");
    assert_eq!(opened.status(), 303);
    let cookie = opened
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a portal cookie")
        .to_owned();
    let page = browser
        .get(node_b.url("/dashboard/webhooks"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(node_a.stop().success());
    assert!(node_b.stop().success());
}
