//! The command line: first start, `migrate`, `orgs create`, `keys create`, bad config,
//! `listen` and `trigger`.

use reqwest::StatusCode;
use serde_json::Value;

use super::support::process::{Server, run_cli};

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn orgs_and_keys_made_by_the_cli_work_against_the_server() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let migrated = run_cli(dir.path(), &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let org = json_of(&run_cli(dir.path(), &["orgs", "create", "acme", "--json"]));
    assert_eq!(org["name"], "acme");
    let org_id = org["id"].as_str().expect("org id");
    assert!(org_id.starts_with("org_"));

    let key = json_of(&run_cli(
        dir.path(),
        &["keys", "create", "--org", org_id, "--role", "tenant", "--json"],
    ));
    assert_eq!(key["role"], "tenant");
    assert_eq!(key["org_id"], org_id);
    let id = key["id"].as_str().expect("id");
    let full = key["key"].as_str().expect("key");
    assert!(full.starts_with(&format!("{id}:")));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key["basic_auth"].as_str().expect("basic_auth"))
        .expect("base64");
    assert_eq!(decoded, full.as_bytes());

    // An org exists already, so serve creates no admin key; the CLI's key works.
    let server = Server::start(dir.path(), &[]);
    assert!(!server.output().contains("First start"));
    let response = super::support::http_client()
        .get(server.url("/v1/webhooks"))
        .header(
            "authorization",
            format!("Basic {}", key["basic_auth"].as_str().expect("b64")),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);

    let unknown = run_cli(
        dir.path(),
        &[
            "keys",
            "create",
            "--org",
            "org_01jd5k3m6x7y8z9a0b1c2d3e4f",
            "--role",
            "admin",
        ],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no org"));
}

#[test]
fn the_first_start_prints_an_admin_key_once() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::start(dir.path(), &[]);
    first.admin_key();
    let printed = first.output();
    assert!(printed.contains("First start"), "{printed}");
    assert!(printed.contains("basic_auth:"));
    assert!(first.stop().success());

    let second = Server::start(dir.path(), &[]);
    assert!(
        !second.output().contains("First start"),
        "the key is printed only once"
    );
}

#[test]
fn bad_configuration_stops_start_up_with_a_message_naming_the_setting() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(super::support::process::binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("HERALD_RETRY_SCHEDULE", "1m,often")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HERALD_RETRY_SCHEDULE"), "{stderr}");

    let output = std::process::Command::new(super::support::process::binary())
        .args(["serve", "--listen", "nowhere"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HERALD_LISTEN"));
}

/// A child process whose stdout is collected line by line.
struct Child {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Child {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(super::support::process::binary());
        command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn");
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&stdout);
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut buf = sink.lock().expect("lock");
                buf.push_str(&line);
                buf.push('\n');
            }
        });
        Self { child, stdout }
    }

    /// Waits until the output contains `needle`, and returns all of it.
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.stdout.lock().expect("lock").clone();
            if out.contains(needle) {
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never printed {needle:?}: {out}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_delivers_a_verified_event_to_herald_listen() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[("HERALD_DEV", "true")]);
    let key = server.admin_key();

    // `herald listen` on a free port, without a secret first, to learn its address.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let client = super::support::http_client();
    let created: Value = client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"url": format!("http://localhost:{port}/hook"), "event_types": ["order.*"]}),
        )
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let secret = created["signing_secret"].as_str().expect("secret");
    let listen = Child::spawn(&["listen", "--port", &port.to_string(), "--secret", secret], &[]);
    listen.wait_for("Listening on").await;

    let base = format!("http://{}", server.addr);
    let trigger = std::process::Command::new(super::support::process::binary())
        .args(["trigger", "order.filled", "--data", r#"{"order_id":"o_42"}"#])
        .env("HERALD_URL", &base)
        .env("HERALD_KEY", &key)
        .output()
        .expect("trigger");
    assert!(
        trigger.status.success(),
        "{}",
        String::from_utf8_lossy(&trigger.stderr)
    );
    let event: Value = serde_json::from_slice(&trigger.stdout).expect("trigger prints the event");
    let event_id = event["id"].as_str().expect("id");

    let printed = listen.wait_for(event_id).await;
    let printed = listen.wait_for("o_42").await.max(printed);
    assert!(printed.contains("signature verified"), "{printed}");
    assert!(printed.contains("order.filled"));

    let bad = std::process::Command::new(super::support::process::binary())
        .args(["trigger", "order.nope"])
        .env("HERALD_URL", &base)
        .env("HERALD_KEY", &key)
        .output()
        .expect("trigger");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown_event_type"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_listen_with_status_500_shows_failed_attempts_and_retries() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[("HERALD_DEV", "true"), ("HERALD_RETRY_SCHEDULE", "50ms,50ms")],
    );
    let key = server.admin_key();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let client = super::support::http_client();
    let created = client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"url": format!("http://localhost:{port}/hook"), "event_types": ["order.*"]}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let listen = Child::spawn(&["listen", "--port", &port.to_string(), "--status", "500"], &[]);
    listen.wait_for("Answering 500").await;

    let published = client
        .post(server.url("/v1/events"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"event_type": "order.filled", "data": {"order_id": "o_42"}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), StatusCode::ACCEPTED);

    // The first attempt and both retries get the 500; then the delivery is `failed`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let failed = loop {
        let list: Value = client
            .get(server.url("/v1/webhooks/events?status=failed"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        if let Some(delivery) = list["data"].as_array().and_then(|d| d.first()) {
            break delivery.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no failed delivery: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed["attempt_count"], 3, "{failed}");
    assert_eq!(failed["last_response_status"], 500, "{failed}");
    let id = failed["id"].as_str().expect("dlv id");
    let attempts: Value = client
        .get(server.url(&format!("/v1/webhooks/events/{id}/attempts")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("attempts")
        .json()
        .await
        .expect("json");
    let statuses: Vec<&Value> = attempts["data"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| &a["response_status"])
        .collect();
    assert_eq!(statuses, [500, 500, 500], "{attempts}");
    let printed = listen.wait_for("answering 500").await;
    assert!(printed.contains("order.filled"), "{printed}");
}
