//! Logging: human-readable lines by default, JSON lines with `HERALD_LOG_FORMAT=json`.
//! Fields are dotted (`webhook.id`); secrets, keys and payloads are never logged.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

#[derive(Debug, thiserror::Error)]
#[error("HERALD_LOG: `{filter}` is not a valid log filter: {message}")]
pub struct LogError {
    filter: String,
    message: String,
}

pub fn init(config: &Config) -> Result<(), LogError> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| LogError {
        filter: config.log.clone(),
        message: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (a second call in one process) is fine.
    let _ = result;
    Ok(())
}
