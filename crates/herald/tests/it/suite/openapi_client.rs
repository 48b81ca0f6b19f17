//! The OpenAPI document is useful, not only valid: a client generated from it by a maintained
//! generator (PyPI's `openapi-python-client`) creates a webhook, publishes an event, lists
//! the delivery and reads a contract error, against the real server.
//!
//! Needs `openapi-python-client` and the Python it runs on: `HERALD_TEST_OPENAPI_GENERATOR`
//! names the generator (`.ci/run` installs it in a venv and sets it); without it the test is
//! skipped and says so, and with `HERALD_TEST_REQUIRE_OPENAPI_CLIENT=1` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::support::TestApp;

/// The generator, and the Python beside it in the same environment.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let generator = PathBuf::from(std::env::var_os("HERALD_TEST_OPENAPI_GENERATOR")?);
    let python = generator.with_file_name("python3");
    (generator.is_file() && python.is_file()).then_some((generator, python))
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

// Multi-threaded: the generated client runs as a blocking child process while this runtime
// serves its requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_openapi_document_creates_publishes_and_lists() {
    skip_if_backend_unavailable!();
    if super::BACKEND != crate::Backend::Sqlite {
        return; // the document is the same on both backends
    }
    let Some((generator, python)) = tools() else {
        let required = std::env::var_os("HERALD_TEST_REQUIRE_OPENAPI_CLIENT").is_some();
        assert!(
            !required,
            "HERALD_TEST_REQUIRE_OPENAPI_CLIENT is set but HERALD_TEST_OPENAPI_GENERATOR names no openapi-python-client"
        );
        eprintln!("SKIPPED: the generated OpenAPI client test (set HERALD_TEST_OPENAPI_GENERATOR)");
        return;
    };
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().expect("tempdir");
    let document = work.path().join("openapi.json");
    let served = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .text()
        .await
        .expect("body");
    std::fs::write(&document, served).expect("write document");
    let package = work.path().join("herald_client");
    run(
        Command::new(&generator)
            .args(["generate", "--meta", "none", "--path"])
            .arg(&document)
            .arg("--output-path")
            .arg(&package)
            .current_dir(work.path()),
        "openapi-python-client generate",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi_client/use_the_client.py");
    let printed = run(
        Command::new(&python)
            .arg(&script)
            .env("PYTHONPATH", work.path())
            .env("HERALD_URL", app.url(""))
            .env("HERALD_KEY", &app.admin_key),
        "the generated client",
    );
    assert!(printed.contains("generated client: webhook wh_"), "{printed}");
}
