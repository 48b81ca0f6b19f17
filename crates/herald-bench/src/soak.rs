//! `soak`: the database file's size and Herald's RSS sampled while a steady load runs with a
//! short retention. Once the oldest data ages past the retention, each purge frees about what
//! the publishes add, and the file should stop growing (SQLite reuses the freed pages).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::procstat;

/// The sample taken nearest this long after the start is the baseline of growth.
const BASELINE: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    pub t_s: f64,
    /// `herald.db` (None on PostgreSQL or `--url`).
    pub db_bytes: Option<u64>,
    /// `herald.db-wal`.
    pub wal_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub every_s: f64,
    pub samples: Vec<SoakSample>,
    /// `herald.db` at the sample nearest 3 minutes in, and at the last sample.
    pub db_bytes_at_3min: Option<u64>,
    pub db_bytes_at_end: Option<u64>,
    /// End over 3 minutes (the target: ≤ 1.2).
    pub growth_after_3min: Option<f64>,
    pub max_rss_bytes: Option<u64>,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<SoakSample>>,
    every: Duration,
}

fn size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

impl Sampler {
    pub fn start(database: Option<PathBuf>, pid: Option<u32>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let wal = database.as_ref().map(|db| {
                let mut name = db.clone().into_os_string();
                name.push("-wal");
                PathBuf::from(name)
            });
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                samples.push(SoakSample {
                    t_s: start.elapsed().as_secs_f64(),
                    db_bytes: database.as_deref().and_then(size),
                    wal_bytes: wal.as_deref().and_then(size),
                    rss_bytes: pid.and_then(|p| procstat::status_bytes(p, "VmRSS")),
                });
                if stopped.load(Ordering::Relaxed) {
                    return samples;
                }
            }
        });
        Self { stop, task, every }
    }

    /// Takes a last sample at the next tick and reports.
    pub async fn finish(self) -> SoakReport {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task.await.unwrap_or_default();
        let at_3min = samples
            .iter()
            .min_by(|a, b| {
                let off = |s: &SoakSample| (s.t_s - BASELINE.as_secs_f64()).abs();
                off(a).total_cmp(&off(b))
            })
            .and_then(|s| s.db_bytes);
        let at_end = samples.last().and_then(|s| s.db_bytes);
        SoakReport {
            every_s: self.every.as_secs_f64(),
            db_bytes_at_3min: at_3min,
            db_bytes_at_end: at_end,
            growth_after_3min: match (at_3min, at_end) {
                (Some(base), Some(end)) if base > 0 => Some(end as f64 / base as f64),
                _ => None,
            },
            max_rss_bytes: samples.iter().filter_map(|s| s.rss_bytes).max(),
            samples,
        }
    }
}
