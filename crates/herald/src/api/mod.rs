//! The HTTP surface: one module per resource, each with its own router; this module merges
//! them, adds the layers every request passes through, and holds the shared state.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::delivery::EngineHandle;
use crate::domain::event_types::Catalog;
use crate::domain::net::TargetPolicy;
use crate::secrets::SecretBox;
use crate::store::Store;

pub mod auth;
pub mod brake;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod ops;
pub mod orgs;
pub mod pagination;
pub mod webhooks;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    config: Config,
    policy: TargetPolicy,
    secret_box: SecretBox,
    metrics: PrometheusHandle,
    /// Wakes the delivery engine when new deliveries are due, and hands it fresh ones.
    engine: EngineHandle,
    keys: auth::KeyCache,
    brake: brake::FailureBrake,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config, secret_box: SecretBox, engine: EngineHandle) -> Self {
        let config_brake = config.auth_failure_limit;
        Self(Arc::new(Inner {
            store,
            policy: config.target_policy(),
            config,
            secret_box,
            metrics: ops::metrics_handle(),
            engine,
            keys: auth::KeyCache::new(),
            brake: brake::FailureBrake::new(config_brake),
        }))
    }

    pub fn key_cache(&self) -> &auth::KeyCache {
        &self.0.keys
    }

    pub fn brake(&self) -> &brake::FailureBrake {
        &self.0.brake
    }

    /// Tells the delivery engine there is new work.
    pub fn wake_dispatcher(&self) {
        self.0.engine.wake();
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.0.engine
    }

    pub fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn catalog(&self) -> &Catalog {
        &self.0.config.catalog
    }

    pub fn target_policy(&self) -> &TargetPolicy {
        &self.0.policy
    }

    pub fn secret_box(&self) -> &SecretBox {
        &self.0.secret_box
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// The largest request body: an event's `data` plus room for the envelope.
    pub fn body_limit(&self) -> usize {
        self.0
            .config
            .max_payload_bytes
            .saturating_add(64 * 1024)
            .max(1024 * 1024)
    }

    /// The largest body a route takes: a batch of events has a limit of its own.
    pub fn body_limit_for(&self, path: &str) -> usize {
        if path == events::BATCH_PATH {
            events::BATCH_BODY_LIMIT
        } else {
            self.body_limit()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Self-hostable webhook delivery: signed, retried, audited, never lost.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    security(("basic" = []), ("bearer" = [])),
    tags(
        (name = "webhooks", description = "Endpoints tenants register and the event types they subscribe to"),
        (name = "events", description = "Publishing events"),
        (name = "deliveries", description = "Delivery events, their attempts, retries"),
        (name = "admin", description = "Orgs and API keys (admin keys only)")
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("base64(key_id:key_secret)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("key_id:key_secret"))
                    .build(),
            ),
        );
    }
}

/// The resource routers and the OpenAPI document generated from them.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(event_types::router())
        .merge(webhooks::router())
        .merge(deliveries::router())
        .merge(events::router())
        .merge(orgs::router())
        .split_for_parts()
}

/// The OpenAPI 3.1 document, as served at `/v1/openapi.json`.
pub fn openapi_json() -> String {
    let (_, mut doc) = api();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| String::from("{}"))
}

async fn route_not_found() -> Response {
    error::ApiError::for_status(StatusCode::NOT_FOUND).into_response()
}

async fn method_not_allowed() -> Response {
    error::ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED).into_response()
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (api, _) = api();
    let openapi = Arc::new(openapi_json());
    let panic_body = |_: Box<dyn std::any::Any + Send>| {
        tracing::error!("a request handler panicked");
        error::ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
    };
    api.merge(ops::router(openapi))
        .merge(crate::dashboard::router())
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
