//! `herald backup`: a consistent copy of the embedded database, taken while `serve` runs and
//! publishes go on, restored by starting a server on it; what it refuses to do.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::http_client;
use super::support::process::{Server, run_cli};
use super::support::publisher::Publisher;
use super::support::receiver::{Reply, TestReceiver};
use crate::Backend;

/// Every attempt times out until the receiver is told otherwise, and is retried soon: the
/// deliveries of the live server stay pending, so the copy has pending deliveries to send.
const ENV: [(&str, &str); 3] = [
    ("HERALD_DEV", "true"),
    (
        "HERALD_RETRY_SCHEDULE",
        "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
    ),
    ("HERALD_DELIVERY_TIMEOUT", "1s"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_accepted_event_and_delivers_it() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Sqlite {
        return;
    }
    let live = tempfile::tempdir().expect("tempdir");
    let restored = tempfile::tempdir().expect("tempdir");
    let receiver = TestReceiver::start().await;
    receiver.always("/copy", Reply::status(204).after(Duration::from_secs(5)));
    let server = Server::start(live.path(), &ENV);
    let key = server.admin_key();
    let client = http_client();
    let created = client
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/copy"), "event_types": ["order.*"]}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(created.status(), 201);

    let publisher = Publisher::start(&server.url(""), &key);
    let before = publisher
        .wait("50 accepted publishes", |a| a.accepted.len() >= 50)
        .await
        .accepted;
    let copy = restored.path().join("herald.db");
    let args = ["backup".to_owned(), copy.display().to_string()];
    let dir = live.path().to_owned();
    let backup = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&dir, &args)
    })
    .await
    .expect("backup");
    let printed = String::from_utf8_lossy(&backup.stdout).into_owned();
    assert!(
        backup.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(
        printed.contains(&format!("HERALD_DATABASE_URL=sqlite://{}", copy.display())),
        "{printed}"
    );
    let key_file = live.path().join("master.key");
    assert!(
        printed.contains(&key_file.display().to_string()),
        "says where the master key is: {printed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the copy is private");
    }
    // Publishing went on, untroubled, while and after the copy was taken.
    let total = before.len() + 20;
    publisher
        .wait("publishes after the backup", |a| a.accepted.len() >= total)
        .await;
    let answers = publisher.stop().await;
    assert!(answers.refused.is_empty(), "{:?}", answers.refused.first());
    server.kill_hard();

    // Restored as the backup said: the copy, with the master key beside it.
    std::fs::copy(&key_file, restored.path().join("master.key")).expect("copy the master key");
    let sent_before = receiver.received("/copy").len();
    receiver.always("/copy", Reply::status(204));
    let server = Server::start(restored.path(), &ENV);
    for id in &before {
        let event = client
            .get(server.url(&format!("/v1/events/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("get event");
        assert_eq!(
            event.status(),
            200,
            "{id} accepted before the backup is in the copy"
        );
    }
    let wanted: HashSet<&String> = before.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let delivered: HashSet<String> = receiver.received("/copy")[sent_before..]
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = wanted
            .iter()
            .filter(|id| !delivered.contains(id.as_str()))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} events of the copy never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stop().success());
}

/// The names in `dir`, to show a failed backup left nothing behind.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A failure a user can act on: exit status 1 and one `error:` line.
fn refused(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn a_backup_never_writes_over_a_file_and_leaves_nothing_behind_when_it_cannot_write() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Sqlite {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let migrated = run_cli(dir.path(), &["migrate"]);
    assert!(migrated.status.success());
    std::fs::write(dir.path().join("taken.db"), "keep me").expect("write");
    let listed = names(dir.path());

    let stderr = refused(&run_cli(dir.path(), &["backup", "taken.db"]));
    assert!(stderr.contains("taken.db already exists"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken.db")).expect("read"),
        "keep me"
    );
    for unwritable in ["no-such-dir/copy.db", "taken.db/copy.db"] {
        let stderr = refused(&run_cli(dir.path(), &["backup", unwritable]));
        assert!(stderr.contains("cannot write the backup into"), "{stderr}");
    }
    // Not even root may create a file there.
    let stderr = refused(&run_cli(dir.path(), &["backup", "/proc/herald-backup.db"]));
    assert!(stderr.contains("cannot write the backup into /proc"), "{stderr}");
    assert_eq!(names(dir.path()), listed, "nothing left behind");
}

#[test]
fn a_backup_of_a_database_that_is_not_there_says_where_it_looked() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Sqlite {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = refused(&run_cli(dir.path(), &["backup", "copy.db"]));
    assert!(stderr.contains("no database at"), "{stderr}");
    assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing created");
}

#[test]
fn a_backup_on_postgresql_says_to_use_pg_dump_and_exits_2() {
    skip_if_backend_unavailable!();
    if super::BACKEND != Backend::Postgres {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_cli(dir.path(), &["backup", "copy.db"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!dir.path().join("copy.db").exists());
}
