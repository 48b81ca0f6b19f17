//! The command line: first start, `migrate`, `orgs create`, `keys create`, bad config.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::process::{Server, run_cli};

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
    let response = crate::support::http_client()
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
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::start(dir.path(), &[]);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(crate::support::process::binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("HERALD_RETRY_SCHEDULE", "1m,often")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HERALD_RETRY_SCHEDULE"), "{stderr}");

    let output = std::process::Command::new(crate::support::process::binary())
        .args(["serve", "--listen", "nowhere"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HERALD_LISTEN"));
}
