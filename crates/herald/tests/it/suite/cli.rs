//! The command line: first start, `migrate`, `orgs create|list`, `keys create|list|revoke`, bad config,
//! one server per embedded database, errors a user can act on, `listen` and `trigger`.

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
    // The example command names the address the server really listens on.
    assert!(
        printed.contains(&format!("{}/v1/webhooks", first.url(""))),
        "{printed}"
    );
    assert!(!printed.contains("HOST"), "{printed}");
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

/// Runs the binary in `dir` with `args` and `env` (nothing else from the test's backend).
fn herald(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(super::support::process::binary());
    command
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_MASTER_KEY")
        .env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run herald")
}

/// An error a user can act on: one `error:` line with its causes, no backtrace.
fn user_error(output: &std::process::Output) -> String {
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains(".rs:"),
        "{stderr}"
    );
    stderr
}

#[test]
fn admin_commands_never_create_a_database_and_say_where_they_looked() {
    skip_if_backend_unavailable!();
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let elsewhere = tempfile::tempdir().expect("tempdir");
    for args in [
        &["orgs", "create", "acme"][..],
        &["orgs", "list", "--json"][..],
        &[
            "keys",
            "create",
            "--org",
            "org_01jd5k3m6x7y8z9a0b1c2d3e4f",
            "--role",
            "tenant",
        ][..],
    ] {
        let stderr = user_error(&herald(elsewhere.path(), args, &[]));
        assert!(stderr.contains("HERALD_DATABASE_URL"), "{stderr}");
        assert!(stderr.contains("herald-data/herald.db"), "{stderr}");
    }
    assert!(
        !elsewhere.path().join("herald-data").exists(),
        "nothing was created"
    );
}

#[test]
fn orgs_list_prints_every_org_as_json() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(run_cli(dir.path(), &["migrate"]).status.success());
    let made: Vec<String> = ["acme", "globex"]
        .iter()
        .map(|name| {
            let org = json_of(&run_cli(dir.path(), &["orgs", "create", name, "--json"]));
            org["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let listed = json_of(&run_cli(dir.path(), &["orgs", "list", "--json"]));
    let ids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|org| org["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [made[1].as_str(), made[0].as_str()], "newest first");
    let text = run_cli(dir.path(), &["orgs", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("globex"));
}

#[test]
fn keys_list_prints_json_and_keys_revoke_keeps_the_last_admin_key() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(run_cli(dir.path(), &["migrate"]).status.success());
    let org = json_of(&run_cli(dir.path(), &["orgs", "create", "acme", "--json"]));
    let org_id = org["id"].as_str().expect("id");
    let create = |role: &str| {
        json_of(&run_cli(
            dir.path(),
            &[
                "keys", "create", "--org", org_id, "--role", role, "--name", "ci", "--json",
            ],
        ))
    };
    let admin = create("admin");
    let tenant = create("tenant");
    assert_eq!(tenant["name"], "ci");

    let listed = json_of(&run_cli(dir.path(), &["keys", "list", "--org", org_id, "--json"]));
    let listed = listed.as_array().expect("an array");
    let ids: Vec<&str> = listed.iter().map(|k| k["id"].as_str().expect("id")).collect();
    assert_eq!(
        ids,
        [
            tenant["id"].as_str().expect("id"),
            admin["id"].as_str().expect("id")
        ]
    );
    for key in listed {
        assert_eq!(key["object"], "api_key");
        assert!(
            key.get("key").is_none() && key.get("basic_auth").is_none(),
            "{key}"
        );
    }

    let tenant_id = tenant["id"].as_str().expect("id");
    let revoked = run_cli(dir.path(), &["keys", "revoke", tenant_id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let again = run_cli(dir.path(), &["keys", "revoke", tenant_id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no API key"));
    let last = run_cli(dir.path(), &["keys", "revoke", admin["id"].as_str().expect("id")]);
    assert_eq!(last.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&last.stderr).contains("last active admin key"),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let listed = json_of(&run_cli(dir.path(), &["keys", "list", "--json"]));
    assert_eq!(listed.as_array().expect("an array").len(), 1, "{listed}");
    let unknown = run_cli(
        dir.path(),
        &["keys", "list", "--org", "org_01jd5k3m6x7y8z9a0b1c2d3e4f"],
    );
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn a_second_serve_on_one_embedded_database_refuses_naming_the_holder() {
    skip_if_backend_unavailable!();
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::start(dir.path(), &[]);
    let database = super::support::database_url(dir.path());
    let second = herald(
        dir.path(),
        &["serve"],
        &[
            ("HERALD_DATABASE_URL", &database),
            ("HERALD_LISTEN", "127.0.0.1:0"),
        ],
    );
    let stderr = user_error(&second);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(stderr.contains("herald.db"), "{stderr}");
    assert!(stderr.contains(&format!("PID {}", first.pid())), "{stderr}");

    // The lock goes with the process, however it ends.
    first.kill_hard();
    let third = Server::start(dir.path(), &[]);
    assert!(third.stop().success());
}

#[test]
fn serve_on_postgres_without_a_master_key_fails_before_touching_the_database_or_the_port() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there: reaching for the database would fail differently, and later.
    let output = herald(
        dir.path(),
        &["serve"],
        &[
            ("HERALD_DATABASE_URL", "postgres://herald@127.0.0.1:1/herald"),
            ("HERALD_LISTEN", "127.0.0.1:0"),
        ],
    );
    let stderr = user_error(&output);
    assert!(stderr.contains("HERALD_MASTER_KEY"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("First start"), "{stdout}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn a_busy_port_names_the_port_and_the_setting_to_change() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();

    let listen = user_error(&herald(dir.path(), &["listen", "--port", &port.to_string()], &[]));
    assert!(listen.contains(&format!("127.0.0.1:{port}")), "{listen}");
    assert!(listen.contains("--port"), "{listen}");

    let database = super::support::database_url(dir.path());
    let listen_at = format!("127.0.0.1:{port}");
    let mut env = vec![
        ("HERALD_DATABASE_URL", database.as_str()),
        ("HERALD_LISTEN", listen_at.as_str()),
    ];
    env.extend(super::support::master_key().map(|key| ("HERALD_MASTER_KEY", key)));
    let serve = user_error(&herald(dir.path(), &["serve"], &env));
    assert!(serve.contains("already in use"), "{serve}");
    assert!(serve.contains("HERALD_LISTEN"), "{serve}");
}

#[test]
fn a_typo_in_an_event_type_is_one_line_without_a_backtrace() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let key = server.admin_key();
    let output = herald(
        dir.path(),
        &["trigger", "order.filed", "--url", &server.url(""), "--key", &key],
        &[],
    );
    let stderr = user_error(&output);
    assert!(stderr.contains("unknown_event_type"), "{stderr}");
}

#[test]
fn each_command_help_lists_only_its_own_options_with_defaults() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |args: &[&str]| {
        let output = herald(dir.path(), args, &[]);
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let keys = help(&["keys", "create", "--help"]);
    assert!(
        !keys.contains("--retry-schedule") && !keys.contains("--listen"),
        "{keys}"
    );
    assert!(
        keys.contains("--org") && keys.contains("org the key acts for"),
        "{keys}"
    );
    let listen = help(&["listen", "--help"]);
    assert!(listen.contains("The port to listen on"), "{listen}");
    let serve = help(&["serve", "--help"]);
    for default in [
        "[default: 1m,5m,30m,2h,8h]",
        "[default: 127.0.0.1:8080]",
        "[default: 1024]",
    ] {
        assert!(serve.contains(default), "{default} missing: {serve}");
    }
}

#[test]
fn a_postgresql_refusal_reads_as_the_servers_message_without_source_lines() {
    skip_if_backend_unavailable!();
    if super::BACKEND != crate::Backend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = super::support::database_url(dir.path());
    let (_, host_and_db) = url.split_once('@').expect("user@host");
    let nobody = format!("postgres://nobody_here@{host_and_db}");
    let stderr = user_error(&herald(
        dir.path(),
        &["orgs", "list"],
        &[("HERALD_DATABASE_URL", &nobody)],
    ));
    assert!(stderr.contains("HERALD_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("role \"nobody_here\" does not exist"), "{stderr}");
    assert!(!stderr.contains("at line"), "{stderr}");
    assert_eq!(stderr.matches("does not exist").count(), 1, "said once: {stderr}");
}

#[test]
fn serve_refuses_a_bad_catalog_naming_the_type_and_the_problem() {
    skip_if_backend_unavailable!();
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "type = \"invoice.paid\"\nschema = { type = \"strin\" }",
            "`invoice.paid`: its schema: it is not a valid JSON Schema",
        ),
        (
            "type = \"invoice.paid\"\nexample = '{\"amount\": 12}'\nschema = '{\"properties\": {\"amount\": {\"type\": \"string\"}}}'",
            "`invoice.paid`: its example fails its own schema at `example.amount`",
        ),
        (
            "type = \"invoice.paid\"\nexample = '\"paid\"'",
            "`invoice.paid`: its example is not a JSON object",
        ),
        (
            "type = \"invoice.paid\"\n[[event_types]]\ntype = \"invoice.paid\"",
            "`invoice.paid` is listed twice",
        ),
        ("type = \"webhook.test\"", "`webhook.test` is reserved"),
        ("type = \"delivery.failed\"", "`delivery.failed` is reserved"),
    ];
    let database = super::support::database_url(dir.path());
    for (entry, expected) in cases {
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(&catalog, format!("[[event_types]]\n{entry}\n")).expect("write");
        let catalog = catalog.display().to_string();
        let mut env = vec![
            ("HERALD_DATABASE_URL", database.as_str()),
            ("HERALD_LISTEN", "127.0.0.1:0"),
            ("HERALD_CATALOG", catalog.as_str()),
        ];
        env.extend(super::support::master_key().map(|key| ("HERALD_MASTER_KEY", key)));
        let stderr = user_error(&herald(dir.path(), &["serve"], &env));
        assert!(stderr.contains(expected), "{entry}: {stderr}");
        assert!(stderr.contains(&catalog), "names the file: {stderr}");
    }
}
