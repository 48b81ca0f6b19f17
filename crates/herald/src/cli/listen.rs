//! `herald listen`: a receiver for local development. It answers 204, checks the signature
//! when given the secret (401 when it does not match, so Herald retries and you notice), and
//! prints every delivery readably.

use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use herald_verify::{Secret, Verifier};

pub async fn listen(port: u16, secret: Option<&str>) -> anyhow::Result<()> {
    let verifier = secret
        .map(|s| Secret::parse(s).map(|secret| Verifier::new(vec![secret])))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--secret: {e}"))?
        .map(Arc::new);
    let app = axum::Router::new().fallback(receive).with_state(verifier.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let address = listener.local_addr()?;
    println!(
        "Listening on http://{address}/ — point a webhook here (`herald serve --dev` allows loopback URLs)."
    );
    if verifier.is_none() {
        println!("Signatures are not checked; pass --secret whsec_… to verify them.");
    }
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(
    State(verifier): State<Option<Arc<Verifier>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let verdict = match &verifier {
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
    if verdict.is_ok() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}
