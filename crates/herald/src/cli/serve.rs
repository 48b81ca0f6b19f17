//! `herald serve`: bind, create the first admin key on an empty database, run until a signal.

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::admin::print_key;
use crate::accounts;
use crate::config::Config;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    if config.dev {
        tracing::warn!(
            "development mode: http:// and loopback webhook targets are allowed; never run this in production"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (HERALD_LISTEN)", config.listen))?;
    let store = crate::open_store(&config).await?;
    if let Some(key) = accounts::bootstrap(store.as_ref()).await? {
        println!("First start: created org \"default\" and an admin API key.");
        print_key(&key);
    }
    drop(store);
    let shutdown = shutdown_signal()?;
    let address = listener.local_addr()?;
    tracing::info!(listen = %address, version = env!("CARGO_PKG_VERSION"), "Herald is listening");
    crate::run(config, listener, shutdown).await?;
    tracing::info!("Herald stopped");
    Ok(())
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
