//! The tenant portal (API.md section 12) in a real headless Chromium, framed by another site.
//!
//! Herald runs with `HERALD_PORTAL_FRAME_ANCESTORS` naming one loopback origin,
//! `http://127.0.0.1:<embed port>`; `tests/e2e/portal.mjs` mints a link with a tenant key,
//! serves a page on that origin with the link in an `<iframe>`, and speaks to Herald as
//! `http://localhost:<port>`: another site than the embedder's, so the portal's cookie is a
//! third-party one there, as it is for a platform. In the frame the tenant creates a webhook,
//! sends a test, sees the delivery and retries it; a page on an origin not listed is refused
//! the frame; a read-only link offers no change. See the script for the steps, and
//! `support/browser.rs` for what it needs beyond Rust. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/portal-screenshots/<backend>/`.

use std::net::TcpListener;

use super::support::browser;
use super::support::{Settings, TestApp};

/// A loopback port free now, for the script's embedding page (Herald must know the origin
/// before it starts).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framed_portal_creates_delivers_and_retries_and_refuses_other_framers() {
    skip_if_backend_unavailable!();
    let Some(_lock) = browser::ready(
        "portal_browser::a_framed_portal_creates_delivers_and_retries_and_refuses_other_framers",
    )
    .await
    else {
        return;
    };

    let embed_port = free_port();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("10ms".into()),
        portal_frame_ancestors: Some(format!("http://127.0.0.1:{embed_port}")),
        ..Settings::default()
    })
    .await;
    let (_, key) = app.tenant("tenant").await;
    browser::run_script(
        "portal.mjs",
        &[
            (
                "HERALD_URL",
                format!("http://localhost:{}", app.addr.port()).as_ref(),
            ),
            ("HERALD_KEY", key.as_ref()),
            ("EMBED_PORT", embed_port.to_string().as_ref()),
        ],
        app,
    )
    .await;
}
