//! Request extractors that fail in the contract's format: a JSON body that must be sent as
//! `application/json`, fits the size limit and names the offending field when it is wrong;
//! and query strings parsed the same way. axum's own extractors answer in plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

/// A JSON request body that may be absent (no body at all).
pub struct OptionalJson<T>(pub Option<T>);

/// The body of an action that takes no input: nothing, or `{}` sent as JSON. Anything else
/// is refused like any body (415 when not JSON, 400 for a field), never silently ignored.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > 5
                    && mime[..mime.len() - 5].starts_with("application/")
                    && mime.ends_with("+json"))
        })
}

/// Reads the whole body, refusing more than the body limit with a 413 and a body that has not
/// arrived within `HERALD_BODY_TIMEOUT` with a 408 (a client trickling a body in must not
/// hold a connection and a handler for ever).
pub async fn read_body(state: &AppState, body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    let deadline = state.config().body_timeout;
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::request_timeout(deadline))?;
    read.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body could not be read",
            )
        }
    })
}

/// Turns a serde message and path into the contract's 400, naming the field.
fn field_error(path: &str, raw: &str) -> ApiError {
    let message = raw.split(" at line ").next().unwrap_or(raw).to_owned();
    let prefix = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}.")
    };
    let backticked = message.split('`').nth(1).map(str::to_owned);
    let field = |name: Option<String>| name.map(|n| format!("{prefix}{n}"));
    let (code, param, message) = if message.starts_with("unknown field") {
        // serde_path_to_error already ends the path with the unknown key.
        let param = match &backticked {
            Some(name) if path.ends_with(name.as_str()) => Some(path.to_owned()),
            _ => field(backticked),
        };
        ("unknown_field", param, message)
    } else if message.starts_with("missing field") {
        ("missing_field", field(backticked), message)
    } else if message.starts_with("duplicate field") {
        ("duplicate_field", field(backticked), message)
    } else if message.contains("expected struct") || message.contains("expected a map") {
        // The body itself, or an object inside it (a batch's `events[3]`).
        match prefix.strip_suffix('.') {
            None => ("invalid_body", None, "the body must be a JSON object".to_owned()),
            Some(at) => (
                "invalid_value",
                Some(at.to_owned()),
                format!("{at} must be a JSON object"),
            ),
        }
    } else {
        let param = (!path.is_empty() && path != ".").then(|| path.to_owned());
        ("invalid_value", param, message)
    };
    let mut error = ApiError::new(axum::http::StatusCode::BAD_REQUEST, code, message);
    error.param = param;
    error
}

/// Parses a JSON object, naming the field at fault. (Derived structs would also accept a
/// JSON array, matched by position; the contract takes objects only.)
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_json",
                "the body is not valid JSON",
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            field_error(&path, &inner.to_string())
        } else {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let limit = state.body_limit_for(req.uri().path());
        let bytes = read_body(state, req.into_body(), limit).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let declared_json = is_json(req.headers());
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = read_body(state, req.into_body(), state.body_limit()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !declared_json || !has_type {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// A query string, with unknown parameters refused like unknown JSON fields.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| field_error("", &e.to_string()))
    }
}

/// A path segment as a string; the handler parses it (a malformed id is a 404).
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| PathId(id))
            .map_err(|_| ApiError::not_found("object"))
    }
}

/// `?org_id=` on a route that looks one object up by id.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Admin keys only: restrict the lookup to this org.
    pub org_id: Option<String>,
}
