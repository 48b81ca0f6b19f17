//! The HTTP surface: one module per resource, each with its own router; this module merges
//! them, generates the OpenAPI document from them, and holds the shared state. The layers
//! every request passes through are added in `app`, above the API and the dashboard.

use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
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
pub mod portal_sessions;
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
    key_usage: auth::KeyUsage,
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
            key_usage: auth::KeyUsage::default(),
            brake: brake::FailureBrake::new(config_brake),
        }))
    }

    pub fn key_cache(&self) -> &auth::KeyCache {
        &self.0.keys
    }

    pub fn key_usage(&self) -> &auth::KeyUsage {
        &self.0.key_usage
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
        (name = "admin", description = "Orgs and API keys (admin keys only)"),
        (name = "portal", description = "Links to the tenant portal, the org's own webhook console")
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
        .merge(portal_sessions::router())
        .split_for_parts()
}

/// The OpenAPI 3.1 document, as served at `/v1/openapi.json`.
pub fn openapi_json() -> String {
    let (_, mut doc) = api();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| String::from("{}"))
}

/// The API's routes (resources and operational routes), without the layers every request
/// of the whole application passes through (see `app`).
pub fn routes() -> Router<AppState> {
    let (api, _) = api();
    api.merge(ops::router(Arc::new(openapi_json())))
}
