//! `ApiError`: every failure of the HTTP surface, mapped once to the contract's body
//! `{"error":{"type","code","message","param"}}`. Internal errors are logged here with their
//! detail and answered as a bare 500, so no internals ever reach a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for `Retry-After` (429; a 503 says 1 when this is unset).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The family: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `conflict_error`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A stable machine-readable code, e.g. `unknown_event_type`.
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

/// The error family for a status.
fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 for a field that failed validation.
    pub fn invalid(code: &'static str, param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_param(param)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
    }

    /// 429 for a client address that failed to authenticate too often.
    pub fn too_many_failures(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs().max(1);
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failed_authentications",
            format!("too many failed authentications from this address; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        error
    }

    /// The `Retry-After` this error is answered with, if any.
    pub fn retry_after_header(&self) -> Option<HeaderValue> {
        match self.retry_after {
            Some(seconds) => Some(HeaderValue::from(seconds)),
            None if self.status == StatusCode::SERVICE_UNAVAILABLE => Some(HeaderValue::from_static("1")),
            None => None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 that never says whether the object exists in another org.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("no such {what}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        )
    }

    /// Logs the detail, answers a bare 500.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }

    /// 408: the request's body did not arrive in time.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms (HERALD_BODY_TIMEOUT)",
                limit.as_millis()
            ),
        )
    }

    /// The default body for a status produced outside our handlers (axum, tower layers).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("invalid_request", "the request is not valid"),
            401 => ("invalid_api_key", "missing or invalid credentials"),
            403 => ("forbidden", "this key may not do that"),
            404 => ("route_not_found", "no such route"),
            405 => ("method_not_allowed", "this route does not accept that method"),
            408 => ("request_timeout", "the request took too long"),
            413 => ("payload_too_large", "the request body is too large"),
            415 => (
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            429 => ("rate_limited", "too many requests"),
            503 => ("service_unavailable", "the service is unavailable; retry shortly"),
            500.. => (
                "internal_error",
                "something went wrong on our side; it has been logged",
            ),
            _ => ("invalid_request", "the request could not be handled"),
        };
        Self::new(status, code, message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: kind_of(self.status),
                code: self.code,
                message: self.message.clone(),
                param: self.param.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(value) = self.retry_after_header() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database cannot take writes right now (unreachable, or its disk is full or read-only); retry shortly",
                )
            }
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::Backend(detail) => Self::internal("database error", detail),
        }
    }
}

/// Bad custom headers: the contract's `invalid_value`, `param` naming the header at fault.
impl From<crate::domain::headers::HeadersError> for ApiError {
    fn from(e: crate::domain::headers::HeadersError) -> Self {
        Self::invalid("invalid_value", e.param, e.message)
    }
}

impl From<crate::secrets::SecretsError> for ApiError {
    fn from(e: crate::secrets::SecretsError) -> Self {
        Self::internal("secret handling failed", e)
    }
}

impl From<crate::portal::PortalError> for ApiError {
    fn from(e: crate::portal::PortalError) -> Self {
        match e {
            crate::portal::PortalError::Store(e) => e.into(),
            crate::portal::PortalError::Secrets(e) => e.into(),
        }
    }
}

/// A bad portal theme: `invalid_value`, `param` naming the field (`theme.logo_url`).
impl From<crate::domain::theme::ThemeError> for ApiError {
    fn from(e: crate::domain::theme::ThemeError) -> Self {
        Self::invalid("invalid_value", e.param, e.message)
    }
}
