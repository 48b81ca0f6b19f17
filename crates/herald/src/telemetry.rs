//! Logging: human-readable lines by default, JSON lines with `HERALD_LOG_FORMAT=json`.
//! Fields are dotted (`webhook.id`); secrets, keys and payloads are never logged.
//!
//! Also the metrics every layer shares: the counters that exist from the start, and the
//! store's health. (The recorder itself and `/metrics` are in `api/ops.rs`.)

use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Puts the counters that alerts watch (deploy/prometheus/herald.rules.yml) at 0 as soon
/// as the recorder is installed. A series that does not exist yet is invisible to `rate()`
/// and `increase()`, so "deliveries failed" or "no delivery progress" would stay silent on a
/// node that never had one; and a counter first touched before the recorder was installed
/// would be lost. Called once, right after the recorder is installed.
pub fn register_metrics() {
    for outcome in ["delivered", "retry", "failed", "disabled"] {
        metrics::counter!("herald_deliveries_total", "outcome" => outcome).increment(0);
    }
    for reason in ["gone", "failing"] {
        metrics::counter!("herald_webhooks_disabled_total", "reason" => reason).increment(0);
    }
    for kind in ["events", "deliveries", "attempts", "orgs"] {
        metrics::counter!("herald_purged_total", "kind" => kind).increment(0);
    }
    for name in [
        "herald_events_published_total",
        "herald_auth_failures_total",
        "herald_auth_throttled_total",
        "herald_http_connections_refused_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Whether the database answers and takes writes, as `herald_store_up` (1 or 0): set by
/// `/readyz` and every few seconds by the delivery engine, so an alert sees the store go
/// away even when nothing polls `/readyz`.
pub fn report_store(up: bool) {
    metrics::gauge!("herald_store_up").set(if up { 1.0 } else { 0.0 });
}

/// A warning said at most once per `every`, however often its cause repeats (refused
/// connections, failed sign-ins): a flood must not flood the log too.
pub struct Throttle {
    every: Duration,
    /// When it last said yes, and how many times it was asked since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one occurrence; when it is time to warn again, how many occurred since the
    /// last warning (this one included).
    pub fn due(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, count) = &mut *state;
        *count += 1;
        if last.is_some_and(|at| at.elapsed() < self.every) {
            return None;
        }
        *last = Some(Instant::now());
        Some(std::mem::take(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_warning_is_due_once_per_interval_with_the_count_since() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.due(), Some(1));
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.due(), None);
        let now = Throttle::new(Duration::ZERO);
        assert_eq!(now.due(), Some(1));
        assert_eq!(now.due(), Some(1));
    }
}
