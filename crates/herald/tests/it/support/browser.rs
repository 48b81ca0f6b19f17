//! Running one of the Playwright scripts of `tests/e2e/` in a real headless Chromium, for the
//! browser tests (`suite/dashboard_browser.rs`, `suite/portal_browser.rs`).
//!
//! A script needs three things that are not Rust:
//!
//! - Chromium: Debian's `/usr/bin/chromium` (`apt-get install chromium`), or the binary named
//!   by `HERALD_TEST_CHROMIUM`;
//! - Node.js (`node` on the PATH);
//! - `playwright-core`: `npm ci --prefix crates/herald/tests/e2e`.
//!
//! Where one is missing [`ready`] skips the test, loudly; with `HERALD_TEST_REQUIRE_BROWSER=1`
//! (as `.ci/run` sets) it fails instead. A script prints one line per step and `OK` at the end.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{BACKEND, TestApp};
use crate::Backend;

/// This copy of the suite's backend, as screenshot directories and messages name it.
pub fn backend_name() -> &'static str {
    match BACKEND {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// The Chromium the scripts drive.
fn chromium() -> PathBuf {
    std::env::var_os("HERALD_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run a browser test, each with how to get it.
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

/// Held while a browser runs: see [`ready`].
pub struct BrowserLock(File);

/// Whether the browser test `test` (its path after the backend, for the notice) can run: the
/// browser lock when it can; `None` after a loud notice when something is missing (a panic
/// instead with `HERALD_TEST_REQUIRE_BROWSER=1`).
///
/// One browser at a time, across both backends' copies of every browser test and across
/// test processes: two Chromiums on a small machine make the waits in the scripts flaky.
pub async fn ready(test: &str) -> Option<BrowserLock> {
    let backend = backend_name();
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        let list = missing.join("\n  - ");
        assert!(
            std::env::var("HERALD_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "HERALD_TEST_REQUIRE_BROWSER=1 but the browser test {backend}::{test} cannot run; missing:\n  - {list}"
        );
        // Straight to the stderr file descriptor, as the PostgreSQL half does: libtest
        // captures `eprintln!`, so the notice would show only with --nocapture while the test
        // reads `ok`.
        let notice = format!(
            "\n**** SKIPPED {backend}::{test}: missing\n  - {list}\n**** (set HERALD_TEST_REQUIRE_BROWSER=1 to make this a failure)\n"
        );
        let _ = std::io::stderr().lock().write_all(notice.as_bytes());
        return None;
    }
    let lock = tokio::task::spawn_blocking(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser.lock");
        let file = File::create(&path).expect("create the browser lock file");
        file.lock().expect("lock the browser lock file");
        file
    })
    .await
    .expect("wait for the browser lock");
    Some(BrowserLock(lock))
}

/// How long a whole browser script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// `$CARGO_TARGET_TMPDIR/<script's name>-screenshots/<backend>/`, emptied: screenshots of an
/// earlier run must not be mistaken for this one's.
fn screenshot_dir(script: &str) -> PathBuf {
    let name = script.strip_suffix(".mjs").unwrap_or(script);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-screenshots"))
        .join(backend_name());
    let _ = std::fs::remove_dir_all(&dir);
    dir
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

/// Stops a script: SIGTERM first, on which Playwright closes Chromium (a SIGKILL would leave
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

/// Runs the browser script `script` (`dashboard.mjs`) with `env` against `app`, and
/// `CHROMIUM` and `SCREENSHOT_DIR` (see [`screenshot_dir`]) besides; then stops `app`, and
/// panics with the script's output unless it passed.
pub async fn run_script(script: &str, env: &[(&str, &OsStr)], app: TestApp) {
    let screenshots = screenshot_dir(script);
    let chromium = chromium();
    let mut env = env.to_vec();
    env.extend([
        ("CHROMIUM", chromium.as_os_str()),
        ("SCREENSHOT_DIR", screenshots.as_os_str()),
    ]);
    let outcome = run(script, &env, SCRIPT_TIMEOUT).await;
    app.stop().await;
    outcome.assert_passed(&screenshots);
}

/// How a script ended.
struct Outcome {
    script: String,
    timeout: Duration,
    /// `None`: killed at the timeout.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `node <script>` in `tests/e2e/` with `env`, its output copied to our stderr as it
/// comes; stopped after `timeout`.
async fn run(script: &str, env: &[(&str, &OsStr)], timeout: Duration) -> Outcome {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(e2e_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start node {script}: {e}"));
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

    let deadline = Instant::now() + timeout;
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
    Outcome {
        script: script.to_owned(),
        timeout,
        status,
        stdout,
        stderr,
    }
}

impl Outcome {
    /// Panics, with the script's output, unless it exited 0 after printing `OK`.
    fn assert_passed(&self, screenshots: &Path) {
        let Self {
            script,
            timeout,
            status,
            stdout,
            stderr,
        } = self;
        match status {
            Some(status) if status.success() => {
                assert!(
                    stdout.lines().any(|line| line == "OK"),
                    "{script} exited 0 without printing OK\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
                );
            }
            Some(status) => panic!(
                "the browser script {script} failed ({status}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                screenshots.display()
            ),
            None => panic!(
                "the browser script {script} did not finish in {timeout:?} and was killed; screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                screenshots.display()
            ),
        }
    }
}
