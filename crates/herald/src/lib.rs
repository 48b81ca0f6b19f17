//! Herald: a self-hostable webhook delivery service.
//!
//! The layout, top down:
//! - [`cli`] parses commands; [`config`] turns flags, environment and an optional TOML file
//!   into one checked [`config::Config`].
//! - [`api`] is the HTTP surface: thin handlers over the [`store::Store`] trait, one error type
//!   ([`api::error::ApiError`]) mapped once to the contract's error body; [`dashboard`] is the
//!   browser's view of the same operations; [`app`] puts both behind the shared layers, and
//!   [`connections`] accepts the connections they are served on.
//! - [`domain`] holds the types parsed at the edge (ids, event types and patterns, URLs,
//!   address rules), so nothing below re-validates them.
//! - [`store`] is the only place that knows SQL; [`secrets`] seals signing secrets at rest
//!   and hashes API keys; [`accounts`] makes orgs and keys for the CLI and the admin API.
//!
//! [`run`] starts everything on a listener the caller bound, so tests run the real service
//! on `127.0.0.1:0`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub mod accounts;
pub mod announcements;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod delivery;
pub mod domain;
pub mod lifecycle;
pub mod portal;
pub mod secrets;
pub mod store;
pub mod telemetry;

use config::{Config, DatabaseUrl};
use store::{Store, StoreError};

/// Why Herald could not start. The messages name what failed; the cause is the error's
/// source, so a report of the chain (`{:#}`) says each part once.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database (HERALD_DATABASE_URL)")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
    #[error("the server failed")]
    Serve(#[from] std::io::Error),
    #[error("cannot build the delivery HTTP client")]
    Client(#[from] reqwest::Error),
}

/// Opens (and migrates) the configured database.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.database_url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(store::sqlite::SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => {
            let settings = store::postgres::PoolSettings {
                max_connections: config.database_pool_size,
                statement_timeout: config.database_statement_timeout,
            };
            Ok(Arc::new(
                store::postgres::PostgresStore::open(url, &settings).await?,
            ))
        }
    }
}

/// Serves the API and runs the delivery engine on `listener` until `shutdown` resolves; then
/// stops taking requests, lets attempts in flight finish and records them.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let store = open_store(&config).await?;
    let master_key = secrets::load_or_create_master_key(&config)?;
    let secret_box = secrets::SecretBox::new(&master_key);
    let wake = Arc::new(tokio::sync::Notify::new());
    let delivery_settings = delivery::Settings::from_config(&config);
    let janitor = lifecycle::Janitor::new(
        Arc::clone(&store),
        lifecycle::Settings {
            retention: config.retention,
            settle: delivery_settings.lease(),
        },
    );
    let (dispatcher, engine, handed) = delivery::Dispatcher::new(
        Arc::clone(&store),
        secret_box.clone(),
        delivery_settings,
        Arc::clone(&wake),
    )?;
    store.forward_wakeups(Arc::new(move || wake.notify_one()));
    let limits = connections::Limits {
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
    };
    let state = api::AppState::new(Arc::clone(&store), config, secret_box, engine);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(Arc::new(dispatcher).run(handed, stop_rx.clone()));
    let maintenance = tokio::spawn(maintain(Arc::clone(&store)));
    let purging = tokio::spawn(janitor.run(stop_rx.clone()));
    let key_use = tokio::spawn(api::auth::flush_key_use(state.clone(), stop_rx.clone()));
    let announcing = tokio::spawn(announcements::run(state.clone(), stop_rx.clone()));
    let served = connections::serve(listener, app::router(state), limits, stop_rx);
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    served.await;
    signal.abort();
    let _ = engine.await;
    let _ = key_use.await;
    let _ = announcing.await;
    maintenance.abort();
    let _ = purging.await;
    Ok(())
}

/// Housekeeping that keeps tables from growing without bound.
async fn maintain(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let cutoff = domain::time::now_ms() - api::idempotency::TTL_MS;
        match store.purge_idempotency_keys(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired idempotency keys removed"),
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
        }
        match store.purge_sessions(domain::time::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired dashboard sessions removed"),
            Err(e) => tracing::warn!(error = %e, "could not purge dashboard sessions"),
        }
    }
}
