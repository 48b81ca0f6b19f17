//! One delivery attempt: sign, POST, read at most 16 KiB of the answer, classify the result.
//! Nothing here touches the store; the dispatcher decides what the [`Outcome`] means.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use super::client::{BlockedAddress, DnsFailure, check_literal};
use super::retry::parse_retry_after;
use crate::domain::net::TargetPolicy;
use crate::domain::time::{Millis, now_ms};

/// The signature headers' names, built once rather than parsed for every attempt.
const WEBHOOK_ID: HeaderName = HeaderName::from_static(herald_verify::HEADER_ID);
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(herald_verify::HEADER_TIMESTAMP);
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(herald_verify::HEADER_SIGNATURE);

/// Response bodies are kept up to this size, for the audit trail.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

pub use crate::domain::error_class::ErrorClass;

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub started_at: Millis,
    pub duration: Duration,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    /// `None` when the endpoint answered 2xx.
    pub error: Option<(ErrorClass, String)>,
    /// The endpoint's `Retry-After` on a 429 or 503.
    pub retry_after: Option<Duration>,
    /// The `webhook-signature` header, when a request was sent.
    pub signature: Option<String>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }

    fn failed(started_at: Millis, started: Instant, class: ErrorClass, message: String) -> Self {
        Self {
            started_at,
            duration: started.elapsed(),
            response_status: None,
            response_body: None,
            response_body_truncated: false,
            error: Some((class, message)),
            retry_after: None,
            signature: None,
        }
    }
}

/// What a webhook keeps sealed for its deliveries, as a claim read it.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// Signing secrets, the current one first.
    pub secrets: &'a [Vec<u8>],
    /// Custom headers; `None`: none.
    pub headers: Option<&'a [u8]>,
}

/// What [`Target::prepare`]'s `open` made of [`Sealed`]: whatever it could open (it logs the
/// rest).
#[derive(Debug, Default)]
pub struct Opened {
    pub secrets: Vec<herald_verify::Secret>,
    /// The webhook's custom headers, marked sensitive so no debug output shows a value.
    pub headers: HeaderMap,
}

/// Where, with which keys and with which custom headers a webhook's deliveries are sent, as
/// its stored `url` and sealed secrets and headers say. Parsing the url and opening the
/// secrets were a tenth of a worker's instructions when done for every attempt (callgrind,
/// `herald-bench throughput`), so one `Target` serves every attempt to the webhook while they
/// overlap (see [`super::endpoints::Slot::target`]).
pub struct Target {
    /// The stored url and sealed parts it was prepared from: a job naming others (the
    /// webhook was updated or its secret rotated) gets a new `Target`.
    stored_url: String,
    sealed_secrets: Vec<Vec<u8>>,
    sealed_headers: Option<Vec<u8>>,
    url: Result<reqwest::Url, String>,
    /// The secrets to sign with, the current one first; several during a rotation overlap.
    secrets: Vec<herald_verify::Secret>,
    headers: HeaderMap,
}

impl Target {
    /// `open` turns the sealed parts into what it could open.
    pub fn prepare(stored_url: &str, sealed: Sealed<'_>, open: impl FnOnce(Sealed<'_>) -> Opened) -> Self {
        let opened = open(sealed);
        Self {
            stored_url: stored_url.to_owned(),
            sealed_secrets: sealed.secrets.to_vec(),
            sealed_headers: sealed.headers.map(<[u8]>::to_vec),
            url: reqwest::Url::parse(stored_url).map_err(|e| format!("invalid url: {e}")),
            secrets: opened.secrets,
            headers: opened.headers,
        }
    }

    /// Whether this was prepared from exactly this url and these sealed parts.
    pub fn is_for(&self, stored_url: &str, sealed: Sealed<'_>) -> bool {
        self.stored_url == stored_url
            && self.sealed_secrets == sealed.secrets
            && self.sealed_headers.as_deref() == sealed.headers
    }
}

/// What to send.
pub struct Request<'a> {
    pub target: &'a Target,
    /// The event id: `webhook-id`, identical on every retry so receivers can deduplicate.
    pub event_id: &'a str,
    pub payload: &'a str,
}

/// An `io::Error`'s `source()` skips the error it wraps, so look inside, however deep.
fn rustls_inside<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = e;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// Walks an error's causes for the ones we can name.
fn classify(error: &reqwest::Error) -> (ErrorClass, String) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut innermost = error.to_string();
    while let Some(e) = cause {
        if let Some(blocked) = e.downcast_ref::<BlockedAddress>() {
            blocked.log();
            return (ErrorClass::BlockedAddress, blocked.to_string());
        }
        if let Some(dns) = e.downcast_ref::<DnsFailure>() {
            return (ErrorClass::Dns, dns.to_string());
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return (ErrorClass::Tls, format!("TLS: {e}"));
        }
        if let Some(tls) = rustls_inside(e) {
            return (ErrorClass::Tls, format!("TLS: {tls}"));
        }
        innermost = e.to_string();
        cause = e.source();
    }
    if error.is_timeout() {
        (
            ErrorClass::Timeout,
            "the endpoint did not answer in time".to_owned(),
        )
    } else {
        (ErrorClass::Connect, innermost)
    }
}

/// Reads up to [`MAX_RESPONSE_BODY`] bytes; the rest is left unread.
async fn read_capped(mut response: reqwest::Response) -> (String, bool) {
    let mut body = Vec::new();
    let mut truncated = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_RESPONSE_BODY - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    (String::from_utf8_lossy(&body).into_owned(), truncated)
}

/// Makes one attempt within `timeout`.
pub async fn send(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    request: Request<'_>,
    timeout: Duration,
) -> Outcome {
    let started_at = now_ms();
    let started = Instant::now();
    let target = request.target;
    let url = match &target.url {
        Ok(url) => url.clone(),
        Err(message) => {
            return Outcome::failed(started_at, started, ErrorClass::Connect, message.clone());
        }
    };
    if let Err(blocked) = check_literal(&url, policy) {
        blocked.log();
        return Outcome::failed(
            started_at,
            started,
            ErrorClass::BlockedAddress,
            blocked.to_string(),
        );
    }
    if target.secrets.is_empty() {
        return Outcome::failed(
            started_at,
            started,
            ErrorClass::Signing,
            "no signing secret could be decrypted; is HERALD_MASTER_KEY the key these secrets were sealed with?"
                .to_owned(),
        );
    }
    let timestamp = started_at / 1000;
    let signature = herald_verify::signature_header(
        &target.secrets,
        request.event_id,
        timestamp,
        request.payload.as_bytes(),
    );
    // The custom headers go first, and validation keeps every name Herald sets (or the
    // client adds) out of them, so they add to Herald's headers and never replace one.
    let sent = client
        .post(url)
        .timeout(timeout)
        .headers(target.headers.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(WEBHOOK_ID, request.event_id)
        .header(WEBHOOK_TIMESTAMP, timestamp.to_string())
        .header(WEBHOOK_SIGNATURE, signature.as_str())
        .body(request.payload.to_owned())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let (class, message) = classify(&e);
            let mut outcome = Outcome::failed(started_at, started, class, message);
            outcome.signature = Some(signature);
            return outcome;
        }
    };
    let status = response.status();
    let retry_after = if status.as_u16() == 429 || status.as_u16() == 503 {
        response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now_ms()))
    } else {
        None
    };
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let remaining = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    let (body, truncated) = tokio::time::timeout(remaining, read_capped(response))
        .await
        .unwrap_or_default();
    let error = if status.is_success() {
        None
    } else if status.is_redirection() {
        Some((
            ErrorClass::Redirect,
            format!(
                "the endpoint redirected ({status}{}); redirects are never followed: update the webhook's url",
                location.map(|l| format!(" to {l}")).unwrap_or_default()
            ),
        ))
    } else {
        Some((ErrorClass::HttpStatus, format!("the endpoint answered {status}")))
    };
    Outcome {
        started_at,
        duration: started.elapsed(),
        response_status: Some(status.as_u16()),
        response_body: Some(body),
        response_body_truncated: truncated,
        error,
        retry_after,
        signature: Some(signature),
    }
}
