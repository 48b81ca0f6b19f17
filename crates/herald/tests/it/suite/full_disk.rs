//! A full disk or an unwritable store: publishes answer 503 `store_unavailable` with
//! `Retry-After`, `/readyz` answers 503 and says why, nothing that got a 202 is lost, and
//! Herald carries on by itself once the store takes writes again.
//!
//! On SQLite the database lives on a small tmpfs that the test fills up for real (mounting
//! needs root: elsewhere the test is skipped loudly, or fails with
//! `HERALD_TEST_REQUIRE_TMPFS=1`, as in CI). On PostgreSQL the test's database is made
//! read-only, then writable again.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::http_client;
use super::support::process::Server;
use super::support::publisher::{Answers, Publisher};
use super::support::receiver::{Reply, TestReceiver};
use crate::Backend;
use crate::pg_cluster;

const ENV: [(&str, &str); 3] = [
    ("HERALD_DEV", "true"),
    (
        "HERALD_RETRY_SCHEDULE",
        "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
    ),
    ("HERALD_DELIVERY_TIMEOUT", "2s"),
];

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped (also when the test
/// fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where mounting is not allowed, after saying so on stderr.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match mounted {
            Ok(output) if output.status.success() => return Some(Self { dir }),
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            !std::env::var("HERALD_TEST_REQUIRE_TMPFS").is_ok_and(|v| v == "1"),
            "HERALD_TEST_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted: {why}"
        );
        // Straight to the stderr file descriptor: libtest captures `eprintln!`, not this.
        let line = format!(
            "cannot mount a tmpfs ({why}): the full-disk test was SKIPPED (run the suite as \
             root, or set HERALD_TEST_REQUIRE_TMPFS=1 to fail instead)\n"
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a server that is still being killed may hold files open.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the file system of `dir` with a file that leaves about `left` bytes free.
fn fill(dir: &Path, left: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0xa5_u8; 1 << 20];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("cannot fill the disk: {e}"),
        }
    }
    file.set_len(written.saturating_sub(left))
        .expect("leave some room");
    file.sync_all().expect("sync");
    path
}

async fn readyz(server: &Server) -> (u16, Value) {
    let response = http_client()
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Polls `/readyz` until it answers `status`, and returns its body.
async fn wait_ready(server: &Server, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (got, body) = readyz(server).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {status}: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Once the store takes writes again (no restart): publishes are accepted and `/readyz`
/// answers 200; every refusal was the contract's, and nothing accepted was lost.
async fn recovers_having_lost_nothing(
    server: Server,
    key: &str,
    receiver: &TestReceiver,
    publisher: Publisher,
) {
    let back_at = publisher.answers().accepted.len();
    publisher
        .wait("publishes accepted again", |a| a.accepted.len() >= back_at + 20)
        .await;
    wait_ready(&server, 200).await;
    let answers = publisher.stop().await;
    assert_refusals_are_store_unavailable(&answers);
    assert_nothing_accepted_was_lost(&server, key, receiver, &answers.accepted).await;
    assert!(server.stop().success());
}

/// Every refusal was the contract's: 503 `store_unavailable` with `Retry-After`.
fn assert_refusals_are_store_unavailable(answers: &Answers) {
    for refusal in &answers.refused {
        assert_eq!(refusal.status, 503, "{refusal:?}");
        assert_eq!(refusal.body["error"]["code"], "store_unavailable", "{refusal:?}");
        assert!(refusal.retry_after.is_some(), "{refusal:?}");
    }
}

/// Every accepted event is readable, and its delivery reached the receiver.
async fn assert_nothing_accepted_was_lost(
    server: &Server,
    key: &str,
    receiver: &TestReceiver,
    accepted: &[String],
) {
    let client = http_client();
    for id in accepted {
        let event = client
            .get(server.url(&format!("/v1/events/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("get event");
        assert_eq!(event.status(), 200, "{id} got a 202 and must be there");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let delivered: HashSet<String> = receiver
            .received("/full")
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = accepted.iter().filter(|id| !delivered.contains(*id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted events never delivered",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server on `dir` with a webhook to the receiver's `/full`; returns the admin key.
async fn server_with_webhook(dir: &Path, receiver: &TestReceiver) -> (Server, String) {
    let server = Server::start(dir, &ENV);
    let key = server.admin_key();
    let created = http_client()
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/full"), "event_types": ["order.*"]}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(created.status(), 201);
    (server, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_with_503_and_herald_recovers_when_space_returns() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Sqlite {
        return;
    }
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let receiver = TestReceiver::start().await;
    receiver.always("/full", Reply::status(204));
    let (server, key) = server_with_webhook(disk.path(), &receiver).await;
    let publisher = Publisher::start(&server.url(""), &key);
    publisher
        .wait("publishes accepted", |a| a.accepted.len() >= 20)
        .await;

    let filler = fill(disk.path(), 256 * 1024);
    publisher
        .wait("a publish refused on the full disk", |a| !a.refused.is_empty())
        .await;
    let body = wait_ready(&server, 503).await;
    assert_eq!(body["database"], "refusing writes", "{body}");
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");

    std::fs::remove_file(&filler).expect("free the disk");
    recovers_having_lost_nothing(server, &key, &receiver, publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgresql_refuses_publishes_with_503_and_herald_recovers_when_it_writes_again() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = TestReceiver::start().await;
    receiver.always("/full", Reply::status(204));
    let (server, key) = server_with_webhook(dir.path(), &receiver).await;
    let database = pg_cluster::database_name(&super::support::database_url(dir.path())).to_owned();
    // From another database: a session of a read-only database may not change it back.
    let read_only = |on: &str| {
        pg_cluster::psql(
            "postgres",
            &format!("ALTER DATABASE {database} SET default_transaction_read_only = {on}"),
        );
        // Sessions keep the setting they started with: Herald's pool reconnects.
        pg_cluster::psql(
            "postgres",
            &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"),
        );
    };
    let publisher = Publisher::start(&server.url(""), &key);
    publisher
        .wait("publishes accepted", |a| a.accepted.len() >= 20)
        .await;

    read_only("on");
    publisher
        .wait("a publish refused by the read-only database", |a| {
            a.refused.iter().any(|r| r.status == 503)
        })
        .await;
    let body = wait_ready(&server, 503).await;
    assert_eq!(body["database"], "refusing writes", "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| r.contains("read-only")),
        "{body}"
    );

    read_only("off");
    recovers_having_lost_nothing(server, &key, &receiver, publisher).await;
}
