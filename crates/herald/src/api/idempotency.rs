//! `Idempotency-Key` on every POST: the same key with the same request within 24 h answers the
//! stored response (`Idempotent-Replayed: true`); with a different request, 409. Keys belong to
//! the API key that sent them, not to its org: an answer may carry a secret (a new API key, a
//! signing secret) or say what one role may not do, so it is replayed only to the caller who
//! got it first. Stored bodies are sealed with the master key, like signing secrets, bound to
//! the API key and idempotency key they answer. The key is claimed before the handler runs, so
//! two concurrent requests with one key cannot both act; a claim whose process died is taken
//! over after a minute.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::{self, Caller};
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
    let bytes = match read_body(&state, body, state.body_limit_for(parts.uri.path())).await {
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
            key_id: caller.key_id.clone(),
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
        }) => replay(&state, &caller, &key, stored),
        Ok(IdempotencyClaim::Claimed) => {
            parts.extensions.insert(caller.clone());
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let (parts, body) = response.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                let _ = state.store().release_idempotency_key(caller.key_id, key).await;
                return ApiError::internal("reading a response body", "stream failed").into_response();
            };
            let sealed = keep(parts.status)
                .then(|| state.secret_box().seal(&body, &seal_context(&caller, &key)))
                .transpose();
            let stored = match sealed {
                Ok(Some(sealed)) => {
                    state
                        .store()
                        .complete_idempotency_key(
                            caller.key_id,
                            key,
                            StoredResponse {
                                status: parts.status.as_u16(),
                                body: sealed,
                            },
                        )
                        .await
                }
                Ok(None) => state.store().release_idempotency_key(caller.key_id, key).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not seal an idempotent response; the key is released");
                    state.store().release_idempotency_key(caller.key_id, key).await
                }
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not record an idempotent response");
            }
            Response::from_parts(parts, Body::from(body))
        }
    }
}

/// What a sealed answer is bound to: a blob copied onto another caller's or key's row does
/// not open.
fn seal_context(caller: &Caller, key: &str) -> String {
    format!("idempotency {} {key}", caller.key_id)
}

fn replay(state: &AppState, caller: &Caller, key: &str, stored: StoredResponse) -> Response {
    let body = match state.secret_box().open(&stored.body, &seal_context(caller, key)) {
        Ok(body) => body,
        Err(e) => return ApiError::internal("opening a stored idempotent answer", e).into_response(),
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let has_body = !body.is_empty();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    // The first answer may have carried a secret; so may this one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
