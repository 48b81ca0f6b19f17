//! `herald listen`: a receiver for local development. It answers 204, checks the signature
//! when given the secret (401 when it does not match, so Herald retries and you notice), and
//! prints every delivery readably. `--status 500` makes it answer that status instead, to see
//! failed attempts and retries without writing a failing receiver.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use herald_verify::{Secret, Verifier};

/// What every request is checked and answered with.
struct Receiver {
    verifier: Option<Verifier>,
    /// The answer to a delivery whose signature is fine (or not checked).
    status: StatusCode,
}

pub async fn listen(port: u16, secret: Option<&str>, status: u16) -> anyhow::Result<()> {
    let verifier = secret
        .map(|s| Secret::parse(s).map(|secret| Verifier::new(vec![secret])))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))?;
    let status = StatusCode::from_u16(status).map_err(|e| anyhow::anyhow!("--status: {e}"))?;
    let checks_signatures = verifier.is_some();
    let receiver = Arc::new(Receiver { verifier, status });
    let app = axum::Router::new().fallback(receive).with_state(receiver);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| super::bind_error(e, &format!("127.0.0.1:{port}"), "--port"))?;
    let address = listener.local_addr()?;
    println!(
        "Listening on http://{address}/ — point a webhook here (`herald serve --dev` allows loopback URLs)."
    );
    if !checks_signatures {
        println!("Signatures are not checked; pass --secret whsec_… to verify them.");
    }
    if status != StatusCode::NO_CONTENT {
        println!("Answering {status} to every delivery (--status).");
    }
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let verdict = match &receiver.verifier {
        None => Ok("signature not checked"),
        Some(v) => v
            .verify_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()), &body)
            .map(|()| "signature verified"),
    };
    let event = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let event_type = event
        .as_ref()
        .and_then(|e| e["event"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    println!("── {event_type}  {}  {uri}", header("webhook-id"));
    match &verdict {
        Ok(note) => println!("   {note}"),
        Err(e) => println!("   SIGNATURE REJECTED: {e} (answering 401)"),
    }
    match event {
        Some(event) => println!(
            "{}",
            serde_json::to_string_pretty(&event)
                .unwrap_or_default()
                .lines()
                .map(|l| format!("   {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        None => println!("   (body is not JSON: {} bytes)", body.len()),
    }
    if verdict.is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    if receiver.status != StatusCode::NO_CONTENT {
        println!("   answering {} (--status)", receiver.status);
    }
    receiver.status
}
