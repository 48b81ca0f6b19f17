//! The dashboard in a real headless Chromium, driven by Playwright.
//!
//! The test starts Herald and runs `tests/e2e/dashboard.mjs` with Node; the script starts its
//! own receiver and walks through the dashboard as a new user would (see the script for the
//! steps and the UI contract). What it needs beyond Rust, and how it is skipped where that is
//! missing, is in `support/browser.rs`. Screenshots of every page go to
//! `$CARGO_TARGET_TMPDIR/dashboard-screenshots/<backend>/`.

use super::support::browser;
use super::support::{Settings, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_delivers_inspects_and_retries_in_the_browser() {
    skip_if_backend_unavailable!();
    let Some(_lock) =
        browser::ready("dashboard_browser::a_new_user_delivers_inspects_and_retries_in_the_browser").await
    else {
        return;
    };

    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("10ms".into()),
        ..Settings::default()
    })
    .await;
    let (org_id, key) = app.tenant("tenant").await;
    let admin_key = app.admin_key.clone();
    browser::run_script(
        "dashboard.mjs",
        &[
            ("HERALD_URL", format!("http://{}", app.addr).as_ref()),
            ("HERALD_KEY", key.as_ref()),
            ("HERALD_ADMIN_KEY", admin_key.as_ref()),
            ("HERALD_ORG_ID", org_id.as_ref()),
        ],
        app,
    )
    .await;
}
