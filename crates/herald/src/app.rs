//! The whole application: the API and the dashboard on one router, behind the layers every
//! request passes through (idempotency, timeouts, the contract's error body, caching,
//! metrics, panics, tracing). It sits above both, so neither imports the other's router.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::ApiError;
use crate::api::{AppState, idempotency, ops};

async fn route_not_found() -> Response {
    ApiError::for_status(StatusCode::NOT_FOUND).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED).into_response()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let panic_body = |_: Box<dyn std::any::Any + Send>| {
        tracing::error!("a request handler panicked");
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
    };
    crate::api::routes()
        .merge(crate::dashboard::router(state.clone()))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        // Inside `json_errors`, so a handler that overruns answers in the contract's shape.
        // A slow body is answered 408 where it is read, well before this.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config().body_timeout + Duration::from_secs(60),
        ))
        .layer(axum::middleware::from_fn(ops::json_errors))
        .layer(axum::middleware::from_fn(ops::no_store))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(CatchPanicLayer::custom(panic_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
