//! `Idempotency-Key` on every POST: the same key with the same request within 24 h answers the
//! stored response (`Idempotent-Replayed: true`); with a different request, 409. Keys belong to
//! the caller's org. The key is claimed before the handler runs, so two concurrent requests
//! with one key cannot both act; a claim whose process died is taken over after a minute.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth;
use super::error::ApiError;
use super::extract::read_body;
use crate::domain::time::now_ms;
use crate::store::{IdempotencyClaim, IdempotencyRequest, StoredResponse};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
pub const TTL_MS: i64 = 24 * 3_600_000;
const ABANDONED_MS: i64 = 60_000;

/// 1–255 printable ASCII characters, space included.
fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Responses worth replaying: successes and the client's own errors. Server errors,
/// rate limits and conflicts are transient, so the key is released for a retry.
fn keep(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::CONFLICT)
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let key = match req.headers().get(HEADER).map(HeaderValue::to_str) {
        None => return next.run(req).await,
        Some(Ok("")) => return next.run(req).await,
        Some(Ok(key)) if valid_key(key) => key.to_owned(),
        Some(_) => {
            return ApiError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
            .into_response();
        }
    };
    // An unauthenticated request goes on to its handler, which answers 401.
    let Ok(caller) = auth::authenticate(&state, req.headers()).await else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match read_body(body, state.body_limit()).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"?");
    hasher.update(parts.uri.query().unwrap_or("").as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hasher.finalize().to_vec();

    let now = now_ms();
    let claim = state
        .store()
        .claim_idempotency_key(IdempotencyRequest {
            org_id: caller.org_id.clone(),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            now,
            expired_before: now - TTL_MS,
            abandoned_before: now - ABANDONED_MS,
        })
        .await;
    match claim {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyClaim::Existing {
            fingerprint: stored, ..
        }) if stored != fingerprint => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request",
        )
        .with_param("Idempotency-Key")
        .into_response(),
        Ok(IdempotencyClaim::Existing { response: None, .. }) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .with_param("Idempotency-Key")
        .into_response(),
        Ok(IdempotencyClaim::Existing {
            response: Some(stored),
            ..
        }) => replay(stored),
        Ok(IdempotencyClaim::Claimed) => {
            parts.extensions.insert(caller.clone());
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let (parts, body) = response.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                let _ = state.store().release_idempotency_key(caller.org_id, key).await;
                return ApiError::internal("reading a response body", "stream failed").into_response();
            };
            let stored = if keep(parts.status) {
                state
                    .store()
                    .complete_idempotency_key(
                        caller.org_id,
                        key,
                        StoredResponse {
                            status: parts.status.as_u16(),
                            body: body.to_vec(),
                        },
                    )
                    .await
            } else {
                state.store().release_idempotency_key(caller.org_id, key).await
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not record an idempotent response");
            }
            Response::from_parts(parts, Body::from(body))
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from(stored.body.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !stored.body.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert!(valid_key("a"));
        assert!(valid_key("order 42 / retry"));
        assert!(valid_key(&"k".repeat(255)));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("tab\there"));
        assert!(!valid_key("é"));
    }
}
