//! The dashboard in a real headless Chromium, driven by Playwright.
//!
//! The test starts Herald and runs `tests/e2e/dashboard.mjs` with Node; the script starts its
//! own receiver and walks through the dashboard as a new user would (see the script for the
//! steps and the UI contract). It needs three things that are not Rust:
//!
//! - Chromium: Debian's `/usr/bin/chromium` (`apt-get install chromium`), or the binary named
//!   by `HERALD_TEST_CHROMIUM`;
//! - Node.js (`node` on the PATH);
//! - `playwright-core`: `npm ci --prefix crates/herald/tests/e2e`.
//!
//! Where one is missing the test is skipped, loudly; with `HERALD_TEST_REQUIRE_BROWSER=1` (as
//! `.ci/run` sets) it fails instead. Screenshots of every page go to
//! `$CARGO_TARGET_TMPDIR/dashboard-screenshots/<backend>/`.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::support::{Settings, TestApp};
use crate::Backend;

/// How long the whole browser script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

fn chromium() -> PathBuf {
    std::env::var_os("HERALD_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run the browser test, each with how to get it.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    let chromium = chromium();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (apt-get install chromium, or set HERALD_TEST_CHROMIUM)",
            chromium.display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|status| status.success()) {
        missing.push("Node.js: `node` on the PATH (apt-get install nodejs)".to_owned());
    }
    let playwright = e2e_dir().join("node_modules/playwright-core");
    if !playwright.is_dir() {
        missing.push(format!(
            "{} (npm ci --prefix crates/herald/tests/e2e)",
            playwright.display()
        ));
    }
    missing
}

/// Copies `stream` line by line to our stderr (seen with `--nocapture`) and into `into`.
fn collect(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("{prefix}{line}");
            if let Ok(mut text) = into.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    })
}

/// One browser at a time, across both backends' copies of this test and across test
/// processes: two Chromiums on a small machine make the waits in the script flaky.
fn browser_lock() -> File {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser.lock");
    let file = File::create(&path).expect("create the browser lock file");
    file.lock().expect("lock the browser lock file");
    file
}

/// Stops the script: SIGTERM first, on which Playwright closes Chromium (a SIGKILL would leave
/// Chromium running), then SIGKILL if it is still there after a while.
async fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_delivers_inspects_and_retries_in_the_browser() {
    skip_if_backend_unavailable!();
    let backend = match super::BACKEND {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        let list = missing.join("\n  - ");
        assert!(
            std::env::var("HERALD_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "HERALD_TEST_REQUIRE_BROWSER=1 but the dashboard browser test cannot run; missing:\n  - {list}"
        );
        // Straight to the stderr file descriptor, as the PostgreSQL half does: libtest
        // captures `eprintln!`, so the notice would show only with --nocapture while the test
        // reads `ok`.
        let notice = format!(
            "\n**** SKIPPED {backend}::dashboard_browser::a_new_user_delivers_inspects_and_retries_in_the_browser: missing\n  - {list}\n**** (set HERALD_TEST_REQUIRE_BROWSER=1 to make this a failure)\n"
        );
        let _ = std::io::stderr().lock().write_all(notice.as_bytes());
        return;
    }

    let _lock = tokio::task::spawn_blocking(browser_lock)
        .await
        .expect("wait for the browser lock");

    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("10ms".into()),
        ..Settings::default()
    })
    .await;
    let (org_id, key) = app.tenant("tenant").await;
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard-screenshots")
        .join(backend);
    // Screenshots of an earlier run must not be mistaken for this one's.
    let _ = std::fs::remove_dir_all(&screenshots);

    let mut child = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(e2e_dir())
        .env("HERALD_URL", format!("http://{}", app.addr))
        .env("HERALD_KEY", &key)
        .env("HERALD_ADMIN_KEY", &app.admin_key)
        .env("HERALD_ORG_ID", &org_id)
        .env("CHROMIUM", chromium())
        .env("SCREENSHOT_DIR", &screenshots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node dashboard.mjs");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let readers = [
        collect(
            child.stdout.take().expect("stdout"),
            "[browser] ",
            Arc::clone(&stdout),
        ),
        collect(
            child.stderr.take().expect("stderr"),
            "[browser stderr] ",
            Arc::clone(&stderr),
        ),
    ];

    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            stop(&mut child).await;
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for reader in readers {
        let _ = reader.join();
    }
    let stdout = stdout.lock().expect("stdout").clone();
    let stderr = stderr.lock().expect("stderr").clone();
    app.stop().await;

    match status {
        Some(status) if status.success() => {
            assert!(
                stdout.lines().any(|line| line == "OK"),
                "the browser script exited 0 without printing OK\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            );
        }
        Some(status) => panic!(
            "the dashboard browser test failed ({status}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            screenshots.display()
        ),
        None => panic!(
            "the dashboard browser test did not finish in {SCRIPT_TIMEOUT:?} and was killed; screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            screenshots.display()
        ),
    }
}
