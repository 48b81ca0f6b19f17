//! The load generator: publishes `order.filled` events through `POST /v1/events` (or, in
//! batches, `POST /v1/events/batch`), closed loop (C requests in flight) or open loop (a
//! fixed rate, whether or not earlier ones finished).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::unix_micros;

/// Five conditions every event of [`Publisher::body`] matches, so a filtered run delivers
/// exactly what an unfiltered one does: the publish path pays for parsing `data` and
/// matching, nothing else changes.
/// The delivery controls the bench's webhooks are created with; each is sent only when asked
/// for, so the bench still runs against a build without it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Controls {
    /// Each webhook holds [`BENCH_FILTER`], which every event matches.
    pub filters: bool,
    /// `ordering: "fifo"`: one delivery in flight per webhook, in order.
    pub fifo: bool,
}

pub const BENCH_FILTER: &str = r#"{"seq": {"$gte": 0}, "sent_at_us": {"$gt": 0}, "pad": {"$prefix": ""},
    "trader.desk": {"$exists": false}, "$or": [{"seq": {"$lt": 0}}, {"pad": {"$exists": true}}]}"#;

/// `HERALD_CATALOG` for `throughput --schema`: the published type, `order.filled`, with a JSON
/// Schema every bench event matches, so each publish pays for a full check of its `data`.
pub const BENCH_CATALOG: &str = r#"[[event_types]]
type = "order.filled"
description = "Order fully filled (the bench's events, checked against a schema)"
example = { seq = 0, sent_at_us = 1741962600000000, pad = "" }
schema = '''
{
  "type": "object",
  "required": ["seq", "sent_at_us", "pad"],
  "additionalProperties": false,
  "properties": {
    "seq": {"type": "integer", "minimum": 0},
    "sent_at_us": {"type": "integer", "exclusiveMinimum": 0},
    "pad": {"type": "string", "pattern": "^x*$"}
  }
}
'''
"#;

pub struct Publisher {
    client: reqwest::Client,
    base_url: String,
    events_url: String,
    auth: HeaderValue,
    body_bytes: usize,
    /// Events per request: 1 posts to `/v1/events`, more to `/v1/events/batch`.
    batch: u64,
    /// Events whose publish finished (accepted or not), for the progress line.
    pub done: AtomicU64,
}

/// The outcome of a publish phase.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Events (not requests): a batch counts each of its events.
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Since the origin: the first request sent, the last response received.
    pub start_us: u64,
    pub end_us: u64,
    /// Request → 202 times of accepted publish requests.
    pub latencies_us: Vec<u64>,
    /// Open loop only: the latest a send started after its scheduled time.
    pub max_schedule_lag_us: u64,
}

impl PublishStats {
    fn merge(&mut self, o: Self) {
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.start_us = self.start_us.min(o.start_us);
        self.end_us = self.end_us.max(o.end_us);
        self.latencies_us.extend(o.latencies_us);
        self.max_schedule_lag_us = self.max_schedule_lag_us.max(o.max_schedule_lag_us);
    }

    fn empty() -> Self {
        Self {
            start_us: u64::MAX,
            ..Self::default()
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl Publisher {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        key: &str,
        body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let auth =
            HeaderValue::from_str(&format!("Bearer {key}")).context("the key is not a valid header value")?;
        Ok(Self {
            client,
            base_url: base_url.to_owned(),
            events_url: format!("{base_url}/v1/events"),
            auth,
            body_bytes,
            batch: 1,
            done: AtomicU64::new(0),
        })
    }

    /// Publishes `size` events per request through `POST /v1/events/batch`.
    pub fn with_batches(mut self, size: u64) -> Self {
        if size > 1 {
            self.events_url = format!("{}/v1/events/batch", self.base_url);
            self.batch = size;
        }
        self
    }

    /// Sends the publish requests somewhere else (the self-test posts them to the receiver).
    pub fn with_events_url(mut self, url: String) -> Self {
        self.events_url = url;
        self
    }

    /// Registers `fanout` webhooks `http://<receiver>/w<i>` for `order.*`; returns their ids.
    pub async fn create_webhooks(
        &self,
        receiver: &str,
        fanout: u64,
        controls: Controls,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let filter: serde_json::Value = serde_json::from_str(BENCH_FILTER).context("the bench's filter")?;
        for i in 0..fanout {
            let mut body = serde_json::json!({
                "url": format!("http://{receiver}/w{i}"),
                "name": format!("herald-bench w{i}"),
                "event_types": ["order.*"],
            });
            // Only when asked, so the bench still runs against a build without filters.
            if controls.filters {
                body["filter"] = filter.clone();
            }
            if controls.fifo {
                body["ordering"] = "fifo".into();
            }
            let resp = self
                .client
                .post(format!("{}/v1/webhooks", self.base_url))
                .header(AUTHORIZATION, self.auth.clone())
                .json(&body)
                .send()
                .await
                .context("POST /v1/webhooks")?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                bail!("POST /v1/webhooks → {status}: {text}");
            }
            let created: Created = resp
                .json()
                .await
                .context("POST /v1/webhooks: reading the answer")?;
            ids.push(created.id);
        }
        Ok(ids)
    }

    /// Deletes the bench's webhooks (best effort: matters when targeting a long-lived Herald).
    pub async fn delete_webhooks(&self, ids: &[String]) {
        for id in ids {
            let _ = self
                .client
                .delete(format!("{}/v1/webhooks/{id}", self.base_url))
                .header(AUTHORIZATION, self.auth.clone())
                .send()
                .await;
        }
    }

    /// The request body: exactly `body_bytes` long when that is large enough.
    fn body(&self, seq: u64) -> String {
        let sent = unix_micros();
        let mut s = String::with_capacity(self.body_bytes.max(96));
        s.push_str(r#"{"event_type":"order.filled","data":{"seq":"#);
        s.push_str(&seq.to_string());
        s.push_str(r#","sent_at_us":"#);
        s.push_str(&sent.to_string());
        s.push_str(r#","pad":""#);
        let tail = r#""}}"#;
        let pad = self.body_bytes.saturating_sub(s.len() + tail.len());
        s.extend(std::iter::repeat_n('x', pad));
        s.push_str(tail);
        s
    }

    /// The request body for events `first..first + count`: one event, or a batch of them.
    fn request_body(&self, first: u64, count: u64) -> String {
        if self.batch <= 1 {
            return self.body(first);
        }
        let mut s = String::with_capacity(count as usize * (self.body_bytes + 1) + 16);
        s.push_str(r#"{"events":["#);
        for seq in first..first + count {
            if seq > first {
                s.push(',');
            }
            s.push_str(&self.body(seq));
        }
        s.push_str("]}");
        s
    }

    /// One publish request of `count` events from `first`; Ok(request → answer time) on a 2xx
    /// (202, or 200 for a repeat), Err(message) otherwise.
    async fn publish(&self, first: u64, count: u64) -> Result<Duration, String> {
        let body = self.request_body(first, count);
        let t0 = Instant::now();
        let result = self
            .client
            .post(&self.events_url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(resp) => {
                let status = resp.status();
                // Read the answer to the end so the connection goes back to the pool.
                let text = resp.bytes().await;
                match (status.as_u16(), text) {
                    (200..=299, Ok(_)) => Ok(t0.elapsed()),
                    (_, Ok(b)) => Err(format!(
                        "POST /v1/events → {status}: {}",
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                    )),
                    (_, Err(e)) => Err(format!("POST /v1/events → {status}, reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("POST /v1/events: {e}")),
        };
        self.done.fetch_add(count, Ordering::Relaxed);
        outcome
    }

    fn note(
        stats: &mut PublishStats,
        origin: Instant,
        (t_send, t_end): (Instant, Instant),
        events: u64,
        r: Result<Duration, String>,
    ) {
        stats.sent += events;
        stats.start_us = stats.start_us.min((t_send - origin).as_micros() as u64);
        stats.end_us = stats.end_us.max((t_end - origin).as_micros() as u64);
        match r {
            Ok(d) => {
                stats.accepted += events;
                stats.latencies_us.push(d.as_micros() as u64);
            }
            Err(e) => {
                stats.errors += events;
                if stats.first_error.is_none() {
                    stats.first_error = Some(e);
                }
            }
        }
    }

    /// Publishes events `0..n` with `concurrency` requests in flight.
    pub async fn closed_loop(self: &Arc<Self>, n: u64, concurrency: u64, origin: Instant) -> PublishStats {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (p, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut stats = PublishStats::empty();
                stats.latencies_us.reserve((n / concurrency.max(1) + 1) as usize);
                loop {
                    let first = next.fetch_add(p.batch, Ordering::Relaxed);
                    if first >= n {
                        break;
                    }
                    let count = p.batch.min(n - first);
                    let t_send = Instant::now();
                    let r = p.publish(first, count).await;
                    Self::note(&mut stats, origin, (t_send, Instant::now()), count, r);
                }
                stats
            }));
        }
        let mut all = PublishStats::empty();
        for t in tasks {
            match t.await {
                Ok(s) => all.merge(s),
                Err(e) => {
                    all.errors += 1;
                    all.first_error
                        .get_or_insert_with(|| format!("publisher task failed: {e}"));
                }
            }
        }
        all
    }

    /// Publishes `n` events at `rate` per second, each in its own task at its scheduled time.
    pub async fn open_loop(self: &Arc<Self>, n: u64, rate: f64, origin: Instant) -> PublishStats {
        let period = Duration::from_secs_f64(1.0 / rate);
        let start = tokio::time::Instant::now() + Duration::from_millis(20);
        let mut tasks = Vec::with_capacity(n as usize);
        let mut max_lag = Duration::ZERO;
        for seq in 0..n {
            let at = start + period.mul_f64(seq as f64);
            tokio::time::sleep_until(at).await;
            max_lag = max_lag.max(tokio::time::Instant::now().saturating_duration_since(at));
            let p = self.clone();
            tasks.push(tokio::spawn(async move {
                let t_send = Instant::now();
                let r = p.publish(seq, 1).await;
                (t_send, Instant::now(), r)
            }));
        }
        let mut all = PublishStats::empty();
        all.latencies_us.reserve(n as usize);
        for t in tasks {
            match t.await {
                Ok((t_send, t_end, r)) => Self::note(&mut all, origin, (t_send, t_end), 1, r),
                Err(e) => {
                    all.sent += 1;
                    all.errors += 1;
                    all.first_error
                        .get_or_insert_with(|| format!("publisher task failed: {e}"));
                }
            }
        }
        all.max_schedule_lag_us = max_lag.as_micros() as u64;
        all
    }
}
