//! The figures of one run, as a table or one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

use crate::procstat::{CpuDelta, Machine};

#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: &'static str,
    /// False when something was missing or failed; the process then exits with status 1.
    pub ok: bool,
    pub errors: Vec<String>,
    pub date_utc: String,
    pub machine: Machine,
    pub target: TargetInfo,
    pub params: Params,
    pub publish: PublishReport,
    pub delivery: DeliveryReport,
    /// `backlog` only.
    pub drain: Option<DrainReport>,
    /// `soak` only.
    pub soak: Option<crate::soak::SoakReport>,
    /// None when the bench did not start Herald (`--url`).
    pub herald: Option<HeraldReport>,
    /// CPU over the measured run: from the first publish to the last delivery.
    pub cpu: CpuDelta,
}

#[derive(Debug, Serialize)]
pub struct TargetInfo {
    /// `started` (by the bench) or `external` (`--url`).
    pub mode: &'static str,
    pub url: String,
    pub herald_bin: Option<String>,
    pub herald_version: Option<String>,
    pub database: String,
    /// Environment set on the started Herald besides HERALD_LISTEN/DATABASE_URL/MASTER_KEY.
    pub herald_env: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Params {
    pub events: u64,
    /// Closed-loop publishes in flight (`throughput`, `fanout`, `backlog`).
    pub concurrency: Option<u64>,
    /// `batch`: events per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    pub fanout: u64,
    /// Publish request body, bytes.
    pub body_bytes: usize,
    /// `latency`: target events per second and seconds.
    pub rate: Option<f64>,
    pub duration_s: Option<f64>,
    pub stall_timeout_s: u64,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; sorts `v`.
    pub fn of(v: &mut [u64]) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let n = v.len();
        let at = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Self {
            count: n as u64,
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: v[n - 1],
            mean_us: v.iter().sum::<u64>() as f64 / n as f64,
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, n={})",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us),
            ms(self.mean_us as u64),
            self.count
        )
    }
}

#[derive(Debug, Serialize)]
pub struct PublishReport {
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// First request sent → last answer received.
    pub duration_s: f64,
    /// Accepted events per second over `duration_s` (ingest rate; the achieved rate for `latency`).
    pub events_per_s: f64,
    /// `POST /v1/events` request → 202.
    pub request_latency: Option<Percentiles>,
    /// `latency` only: the latest a send started after its scheduled time, ms.
    pub max_schedule_lag_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DeliveryReport {
    /// accepted events × fan-out.
    pub expected: u64,
    /// Distinct (event, webhook) deliveries received.
    pub delivered: u64,
    pub missing: u64,
    /// Repeated deliveries of an (event, webhook) already received (at-least-once).
    pub duplicates: u64,
    /// Requests the receiver could not attribute (unknown path or body).
    pub unparsable: u64,
    /// TCP connections Herald opened to the receiver.
    pub receiver_connections: u64,
    /// First publish sent → last delivery received.
    pub duration_s: f64,
    /// End to end: `delivered / duration_s`.
    pub deliveries_per_s: f64,
    /// Publish sent (`data.sent_at_us`) → delivery received, first deliveries only.
    pub latency: Option<Percentiles>,
}

#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// Receiver listening → last delivery received.
    pub duration_s: f64,
    pub deliveries_per_s: f64,
    /// Herald's peak RSS during the drain (VmHWM, reset when the receiver came up), bytes.
    pub herald_peak_rss_bytes: Option<u64>,
    /// Largest VmRSS sampled (every 100 ms) during the drain, bytes.
    pub herald_max_sampled_rss_bytes: Option<u64>,
    /// Largest VmRSS sampled while publishing with the receiver down, bytes.
    pub publish_phase_max_sampled_rss_bytes: Option<u64>,
    /// Herald CPU seconds during the drain.
    pub herald_cpu_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct HeraldReport {
    pub pid: u32,
    /// VmHWM at the end of the run: the process's peak RSS since it started, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Largest VmRSS sampled every 100 ms during the run, bytes.
    pub max_sampled_rss_bytes: Option<u64>,
    /// User + system CPU seconds over the measured run.
    pub cpu_s: Option<f64>,
    /// `cpu_s` as a percent of one core over the run's wall time.
    pub cpu_pct: Option<f64>,
}

pub fn ms(us: u64) -> String {
    let m = us as f64 / 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 1000.0 {
        format!("{m:.1} ms")
    } else {
        format!("{:.2} s", m / 1000.0)
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// 12345.6 → "12,346".
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map_or_else(|| "n/a".to_owned(), f)
}

impl Report {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let p = &self.params;
        let _ = writeln!(s, "herald-bench {}    {}", self.workload, self.date_utc);
        let m = &self.machine;
        let _ = writeln!(
            s,
            "  machine     {} cores, {}, {:.1} GiB RAM, Linux {}",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel
        );
        let t = &self.target;
        match t.mode {
            "started" => {
                let _ = writeln!(
                    s,
                    "  target      {} started by the bench: {} serve --dev, at {}",
                    t.herald_version.as_deref().unwrap_or("herald"),
                    t.herald_bin.as_deref().unwrap_or("?"),
                    t.url
                );
            }
            _ => {
                let _ = writeln!(s, "  target      running Herald at {} (--url)", t.url);
            }
        }
        let _ = writeln!(s, "  database    {}", t.database);
        if !t.herald_env.is_empty() {
            let _ = writeln!(s, "  herald env  {}", t.herald_env.join(" "));
        }
        let mut params = format!("{} events", p.events);
        match (p.concurrency, p.batch_size) {
            (Some(c), Some(b)) => {
                let _ = write!(params, " in batches of {b}, {c} batch requests in flight");
            }
            (Some(c), None) => {
                let _ = write!(params, ", {c} publishes in flight");
            }
            _ => {}
        }
        if let (Some(r), Some(d)) = (p.rate, p.duration_s) {
            let _ = write!(params, ", open loop at {r} events/s for {d} s");
        }
        let _ = write!(
            params,
            ", fan-out {} (webhooks on order.*), publish body {} B, stall timeout {} s",
            p.fanout, p.body_bytes, p.stall_timeout_s
        );
        let _ = writeln!(s, "  parameters  {params}");
        let _ = writeln!(s);

        let pb = &self.publish;
        let label = if p.rate.is_some() {
            "achieved rate"
        } else {
            "ingest"
        };
        let _ = writeln!(
            s,
            "  publish     {}/{} accepted, {} errors, in {:.2} s  →  {label} {} events/s",
            pb.accepted,
            pb.sent,
            pb.errors,
            pb.duration_s,
            thousands(pb.events_per_s)
        );
        if let Some(l) = &pb.request_latency {
            let route = if p.batch_size.is_some() {
                "POST /v1/events/batch"
            } else {
                "POST /v1/events"
            };
            let _ = writeln!(s, "              {route} → 202: {}", l.line());
        }
        if let Some(lag) = pb.max_schedule_lag_ms {
            let _ = writeln!(s, "              max send lag behind schedule: {lag:.2} ms");
        }
        if let Some(e) = &pb.first_error {
            let _ = writeln!(s, "              first error: {e}");
        }
        let d = &self.delivery;
        let _ = writeln!(
            s,
            "  delivery    {}/{} delivered ({} missing, {} duplicates, {} unparsable), first publish → last delivery {:.2} s  →  {} deliveries/s end to end",
            d.delivered,
            d.expected,
            d.missing,
            d.duplicates,
            d.unparsable,
            d.duration_s,
            thousands(d.deliveries_per_s)
        );
        if let Some(l) = &d.latency {
            let _ = writeln!(s, "              publish → delivery: {}", l.line());
        }
        if let Some(dr) = &self.drain {
            let _ = writeln!(
                s,
                "  drain       receiver up → last delivery {:.2} s  →  {} deliveries/s; Herald peak RSS {} (VmHWM reset at receiver up), max sampled {}; CPU {}",
                dr.duration_s,
                thousands(dr.deliveries_per_s),
                opt(dr.herald_peak_rss_bytes, mb),
                opt(dr.herald_max_sampled_rss_bytes, mb),
                opt(dr.herald_cpu_s, |c| format!("{c:.2} s"))
            );
            let _ = writeln!(
                s,
                "              while publishing (receiver down): max sampled RSS {}",
                opt(dr.publish_phase_max_sampled_rss_bytes, mb)
            );
        }
        if let Some(soak) = &self.soak {
            let _ = writeln!(
                s,
                "  soak        herald.db {} at 3 min, {} at the end ({} the 3-minute size); max sampled RSS {}",
                opt(soak.db_bytes_at_3min, mb),
                opt(soak.db_bytes_at_end, mb),
                opt(soak.growth_after_3min, |g| format!("{g:.2} ×")),
                opt(soak.max_rss_bytes, mb)
            );
            for sample in &soak.samples {
                let _ = writeln!(
                    s,
                    "              {:>6.0} s  db {:>10}  wal {:>10}  rss {:>10}",
                    sample.t_s,
                    opt(sample.db_bytes, mb),
                    opt(sample.wal_bytes, mb),
                    opt(sample.rss_bytes, mb)
                );
            }
        }
        let c = &self.cpu;
        if let Some(h) = &self.herald {
            let _ = writeln!(
                s,
                "  herald      pid {}: peak RSS {} (VmHWM), max sampled VmRSS {}; CPU {} = {} of one core over {:.2} s",
                h.pid,
                opt(h.peak_rss_bytes, mb),
                opt(h.max_sampled_rss_bytes, mb),
                opt(h.cpu_s, |c| format!("{c:.2} s")),
                opt(h.cpu_pct, |c| format!("{c:.0} %")),
                c.wall_s
            );
        } else {
            let _ = writeln!(
                s,
                "  herald      not started by the bench: RSS and CPU not measured"
            );
        }
        let _ = writeln!(
            s,
            "  bench       CPU {} = {} of one core, of which receiver {} = {} (load generator + receiver, same run; {} receiver connections)",
            opt(c.bench_cpu_s, |c| format!("{c:.2} s")),
            opt(c.bench_cpu_pct, |c| format!("{c:.0} %")),
            opt(c.receiver_cpu_s, |c| format!("{c:.2} s")),
            opt(c.receiver_cpu_pct, |c| format!("{c:.0} %")),
            self.delivery.receiver_connections
        );
        let _ = writeln!(
            s,
            "  machine     {} of all {} cores busy during the run (anyone's)",
            opt(c.machine_busy_pct, |c| format!("{c:.0} %")),
            m.cpus
        );
        if self.ok {
            let _ = writeln!(s, "  result      OK");
        } else {
            for e in &self.errors {
                let _ = writeln!(s, "  ERROR       {e}");
            }
        }
        s
    }
}

/// RFC 3339 UTC of a unix time in seconds.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_614_265_330), "2021-02-25T15:02:10Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::of(&mut v).expect("non-empty");
        assert_eq!((p.p50_us, p.p90_us, p.p99_us, p.max_us), (50, 90, 99, 100));
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
