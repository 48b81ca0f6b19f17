//! `herald-bench`: measures Herald end to end — publish through the API, receive the
//! deliveries on a local receiver, report rates, latencies, Herald's RSS and CPU.
//! See docs/PERFORMANCE.md.

mod dashboard;
mod load;
mod procstat;
mod receiver;
mod report;
mod soak;
mod target;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::load::Publisher;
use crate::procstat::{CpuSnapshot, Machine, RssSampler};
use crate::receiver::{Receiver, Recorder};
use crate::report::{
    DeliveryReport, DrainReport, HeraldReport, Params, Percentiles, PublishReport, Report, TargetInfo,
};
use crate::target::Target;

/// The retry schedule given to a Herald started for `backlog`, so that the deliveries that
/// failed while the receiver was down come back within a second once it is up.
const BACKLOG_RETRY_SCHEDULE: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";

#[derive(Parser)]
#[command(
    name = "herald-bench",
    version,
    about = "Benchmark Herald end to end: publish events, receive the deliveries, report rates, latencies, RSS and CPU.",
    long_about = "Benchmark Herald end to end: publish events through POST /v1/events, receive the deliveries \
on a local receiver, and report rates, latencies, Herald's RSS and CPU.\n\n\
By default it starts `herald serve --dev` itself (the `herald` binary next to this executable: \
build both with `cargo build --release -p herald -p herald-bench`) in a fresh temp dir with an \
embedded SQLite database. \
See docs/PERFORMANCE.md."
)]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// N events, C publishes in flight, fan-out F: ingest and end-to-end rates, latency, RSS, CPU.
    Throughput(ClosedArgs),
    /// `throughput` with fan-out 10 by default.
    Fanout(FanoutArgs),
    /// `throughput` through `POST /v1/events/batch`: B events per request, C requests in flight.
    Batch(BatchArgs),
    /// Open loop: a fixed publish rate for a while; publish→delivery latency.
    Latency(LatencyArgs),
    /// Publish N events while the receiver is down, then bring it up and time the drain.
    Backlog(BacklogArgs),
    /// Open loop for a long while with a short retention: the database file's size and
    /// Herald's RSS sampled as the oldest data ages past it and is purged.
    Soak(SoakArgs),
    /// The dashboard's pages timed over a large embedded database: a day of deliveries written
    /// straight into the file, then each page fetched signed in (median of --runs).
    Dashboard(DashboardArgs),
    /// The instrument alone, no Herald: the load generator posts delivery-like requests straight
    /// to the receiver, to show how many requests per second the bench itself can drive.
    Selftest(SelftestArgs),
}

#[derive(Args)]
struct DashboardArgs {
    /// Deliveries to write, spread over the last 24 hours (one attempt each).
    #[arg(long, default_value_t = 10_000_000)]
    deliveries: u64,
    /// Webhooks; each event goes to every one of them.
    #[arg(long, default_value_t = 10)]
    fanout: u64,
    /// Times each page is fetched; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The target for every page's median, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    target_ms: f64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct SelftestArgs {
    /// Requests to send.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 300)]
    body_bytes: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ClosedArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Publish requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Webhooks subscribed to every event (receiver paths /w0 … /w<F-1>).
    #[arg(long, default_value_t = 1)]
    fanout: u64,
    /// Make every webhook FIFO (`ordering: "fifo"`): one delivery in flight to each, so the
    /// end-to-end rate is what one in-order line sustains (docs/PERFORMANCE.md).
    #[arg(long)]
    fifo: bool,
    /// Give the published type a JSON Schema (a catalog file for the started Herald), so
    /// every publish is validated: the cost of schemas, against a run without.
    #[arg(long)]
    schema: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct FanoutArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Publish requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Webhooks subscribed to every event.
    #[arg(long, default_value_t = 10)]
    fanout: u64,
    /// Give each webhook a filter of five conditions that every event matches: the cost of
    /// matching at publish, against the same run without (docs/PERFORMANCE.md).
    #[arg(long)]
    filters: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct BatchArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per batch request (1 to 1,000).
    #[arg(long, default_value_t = 100)]
    batch_size: u64,
    /// Batch requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
    /// Webhooks subscribed to every event.
    #[arg(long, default_value_t = 1)]
    fanout: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct LatencyArgs {
    /// Events per second, sent at fixed intervals whether or not earlier ones finished.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Webhooks subscribed to every event.
    #[arg(long, default_value_t = 1)]
    fanout: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct BacklogArgs {
    /// Events to publish while the receiver is down.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Publish requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Webhooks subscribed to every event (backlog = events × fan-out deliveries).
    #[arg(long, default_value_t = 1)]
    fanout: u64,
    /// HERALD_RETRY_SCHEDULE for the started Herald (a --herald-env HERALD_RETRY_SCHEDULE=… wins).
    #[arg(long, default_value = BACKLOG_RETRY_SCHEDULE)]
    retry_schedule: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct SoakArgs {
    /// Events per second, sent at fixed intervals.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// HERALD_RETENTION for the started Herald (a --herald-env HERALD_RETENTION=… wins).
    #[arg(long, default_value = "60s")]
    retention: String,
    /// Seconds between two samples of the database's size and Herald's RSS.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// The herald binary to start [default: `herald` next to this executable, e.g. target/release/herald].
    #[arg(long, value_name = "PATH")]
    herald_bin: Option<PathBuf>,
    /// HERALD_DATABASE_URL of the started Herald [default: embedded SQLite in its temp dir];
    /// with postgres://… a random HERALD_MASTER_KEY is set too. Use an empty database.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Extra environment for the started Herald, repeatable (e.g. --herald-env HERALD_LOG=warn).
    #[arg(long, value_name = "KEY=VALUE")]
    herald_env: Vec<String>,
    /// Target a running Herald (http://HOST:PORT) instead of starting one; RSS/CPU are then not reported.
    #[arg(long, value_name = "URL", requires = "key", conflicts_with_all = ["herald_bin", "database_url", "herald_env"])]
    url: Option<String>,
    /// API key (key_…:…) for --url, or for a started Herald whose database is not empty.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Address the receiver listens on, also used in the webhook URLs.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    receiver_host: String,
    /// Size of each publish request body in bytes (the event's data is padded to reach it).
    #[arg(long, value_name = "BYTES", default_value_t = 300)]
    body_bytes: usize,
    /// Fail when no new delivery has arrived for this many seconds while some are missing.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    stall_timeout: u64,
    /// Print one JSON object with every figure instead of the table.
    #[arg(long)]
    json: bool,
}

/// Microseconds since the Unix epoch (wall clock, shared by the publisher and the receiver).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What one workload asks of the run.
struct Plan {
    name: &'static str,
    events: u64,
    fanout: u64,
    /// Events per publish request (1: `POST /v1/events`).
    batch: u64,
    controls: load::Controls,
    mode: Mode,
    /// Run with [`load::BENCH_CATALOG`]: the published type has a schema.
    schema: bool,
    common: CommonArgs,
}

enum Mode {
    Closed {
        concurrency: u64,
    },
    Open {
        rate: f64,
        duration: f64,
    },
    Backlog {
        concurrency: u64,
        retry_schedule: String,
    },
    /// `Open`, sampling the database and RSS every `every`.
    Soak {
        rate: f64,
        duration: f64,
        retention: String,
        every: Duration,
    },
}

impl Plan {
    fn from_cli(w: Workload) -> anyhow::Result<Self> {
        let plan = match w {
            Workload::Throughput(a) => Self {
                name: "throughput",
                events: a.events,
                fanout: a.fanout,
                batch: 1,
                controls: load::Controls {
                    filters: false,
                    fifo: a.fifo,
                },
                mode: Mode::Closed {
                    concurrency: a.concurrency,
                },
                schema: a.schema,
                common: a.common,
            },
            Workload::Fanout(a) => Self {
                name: "fanout",
                events: a.events,
                fanout: a.fanout,
                batch: 1,
                controls: load::Controls {
                    filters: a.filters,
                    fifo: false,
                },
                mode: Mode::Closed {
                    concurrency: a.concurrency,
                },
                schema: false,
                common: a.common,
            },
            Workload::Latency(a) => {
                anyhow::ensure!(
                    a.rate > 0.0 && a.duration > 0.0,
                    "--rate and --duration must be positive"
                );
                Self {
                    name: "latency",
                    events: (a.rate * a.duration).round().max(1.0) as u64,
                    fanout: a.fanout,
                    batch: 1,
                    controls: load::Controls::default(),
                    mode: Mode::Open {
                        rate: a.rate,
                        duration: a.duration,
                    },
                    schema: false,
                    common: a.common,
                }
            }
            Workload::Batch(a) => {
                anyhow::ensure!(
                    (1..=1000).contains(&a.batch_size),
                    "--batch-size must be 1 to 1000"
                );
                Self {
                    name: "batch",
                    events: a.events,
                    fanout: a.fanout,
                    batch: a.batch_size,
                    controls: load::Controls::default(),
                    mode: Mode::Closed {
                        concurrency: a.concurrency,
                    },
                    schema: false,
                    common: a.common,
                }
            }
            Workload::Backlog(a) => Self {
                name: "backlog",
                events: a.events,
                fanout: a.fanout,
                batch: 1,
                controls: load::Controls::default(),
                mode: Mode::Backlog {
                    concurrency: a.concurrency,
                    retry_schedule: a.retry_schedule,
                },
                schema: false,
                common: a.common,
            },
            Workload::Soak(a) => {
                anyhow::ensure!(
                    a.rate > 0.0 && a.duration > 0.0 && a.sample_every > 0,
                    "--rate, --duration and --sample-every must be positive"
                );
                Self {
                    name: "soak",
                    events: (a.rate * a.duration).round().max(1.0) as u64,
                    fanout: 1,
                    batch: 1,
                    controls: load::Controls::default(),
                    mode: Mode::Soak {
                        rate: a.rate,
                        duration: a.duration,
                        retention: a.retention,
                        every: Duration::from_secs(a.sample_every),
                    },
                    schema: false,
                    common: a.common,
                }
            }
            Workload::Selftest(_) | Workload::Dashboard(_) => {
                anyhow::bail!("not a delivery workload")
            }
        };
        anyhow::ensure!(
            plan.events > 0 && plan.fanout > 0,
            "--events and --fanout must be at least 1"
        );
        if let Mode::Closed { concurrency } | Mode::Backlog { concurrency, .. } = &plan.mode {
            anyhow::ensure!(*concurrency > 0, "--concurrency must be at least 1");
        }
        Ok(plan)
    }

    fn concurrency(&self) -> Option<u64> {
        match &self.mode {
            Mode::Closed { concurrency } | Mode::Backlog { concurrency, .. } => Some(*concurrency),
            Mode::Open { .. } | Mode::Soak { .. } => None,
        }
    }

    /// The open loop's rate and length, if it is one.
    fn open(&self) -> Option<(f64, f64)> {
        match &self.mode {
            Mode::Open { rate, duration } | Mode::Soak { rate, duration, .. } => Some((*rate, *duration)),
            _ => None,
        }
    }

    /// Environment the bench itself gives a started Herald.
    fn herald_env(&self) -> Vec<(&'static str, String)> {
        match &self.mode {
            Mode::Backlog { retry_schedule, .. } => {
                vec![("HERALD_RETRY_SCHEDULE", retry_schedule.clone())]
            }
            Mode::Soak { retention, .. } => vec![("HERALD_RETENTION", retention.clone())],
            _ => Vec::new(),
        }
    }
}

/// A `\r`-updated progress line on stderr (only when stderr is a terminal), 5 times a second.
struct Progress {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(
        name: &'static str,
        publisher: Arc<Publisher>,
        rec: Arc<Recorder>,
        events: u64,
        expected: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, task: None };
        }
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let published = publisher.done.load(Ordering::Relaxed);
                let delivered = rec.unique();
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[K{name}: published {published}/{events}, delivered {delivered}/{expected}"
                );
                let _ = err.flush();
            }
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// Waits until `expected` distinct deliveries arrived, or none arrived for `stall`.
async fn wait_for_deliveries(rec: &Recorder, expected: u64, stall: Duration) -> bool {
    let mut last = rec.unique();
    let mut last_change = Instant::now();
    loop {
        let now = rec.unique();
        if now >= expected {
            return true;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= stall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Binds the receiver's port, retrying for a few seconds (the backlog port was only reserved).
async fn bind_retry(host: &str, port: u16) -> anyhow::Result<std::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpListener::bind((host, port)) {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("binding the receiver on {host}:{port}")),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

async fn run(plan: Plan) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pool = plan.concurrency().unwrap_or(256) as usize + 64;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;

    let mut extra_env = plan.herald_env();
    // Kept until the run ends: the started Herald reads it at start.
    let catalog = if plan.schema {
        anyhow::ensure!(
            plan.common.url.is_none(),
            "--schema gives the Herald it starts a catalog file; it cannot change one at --url"
        );
        let mut file = tempfile::Builder::new()
            .prefix("herald-bench-catalog-")
            .suffix(".toml")
            .tempfile()
            .context("creating the catalog file")?;
        file.write_all(load::BENCH_CATALOG.as_bytes())
            .context("writing the catalog file")?;
        extra_env.push(("HERALD_CATALOG", file.path().display().to_string()));
        Some(file)
    } else {
        None
    };
    let mut target = Target::open(&plan.common, &extra_env, &client).await?;
    let result = measure(&plan, &target, client).await;
    target.stop().await;
    let mut report = result?;
    report.target = target_info(&plan, &target, &extra_env);
    drop(catalog);
    Ok(report)
}

fn target_info(plan: &Plan, target: &Target, extra_env: &[(&str, String)]) -> TargetInfo {
    let c = &plan.common;
    let started = target.child.as_ref();
    let mut herald_env: Vec<String> = extra_env
        .iter()
        .filter(|(k, _)| !c.herald_env.iter().any(|kv| kv.starts_with(&format!("{k}="))))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    herald_env.extend(c.herald_env.iter().cloned());
    TargetInfo {
        mode: if started.is_some() { "started" } else { "external" },
        url: target.base_url.clone(),
        herald_bin: started.map(|s| s.bin.display().to_string()),
        herald_version: started.map(|s| s.version.clone()),
        database: match (&c.url, &c.database_url) {
            (Some(_), _) => "unknown (running Herald)".into(),
            (None, Some(db)) => redact(db),
            (None, None) => "embedded SQLite in a fresh temp dir".into(),
        },
        herald_env: if started.is_some() { herald_env } else { Vec::new() },
    }
}

async fn measure(plan: &Plan, target: &Target, client: reqwest::Client) -> anyhow::Result<Report> {
    let c = &plan.common;
    let origin = Instant::now();
    let ticks = procstat::clock_ticks();
    let recorder = Recorder::new(origin, plan.events, plan.fanout);
    let backlog = matches!(plan.mode, Mode::Backlog { .. });

    // The receiver: up now, or (backlog) only a reserved port nobody listens on yet.
    let (mut receiver, receiver_addr) = if backlog {
        let port = receiver::reserve_port(&c.receiver_host)?;
        (None, format!("{}:{port}", c.receiver_host))
    } else {
        let listener =
            std::net::TcpListener::bind((c.receiver_host.as_str(), 0)).context("binding the receiver")?;
        let r = Receiver::serve(listener, recorder.clone())?;
        let addr = r.addr.to_string();
        (Some(r), addr)
    };

    let publisher = Arc::new(
        Publisher::new(client, &target.base_url, &target.key, c.body_bytes)?.with_batches(plan.batch),
    );
    let webhook_ids = publisher
        .create_webhooks(&receiver_addr, plan.fanout, plan.controls)
        .await?;

    let pid = target.pid();
    let sampler = pid.map(RssSampler::start);
    let progress = Progress::start(
        plan.name,
        publisher.clone(),
        recorder.clone(),
        plan.events,
        plan.events * plan.fanout,
    );

    let cpu0 = CpuSnapshot::take(pid);
    let t0 = Instant::now();
    let soak = match &plan.mode {
        Mode::Soak { every, .. } => Some(soak::Sampler::start(target.database_file(), pid, *every)),
        _ => None,
    };
    let stats = match &plan.mode {
        Mode::Closed { concurrency } | Mode::Backlog { concurrency, .. } => {
            publisher.closed_loop(plan.events, *concurrency, origin).await
        }
        Mode::Open { rate, .. } | Mode::Soak { rate, .. } => {
            publisher.open_loop(plan.events, *rate, origin).await
        }
    };

    // Backlog: bring the receiver up on the reserved port now.
    let mut drain_start = None;
    let mut hwm_before_drain = None;
    if backlog {
        let publish_rss = sampler.as_ref().map(RssSampler::take);
        hwm_before_drain = pid.and_then(|p| procstat::status_bytes(p, "VmHWM"));
        let hwm_reset = pid.is_some_and(procstat::reset_peak_rss);
        let cpu_up = CpuSnapshot::take(pid);
        let listener = bind_retry(&c.receiver_host, receiver_addr_port(&receiver_addr)?).await?;
        receiver = Some(Receiver::serve(listener, recorder.clone())?);
        drain_start = Some((
            origin.elapsed().as_micros() as u64,
            publish_rss,
            hwm_reset,
            cpu_up,
        ));
    }

    let expected = stats.accepted * plan.fanout;
    let complete = wait_for_deliveries(&recorder, expected, Duration::from_secs(c.stall_timeout)).await;
    let cpu1 = CpuSnapshot::take(pid);
    let wall = t0.elapsed();
    progress.finish().await;
    let soak = match soak {
        Some(sampler) => Some(sampler.finish().await),
        None => None,
    };

    // VmHWM now: the peak since Herald started, or (backlog) since the receiver came up.
    let hwm_end = pid.and_then(|p| procstat::status_bytes(p, "VmHWM"));
    let sampled_rss = sampler.as_ref().map(RssSampler::take);
    drop(sampler);
    publisher.delete_webhooks(&webhook_ids).await;
    let receiver_connections = receiver.as_ref().map_or(0, Receiver::connections);
    drop(receiver);

    // Figures.
    let samples = recorder.samples();
    let delivered = samples.len() as u64;
    let last_arrival = samples.iter().map(|s| s.arrival_us).max().unwrap_or(0);
    let mut latencies: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
    drop(samples);
    let first_send = if stats.start_us == u64::MAX {
        0
    } else {
        stats.start_us
    };
    let e2e_s = last_arrival.saturating_sub(first_send) as f64 / 1e6;
    let publish_s = stats.end_us.saturating_sub(first_send) as f64 / 1e6;
    let mut pub_lat = stats.latencies_us.clone();
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };

    let cpu = procstat::cpu_delta(&cpu0, &cpu1, wall, ticks);
    let drain = drain_start.map(|(up_us, publish_rss, hwm_reset, cpu_up)| {
        let secs = last_arrival.saturating_sub(up_us) as f64 / 1e6;
        let drain_cpu = procstat::cpu_delta(&cpu_up, &cpu1, wall, ticks);
        DrainReport {
            duration_s: secs,
            deliveries_per_s: rate(delivered, secs),
            herald_peak_rss_bytes: if hwm_reset { hwm_end } else { None },
            herald_max_sampled_rss_bytes: sampled_rss,
            publish_phase_max_sampled_rss_bytes: publish_rss,
            herald_cpu_s: drain_cpu.herald_cpu_s,
        }
    });

    let mut errors = Vec::new();
    if stats.errors > 0 {
        errors.push(format!(
            "{} of {} publishes failed; first: {}",
            stats.errors,
            stats.sent,
            stats.first_error.as_deref().unwrap_or("?")
        ));
    }
    let missing = expected.saturating_sub(delivered);
    if !complete || missing > 0 {
        errors.push(format!(
            "{missing} of {expected} deliveries missing (none arrived for {} s)",
            c.stall_timeout
        ));
    }
    if recorder.unparsable() > 0 {
        errors.push(format!(
            "{} requests reached the receiver that it could not attribute",
            recorder.unparsable()
        ));
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Report {
        workload: plan.name,
        ok: errors.is_empty(),
        errors,
        date_utc: report::rfc3339(now),
        machine: Machine::detect(),
        target: TargetInfo {
            mode: "",
            url: String::new(),
            herald_bin: None,
            herald_version: None,
            database: String::new(),
            herald_env: Vec::new(),
        },
        params: Params {
            events: plan.events,
            concurrency: plan.concurrency(),
            batch_size: (plan.batch > 1).then_some(plan.batch),
            fanout: plan.fanout,
            body_bytes: c.body_bytes,
            rate: plan.open().map(|(rate, _)| rate),
            duration_s: plan.open().map(|(_, duration)| duration),
            stall_timeout_s: c.stall_timeout,
        },
        publish: PublishReport {
            sent: stats.sent,
            accepted: stats.accepted,
            errors: stats.errors,
            first_error: stats.first_error.clone(),
            duration_s: publish_s,
            events_per_s: rate(stats.accepted, publish_s),
            request_latency: Percentiles::of(&mut pub_lat),
            max_schedule_lag_ms: plan.open().map(|_| stats.max_schedule_lag_us as f64 / 1000.0),
        },
        delivery: DeliveryReport {
            expected,
            delivered,
            missing,
            duplicates: recorder.duplicates(),
            unparsable: recorder.unparsable(),
            receiver_connections,
            duration_s: e2e_s,
            deliveries_per_s: rate(delivered, e2e_s),
            latency: Percentiles::of(&mut latencies),
        },
        drain,
        soak,
        herald: pid.map(|pid| HeraldReport {
            pid,
            peak_rss_bytes: hwm_end.max(hwm_before_drain),
            max_sampled_rss_bytes: sampled_rss.max(drain_start.and_then(|d| d.1)),
            cpu_s: cpu.herald_cpu_s,
            cpu_pct: cpu.herald_cpu_pct,
        }),
        cpu,
    })
}

fn receiver_addr_port(addr: &str) -> anyhow::Result<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .context("bad receiver address")
}

#[derive(serde::Serialize)]
struct SelftestReport {
    workload: &'static str,
    ok: bool,
    date_utc: String,
    machine: Machine,
    requests: u64,
    concurrency: u64,
    body_bytes: usize,
    received: u64,
    errors: u64,
    first_error: Option<String>,
    duration_s: f64,
    requests_per_s: f64,
    request_latency: Option<Percentiles>,
    cpu: procstat::CpuDelta,
}

/// Publisher → receiver directly: the bench's own ceiling (each request costs it one send and
/// one receive, which is what one delivery of one event costs it in `throughput`).
async fn selftest(a: &SelftestArgs) -> anyhow::Result<SelftestReport> {
    anyhow::ensure!(
        a.requests > 0 && a.concurrency > 0,
        "--requests and --concurrency must be at least 1"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency as usize + 64)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let origin = Instant::now();
    let recorder = Recorder::new(origin, a.requests, 1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let receiver = Receiver::serve(listener, recorder.clone())?;
    let base = format!("http://{}", receiver.addr);
    let publisher = Arc::new(
        Publisher::new(client, &base, "key_selftest:x", a.body_bytes)?.with_events_url(format!("{base}/w0")),
    );
    let cpu0 = CpuSnapshot::take(None);
    let t0 = Instant::now();
    let stats = publisher.closed_loop(a.requests, a.concurrency, origin).await;
    let cpu = procstat::cpu_delta(
        &cpu0,
        &CpuSnapshot::take(None),
        t0.elapsed(),
        procstat::clock_ticks(),
    );
    drop(receiver);
    let duration_s = stats.end_us.saturating_sub(stats.start_us.min(stats.end_us)) as f64 / 1e6;
    let mut lat = stats.latencies_us.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(SelftestReport {
        workload: "selftest",
        ok: stats.errors == 0 && recorder.unique() == a.requests,
        date_utc: report::rfc3339(now),
        machine: Machine::detect(),
        requests: a.requests,
        concurrency: a.concurrency,
        body_bytes: a.body_bytes,
        received: recorder.unique(),
        errors: stats.errors,
        first_error: stats.first_error.clone(),
        duration_s,
        requests_per_s: if duration_s > 0.0 {
            stats.accepted as f64 / duration_s
        } else {
            0.0
        },
        request_latency: Percentiles::of(&mut lat),
        cpu,
    })
}

fn print_selftest(r: &SelftestReport) {
    println!("herald-bench selftest    {}", r.date_utc);
    println!(
        "  machine     {} cores, {}, {:.1} GiB RAM, Linux {}",
        r.machine.cpus, r.machine.cpu_model, r.machine.memory_gib, r.machine.kernel
    );
    println!(
        "  parameters  {} requests, {} in flight, body {} B, load generator → receiver directly (no Herald)",
        r.requests, r.concurrency, r.body_bytes
    );
    println!(
        "  requests    {}/{} received, {} errors, in {:.2} s  →  {} requests/s",
        r.received,
        r.requests,
        r.errors,
        r.duration_s,
        report::thousands(r.requests_per_s)
    );
    if let Some(l) = &r.request_latency {
        println!(
            "              p50 {}  p99 {}  max {}",
            report::ms(l.p50_us),
            report::ms(l.p99_us),
            report::ms(l.max_us)
        );
    }
    println!(
        "  bench       CPU {:.2} s = {:.0} % of one core, of which receiver {:.2} s; machine {:.0} % of all cores busy",
        r.cpu.bench_cpu_s.unwrap_or(0.0),
        r.cpu.bench_cpu_pct.unwrap_or(0.0),
        r.cpu.receiver_cpu_s.unwrap_or(0.0),
        r.cpu.machine_busy_pct.unwrap_or(0.0)
    );
    if let Some(e) = &r.first_error {
        println!("  ERROR       first error: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The load generator's runtime; the receiver has its own (see receiver.rs).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-load")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_cli(cli))
}

/// Prints a finished workload, as JSON or as its table, and says how the process exits.
fn finish<R: serde::Serialize>(
    result: anyhow::Result<R>,
    json: bool,
    ok: impl Fn(&R) -> bool,
    table: impl Fn(&R),
) -> ExitCode {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("herald-bench: {e}"),
        }
    } else {
        table(&report);
    }
    if ok(&report) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_cli(cli: Cli) -> ExitCode {
    if let Workload::Selftest(a) = &cli.workload {
        return finish(selftest(a).await, a.json, |r| r.ok, print_selftest);
    }
    if let Workload::Dashboard(a) = &cli.workload {
        let params = dashboard::Params {
            deliveries: a.deliveries,
            fanout: a.fanout,
            runs: a.runs,
            target_ms: a.target_ms,
        };
        return finish(
            dashboard::run(&a.common, &params).await,
            a.common.json,
            |r| r.ok,
            |r| print!("{}", r.table()),
        );
    }
    let plan = match Plan::from_cli(cli.workload) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let json = plan.common.json;
    finish(run(plan).await, json, |r| r.ok, |r| print!("{}", r.table()))
}
