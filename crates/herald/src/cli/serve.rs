//! `herald serve`: check the settings, lock the embedded database, bind, create the first
//! admin key on an empty database, run until a signal.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::admin::print_key;
use crate::accounts;
use crate::config::{Config, DatabaseUrl};
use crate::store::lock::EmbeddedLock;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Everything that can be wrong is found before the database or the port is touched, so a
    // refused start leaves nothing behind (no admin key printed for a server that never ran).
    crate::secrets::load_or_create_master_key(&config)?;
    let _lock = match &config.database_url {
        DatabaseUrl::Sqlite(path) => Some(EmbeddedLock::acquire(path)?),
        DatabaseUrl::Postgres(_) => None,
    };
    if config.dev {
        tracing::warn!(
            "development mode: http:// and loopback webhook targets are allowed; never run this in production"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| super::bind_error(e, &config.listen.to_string(), "HERALD_LISTEN or --listen"))?;
    let address = listener.local_addr()?;
    let store = crate::open_store(&config).await?;
    if let Some(key) = accounts::bootstrap(store.as_ref()).await? {
        println!("First start: created org \"default\" and an admin API key.");
        print_key(&key, &reachable_at(&config, address));
    }
    drop(store);
    let shutdown = shutdown_signal()?;
    tracing::info!(listen = %address, version = env!("CARGO_PKG_VERSION"), "Herald is listening");
    crate::run(config, listener, shutdown).await?;
    tracing::info!("Herald stopped");
    Ok(())
}

/// Where a user reaches this server: `HERALD_PUBLIC_URL` when it is set, else the address
/// actually bound (port 0 resolved; `0.0.0.0` shown as `127.0.0.1`, which reaches it from
/// this machine).
fn reachable_at(config: &Config, bound: SocketAddr) -> String {
    let default = url::Url::parse(&format!("http://{}", config.listen)).ok();
    if default.as_ref() != Some(&config.public_url) {
        return config.public_url.as_str().trim_end_matches('/').to_owned();
    }
    let mut shown = bound;
    if shown.ip().is_unspecified() {
        shown.set_ip(if bound.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{shown}")
}

/// Installs the SIGINT/SIGTERM handlers now (so a signal that arrives right after start-up is
/// not lost to the default action) and returns a future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}
