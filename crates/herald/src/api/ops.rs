//! Operational routes, without authentication: liveness, readiness (the database answers
//! and takes writes), Prometheus metrics and the OpenAPI document. Also the middleware that
//! counts requests.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::telemetry;

/// Latency buckets in seconds, from sub-millisecond to the delivery timeout.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder. Installed once: a second `run` in the same process
/// (tests) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            telemetry::register_metrics();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// The recorder keeps every histogram sample until upkeep folds it into the buckets, and
/// only a scrape of `/metrics` ran upkeep: a Herald nobody scraped grew with every request
/// and attempt, for good (the 1,000,000-delivery backlog run peaked at 91 MB with that, at
/// 34 MB without). A thread of its own, not a task, so that it outlives any one runtime in
/// the process.
fn spawn_upkeep(handle: PrometheusHandle) {
    let upkeep = std::thread::Builder::new()
        .name("herald-metrics".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = upkeep {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded only when /metrics is read");
    }
}

pub fn router(openapi: Arc<String>) -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = Arc::clone(&openapi);
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and takes writes: one that answers reads but refuses
/// writes (a full disk, a read-only server) would have every publish answered 503.
async fn readyz(State(state): State<AppState>) -> Response {
    let unready = match state.store().ping().await {
        Ok(()) => state
            .store()
            .writes_refused()
            .await
            .map(|why| json!({"status": "unavailable", "database": "refusing writes", "reason": why})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Some(json!({"status": "unavailable", "database": "unreachable"}))
        }
    };
    telemetry::report_store(unready.is_none());
    match unready {
        None => Json(json!({"status": "ok", "database": "ok"})).into_response(),
        Some(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let handle = state.metrics();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle.render(),
    )
        .into_response()
}

/// Counts requests and records their latency per route template (not per concrete path,
/// so ids do not explode the label space).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("herald_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("herald_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// `Cache-Control: no-store` on every answer that does not set its own: API answers carry
/// tenants' data, and those that create a webhook, rotate its secret or make an API key
/// carry a secret that no cache between Herald and the caller may keep.
pub async fn no_store(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Rewrites any error response that is not JSON (axum's rejections, tower layers) into the
/// contract's error body, so every failure has one shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // The dashboard's error pages are HTML on purpose.
    if is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let mut rewritten = ApiError::for_status(status).into_response();
    if let Some(value) = retry_after {
        rewritten.headers_mut().insert(header::RETRY_AFTER, value);
    }
    rewritten
}
