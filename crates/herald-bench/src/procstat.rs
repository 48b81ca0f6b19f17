//! What `/proc` says about a process (Herald, or the bench itself) and the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on every Linux we
/// know of, which is also the fallback).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU time of a process, in clock ticks (`self` or a pid).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of this process's threads, split into (named `thread_name`, all others).
pub fn self_threads_ticks(thread_name: &str) -> Option<(u64, u64)> {
    let mut named = 0;
    let mut other = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        let Some(ticks) = cpu_ticks(&format!("self/task/{tid}")) else {
            continue;
        };
        if comm.trim_end() == thread_name {
            named += ticks;
        } else {
            other += ticks;
        }
    }
    Some((named, other))
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`; the file says kB = KiB).
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    })
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (`echo 5 > clear_refs`).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// A snapshot of CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    pub herald: Option<u64>,
    pub bench: Option<u64>,
    /// The receiver's threads (a part of `bench`).
    pub receiver: Option<u64>,
    pub machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    pub fn take(herald_pid: Option<u32>) -> Self {
        Self {
            herald: herald_pid.and_then(|p| cpu_ticks(&p.to_string())),
            bench: cpu_ticks("self"),
            receiver: self_threads_ticks(crate::receiver::THREAD_NAME).map(|(named, _)| named),
            machine: machine_ticks(),
        }
    }
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuDelta {
    /// Herald's user+system CPU seconds (None when Herald is not ours).
    pub herald_cpu_s: Option<f64>,
    /// The bench's own (load generator + receiver) CPU seconds.
    pub bench_cpu_s: Option<f64>,
    /// Of which the receiver's threads.
    pub receiver_cpu_s: Option<f64>,
    /// Wall time between the snapshots.
    pub wall_s: f64,
    /// Percent of one core: Herald.
    pub herald_cpu_pct: Option<f64>,
    /// Percent of one core: the bench.
    pub bench_cpu_pct: Option<f64>,
    /// Percent of one core: the receiver (part of the bench).
    pub receiver_cpu_pct: Option<f64>,
    /// Percent of all cores busy on the machine (anyone: Herald, bench, neighbours).
    pub machine_busy_pct: Option<f64>,
}

pub fn cpu_delta(a: &CpuSnapshot, b: &CpuSnapshot, wall: Duration, ticks_per_s: f64) -> CpuDelta {
    let wall_s = wall.as_secs_f64();
    let secs =
        |x: Option<u64>, y: Option<u64>| -> Option<f64> { Some(y?.saturating_sub(x?) as f64 / ticks_per_s) };
    let pct = |s: Option<f64>| s.filter(|_| wall_s > 0.0).map(|s| s / wall_s * 100.0);
    let herald_cpu_s = secs(a.herald, b.herald);
    let bench_cpu_s = secs(a.bench, b.bench);
    let receiver_cpu_s = secs(a.receiver, b.receiver);
    let machine_busy_pct = match (a.machine, b.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64 * 100.0)
        }
        _ => None,
    };
    CpuDelta {
        herald_cpu_s,
        bench_cpu_s,
        receiver_cpu_s,
        wall_s,
        herald_cpu_pct: pct(herald_cpu_s),
        bench_cpu_pct: pct(bench_cpu_s),
        receiver_cpu_pct: pct(receiver_cpu_s),
        machine_busy_pct,
    }
}

/// Samples a process's `VmRSS` every 100 ms and keeps the largest value seen.
pub struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Some(rss) = status_bytes(pid, "VmRSS") {
                    m.fetch_max(rss, Ordering::Relaxed);
                }
            }
        });
        Self { max, stop }
    }

    /// The largest sample since the start or the last `take`, and starts over.
    pub fn take(&self) -> u64 {
        self.max.swap(0, Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The machine, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            cpus,
            cpu_model,
            memory_gib,
            kernel,
        }
    }
}
