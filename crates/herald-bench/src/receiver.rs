//! The webhook receiver: a minimal HTTP/1 server answering 204 to every POST on `/w<i>`.
//!
//! For each delivery it notes the arrival time and the publish→delivery latency (`now −
//! data.sent_at_us`). It must stay cheap, since it shares the cores with Herald and the load
//! generator: no logging, a lock-free bitset to tell first deliveries from duplicates, and
//! one short mutex push per first delivery.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use crate::unix_micros;

/// One first delivery of (event, webhook).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Microseconds since the bench's origin instant.
    pub arrival_us: u64,
    /// Receive time − `data.sent_at_us` (wall clock), microseconds.
    pub latency_us: u64,
}

pub struct Recorder {
    origin: Instant,
    events: u64,
    fanout: u64,
    seen: Vec<AtomicU64>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    unparsable: AtomicU64,
    samples: Mutex<Vec<Sample>>,
}

impl Recorder {
    pub fn new(origin: Instant, events: u64, fanout: u64) -> Arc<Self> {
        let bits = events * fanout;
        let words = bits.div_ceil(64) as usize;
        Arc::new(Self {
            origin,
            events,
            fanout,
            seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unparsable: AtomicU64::new(0),
            samples: Mutex::new(Vec::with_capacity(bits as usize)),
        })
    }

    /// First deliveries of an (event, webhook) pair so far.
    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Acquire)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    pub fn unparsable(&self) -> u64 {
        self.unparsable.load(Ordering::Relaxed)
    }

    /// A copy of the samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, path: &str, body: &[u8], now_unix_us: u64, arrival_us: u64) {
        let webhook = path.strip_prefix("/w").and_then(|s| s.parse::<u64>().ok());
        let seq = find_u64(body, b"\"seq\":");
        let sent = find_u64(body, b"\"sent_at_us\":");
        let (Some(webhook), Some(seq), Some(sent)) = (webhook, seq, sent) else {
            self.unparsable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if webhook >= self.fanout || seq >= self.events {
            self.unparsable.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bit = seq * self.fanout + webhook;
        let mask = 1u64 << (bit % 64);
        let prev = self.seen[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
        if prev & mask != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let sample = Sample {
            arrival_us,
            latency_us: now_unix_us.saturating_sub(sent),
        };
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sample);
        self.unique.fetch_add(1, Ordering::Release);
    }
}

/// The unsigned integer after `key` (e.g. `"seq":`) in a JSON text, allowing whitespace.
fn find_u64(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = &rest[start..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

async fn hook(State(rec): State<Arc<Recorder>>, uri: Uri, body: Bytes) -> StatusCode {
    let now = unix_micros();
    let arrival = rec.origin.elapsed().as_micros() as u64;
    rec.record(uri.path(), &body, now, arrival);
    StatusCode::NO_CONTENT
}

/// Name of the receiver's worker threads (so their CPU can be told from the load generator's).
pub const THREAD_NAME: &str = "bench-recv";

/// A running receiver, on its own runtime (two worker threads named [`THREAD_NAME`]);
/// dropping it stops the server.
pub struct Receiver {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    connections: Arc<AtomicU64>,
}

impl Receiver {
    pub fn serve(listener: std::net::TcpListener, rec: Arc<Recorder>) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let app = Router::new().fallback(hook).with_state(rec);
        runtime.spawn(async move {
            let listener = listener.tap_io(move |tcp| {
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            runtime: Some(runtime),
            connections,
        })
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A port nobody listens on, for the backlog run: outside the ephemeral range (so no
/// outgoing connection can take it meanwhile), checked free by binding it once.
pub fn reserve_port(host: &str) -> anyhow::Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12000 {
        let span = u64::from(low - 11000);
        let start = unix_micros() % span;
        for i in 0..span.min(2000) {
            let port = 10000 + ((start + i * 7919) % span) as u16;
            if std::net::TcpListener::bind((host, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let l = std::net::TcpListener::bind((host, 0))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers() {
        let body = br#"{"id":"evt_1","data":{"seq": 42,"sent_at_us":1700000000000001,"pad":"x"}}"#;
        assert_eq!(find_u64(body, b"\"seq\":"), Some(42));
        assert_eq!(find_u64(body, b"\"sent_at_us\":"), Some(1_700_000_000_000_001));
        assert_eq!(find_u64(body, b"\"nope\":"), None);
    }

    #[test]
    fn counts_duplicates_once() {
        let rec = Recorder::new(Instant::now(), 10, 2);
        let body = br#"{"data":{"seq":3,"sent_at_us":5}}"#;
        rec.record("/w1", body, 10, 1);
        rec.record("/w1", body, 11, 2);
        rec.record("/w0", body, 12, 3);
        rec.record("/w2", body, 12, 3);
        assert_eq!(rec.unique(), 2);
        assert_eq!(rec.duplicates(), 1);
        assert_eq!(rec.unparsable(), 1);
        assert_eq!(rec.samples()[0].latency_us, 5);
    }
}
