//! A minimal webhook receiver that verifies Herald's signatures.
//!
//! Run it with the endpoint's signing secret (as shown by Herald, `whsec_…`):
//!
//! ```sh
//! HERALD_SECRET=whsec_... cargo run -p herald-verify --example receiver
//! # optional: PORT=8080 (default 4000, beside `herald listen`'s 3000); listens on 127.0.0.1
//! ```
//!
//! During a secret rotation, put both secrets in `HERALD_SECRET`, separated by spaces or
//! commas: a delivery signed with either is accepted.
//!
//! Every `POST` (any path) is verified against the raw body: a bad or missing signature gets
//! `401`. Deliveries are deduplicated on `webhook-id`: Herald retries with the same id, so a
//! retry of an already processed message is acknowledged with `204` without being processed
//! again. (A real receiver keeps that set in its database, with the side effects, and
//! expires old ids; this one keeps it in memory.)

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use herald_verify::{Secret, Verifier};

struct App {
    verifier: Verifier,
    seen: Mutex<HashSet<String>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secrets = std::env::var("HERALD_SECRET")
        .map_err(|_| "set HERALD_SECRET to the endpoint's signing secret (whsec_...)")?
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(Secret::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err("HERALD_SECRET is empty".into());
    }
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) => 4000,
    };

    let app = Arc::new(App {
        verifier: Verifier::new(secrets),
        seen: Mutex::new(HashSet::new()),
    });
    let router = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .with_state(app);

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{addr} is already in use; choose another port with PORT=…")
        } else {
            format!("cannot listen on {addr}: {e}")
        }
    })?;
    println!("listening on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}

async fn receive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    // Verify the raw bytes, before any parsing.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = app.verifier.verify_headers(header, &body) {
        eprintln!("rejected delivery: {e}");
        return StatusCode::UNAUTHORIZED;
    }
    // verify_headers succeeded, so the header is present.
    let Some(id) = header("webhook-id") else {
        return StatusCode::UNAUTHORIZED;
    };

    let first_time = match app.seen.lock() {
        Ok(mut seen) => seen.insert(id.to_owned()),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR,
    };
    if !first_time {
        println!("duplicate {id}: already processed, acknowledging");
        return StatusCode::NO_CONTENT;
    }

    // "Processing": a real receiver would act on the event here.
    println!("processing {id}: {}", String::from_utf8_lossy(&body));
    StatusCode::NO_CONTENT
}
