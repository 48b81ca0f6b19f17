//! `dashboard`: how fast the dashboard's pages answer over a large database. It starts Herald
//! on a fresh embedded database (so the schema is Herald's own), makes the webhooks through
//! the API, stops it, writes a day of deliveries straight into the file (publishing millions
//! through the API would take longer than the measurement is worth), starts Herald again on
//! it, signs in to the dashboard as a browser does and times each page.
//!
//! The rows are those Herald writes itself: one event per `fanout` deliveries, one attempt per
//! delivery (most delivered, some answered 500, some timed out), spread evenly over the last
//! 24 hours, with the per-minute rollups the attempts' records add.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::CommonArgs;
use crate::load::Publisher;
use crate::target::Target;

/// The latency classes' upper bounds, as Herald's `LATENCY_BOUNDS_MS`.
const LATENCY_BOUNDS_MS: &[i64] = &[
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600,
    800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10_000, 15_000, 20_000, 30_000, 60_000,
];
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const DAY_MS: i64 = 86_400_000;
/// Rows per transaction while filling.
const CHUNK: u64 = 200_000;

#[derive(Debug, Serialize)]
pub struct PageTiming {
    pub path: String,
    pub status: u16,
    pub bytes: usize,
    pub times_ms: Vec<f64>,
    pub median_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct DashboardReport {
    pub deliveries: u64,
    pub events: u64,
    pub webhooks: u64,
    pub fill_s: f64,
    pub db_bytes: u64,
    pub rollup_rows: i64,
    pub pages: Vec<PageTiming>,
    /// Every page answered 200 within `target_ms` (median).
    pub target_ms: f64,
    pub ok: bool,
}

impl DashboardReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "dashboard: {} deliveries ({} events × {} webhooks) over the last 24 h, filled in {:.0} s, \
             database {:.1} GB, {} rollup rows\n\n{:<52} {:>6} {:>9} {:>26}\n",
            self.deliveries,
            self.events,
            self.webhooks,
            self.fill_s,
            self.db_bytes as f64 / 1e9,
            self.rollup_rows,
            "page",
            "status",
            "median",
            "runs (ms)"
        );
        for p in &self.pages {
            let runs: Vec<String> = p.times_ms.iter().map(|t| format!("{t:.1}")).collect();
            out.push_str(&format!(
                "{:<52} {:>6} {:>6.1} ms {:>26}\n",
                p.path,
                p.status,
                p.median_ms,
                runs.join(" / ")
            ));
        }
        out.push_str(&format!(
            "\n{}: every page ≤ {} ms (median of {})\n",
            if self.ok { "PASS" } else { "FAIL" },
            self.target_ms,
            self.pages.first().map_or(0, |p| p.times_ms.len())
        ));
        out
    }
}

/// What to build and how to time it.
pub struct Params {
    pub deliveries: u64,
    pub fanout: u64,
    pub runs: usize,
    pub target_ms: f64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A Herald id (`prefix` + 26 Crockford base32 characters) made at `ms`, `n` telling apart
/// ids of the same millisecond: it sorts by time, as Herald's UUIDv7 ids do.
fn id(prefix: &str, ms: i64, n: u64) -> String {
    let value = (u128::try_from(ms).unwrap_or(0) << 80) | u128::from(n);
    let mut s = String::with_capacity(prefix.len() + 26);
    s.push_str(prefix);
    for i in (0..26).rev() {
        s.push(ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char);
    }
    s
}

fn latency_class(ms: i64) -> i64 {
    LATENCY_BOUNDS_MS.partition_point(|&b| b <= ms) as i64
}

/// xorshift64*: cheap, repeatable noise for outcomes and latencies.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct WebhookMinute {
    delivered: i64,
    failed: i64,
    last_at: i64,
    last_status: Option<i64>,
    last_error: Option<&'static str>,
}

/// Writes `deliveries` deliveries of `webhooks` (each event to every one) over the last day.
fn fill(db: &Path, org: &str, webhooks: &[String], deliveries: u64) -> anyhow::Result<()> {
    let mut conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;")?;
    let fanout = webhooks.len() as u64;
    let events = deliveries / fanout;
    let end = now_ms();
    let start = end - DAY_MS + 60_000;
    let step = (end - start) as f64 / events as f64;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut attempt_minutes: HashMap<(usize, i64, i64, i64), i64> = HashMap::new();
    let mut attempt_20min: HashMap<(usize, i64, i64, i64), i64> = HashMap::new();
    let mut webhook_minutes: HashMap<(usize, i64), WebhookMinute> = HashMap::new();
    let mut seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM deliveries", [], |r| r.get(0))?;
    let mut e = 0;
    while e < events {
        let tx = conn.transaction()?;
        {
            let mut event = tx.prepare_cached(
                "INSERT INTO events (id, org_id, event_type, payload, source_id, delivery_count, created_at) \
                 VALUES (?, ?, 'order.filled', ?, NULL, ?, ?)",
            )?;
            let mut delivery = tx.prepare_cached(
                "INSERT INTO deliveries (seq, id, event_id, webhook_id, org_id, event_type, status, attempt_count, \
                 cycle_start, last_attempt_at, last_response_status, last_error, last_error_message, delivered_at, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'order.filled', ?, 1, 0, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            let mut attempt = tx.prepare_cached(
                "INSERT INTO attempts (id, delivery_id, attempt_number, started_at, duration_ms, response_status, \
                 response_body, response_body_truncated, error, error_message, signature) \
                 VALUES (?, ?, 1, ?, ?, ?, ?, 0, ?, ?, ?)",
            )?;
            let stop = (e + CHUNK / fanout).min(events);
            while e < stop {
                let at = start + (e as f64 * step) as i64;
                let event_id = id("evt_", at, e);
                let payload = format!(
                    "{{\"id\":\"{event_id}\",\"type\":\"order.filled\",\"data\":{{\"order\":{e},\"qty\":100}}}}"
                );
                event.execute(params![event_id, org, payload, fanout as i64, at])?;
                for (w, webhook) in webhooks.iter().enumerate() {
                    seq += 1;
                    let n = e * fanout + w as u64;
                    let delivery_id = id("dlv_", at, n);
                    let started = at + 2;
                    // Mostly quick, with a long tail: about 25 latency classes in use.
                    let duration = 5 + (noise.unit().powi(3) * 995.0) as i64;
                    let roll = noise.next() % 1000;
                    let (status, response, error, message, body) = match roll {
                        0..=979 => ("delivered", Some(200), None, None, Some("ok")),
                        980..=994 => (
                            "failed",
                            Some(500),
                            Some("http_status"),
                            Some("the endpoint answered 500"),
                            Some("internal error"),
                        ),
                        _ => (
                            "failed",
                            None,
                            Some("timeout"),
                            Some("no answer within 30 s"),
                            None,
                        ),
                    };
                    let (duration, delivered_at) = if error == Some("timeout") {
                        (30_000, None)
                    } else {
                        (duration, (status == "delivered").then_some(started + duration))
                    };
                    delivery.execute(params![
                        seq,
                        delivery_id,
                        event_id,
                        webhook,
                        org,
                        status,
                        started,
                        response,
                        error,
                        message,
                        delivered_at,
                        at,
                        started + duration
                    ])?;
                    attempt.execute(params![
                        id("att_", started, n),
                        delivery_id,
                        started,
                        duration,
                        response,
                        body,
                        error,
                        message,
                        "v1,c2lnbmF0dXJlLW9mLWEtYmVuY2gtZGVsaXZlcnk="
                    ])?;
                    let minute = started.div_euclid(60_000);
                    let outcome = match (error, response) {
                        (None, _) => 0,
                        (Some(_), Some(_)) => 1,
                        (Some(_), None) => 2,
                    };
                    *attempt_minutes
                        .entry((w, minute, outcome, latency_class(duration)))
                        .or_default() += 1;
                    *attempt_20min
                        .entry((w, minute - minute % 20, outcome, latency_class(duration)))
                        .or_default() += 1;
                    let m = webhook_minutes.entry((w, minute)).or_default();
                    if status == "delivered" {
                        m.delivered += 1;
                    } else {
                        m.failed += 1;
                    }
                    if started >= m.last_at {
                        m.last_at = started;
                        m.last_status = response;
                        m.last_error = error;
                    }
                }
                e += 1;
            }
        }
        tx.commit()?;
    }
    // A Herald from before the rollups (to compare with) has none to write.
    if has_rollups(&conn)? {
        write_rollups(
            &mut conn,
            webhooks,
            &attempt_minutes,
            &attempt_20min,
            &webhook_minutes,
        )?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    Ok(())
}

fn has_rollups(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'attempt_minutes'",
        [],
        |r| r.get(0),
    )
}

type AttemptCounts = HashMap<(usize, i64, i64, i64), i64>;

fn write_rollups(
    conn: &mut Connection,
    webhooks: &[String],
    attempt_minutes: &AttemptCounts,
    attempt_20min: &AttemptCounts,
    webhook_minutes: &HashMap<(usize, i64), WebhookMinute>,
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        for (table, counts) in [
            ("attempt_minutes", attempt_minutes),
            ("attempt_20min", attempt_20min),
        ] {
            let mut add = tx.prepare(&format!(
                "INSERT INTO {table} (webhook_id, minute, outcome, latency_class, attempts) VALUES (?, ?, ?, ?, ?)"
            ))?;
            for ((w, minute, outcome, class), n) in counts {
                add.execute(params![webhooks[*w], minute, outcome, class, n])?;
            }
        }
        let mut add = tx.prepare(
            "INSERT INTO webhook_minutes (webhook_id, minute, delivered, failed, last_attempt_at, \
             last_response_status, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for ((w, minute), m) in webhook_minutes {
            add.execute(params![
                webhooks[*w],
                minute,
                m.delivered,
                m.failed,
                m.last_at,
                m.last_status,
                m.last_error
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Signs in to the dashboard with `key` as a browser does; the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<String> {
    let form = format!("key={}", key.replace(':', "%3A"));
    let resp = client
        .post(format!("{base}/dashboard/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .context("POST /dashboard/login")?;
    let cookie = resp
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    match cookie {
        Some(c) => Ok(c),
        None => bail!("signing in answered {} without a session cookie", resp.status()),
    }
}

async fn time_page(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
    runs: usize,
) -> anyhow::Result<PageTiming> {
    let mut times = Vec::with_capacity(runs);
    let mut status = 0;
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let resp = client
            .get(format!("{base}{path}"))
            .header(COOKIE, cookie)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        status = resp.status().as_u16();
        bytes = resp.bytes().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(PageTiming {
        path: path.to_owned(),
        status,
        bytes,
        median_ms: sorted[sorted.len() / 2],
        times_ms: times,
    })
}

pub async fn run(common: &CommonArgs, params: &Params) -> anyhow::Result<DashboardReport> {
    anyhow::ensure!(
        common.url.is_none() && common.database_url.is_none(),
        "dashboard fills its own embedded database: --url and --database-url do not apply"
    );
    anyhow::ensure!(params.fanout > 0 && params.deliveries >= params.fanout && params.runs > 0);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()?;

    // 1. A fresh database with Herald's schema, its admin key and the webhooks.
    let mut first = Target::open(common, &[], &client).await?;
    let publisher = Publisher::new(client.clone(), &first.base_url, &first.key, 100)?;
    let webhooks = publisher
        .create_webhooks("127.0.0.1:9", params.fanout, crate::load::Controls::default())
        .await?;
    first.stop().await;
    let db = first.database_file().context("no embedded database file")?;
    let key = first.key.clone();
    let key_id = key.split(':').next().unwrap_or_default().to_owned();
    let org: String =
        Connection::open(&db)?.query_row("SELECT org_id FROM api_keys WHERE id = ?", [&key_id], |r| {
            r.get(0)
        })?;

    // 2. A day of deliveries.
    let t = Instant::now();
    let db_for_fill = db.clone();
    let wh = webhooks.clone();
    let deliveries = params.deliveries;
    tokio::task::spawn_blocking(move || fill(&db_for_fill, &org, &wh, deliveries)).await??;
    let fill_s = t.elapsed().as_secs_f64();
    let conn = Connection::open(&db)?;
    let rollup_rows: i64 = if has_rollups(&conn)? {
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM attempt_minutes) + (SELECT COUNT(*) FROM attempt_20min) \
             + (SELECT COUNT(*) FROM webhook_minutes)",
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    drop(conn);
    let db_bytes = std::fs::metadata(&db).map_or(0, |m| m.len());

    // 3. Herald again on it, and the pages.
    let mut again = common.clone();
    again.database_url = Some(format!("sqlite://{}", db.display()));
    again.key = Some(key.clone());
    let mut second = Target::open(&again, &[], &client).await?;
    let result = async {
        let base = second.base_url.clone();
        let cookie = sign_in(&client, &base, &key).await?;
        let delivery: String = Connection::open(&db)?.query_row(
            "SELECT id FROM deliveries ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let webhook = &webhooks[0];
        let paths = [
            "/dashboard".to_owned(),
            "/dashboard?range=day".to_owned(),
            "/dashboard/webhooks".to_owned(),
            format!("/dashboard/webhooks/{webhook}"),
            format!("/dashboard/webhooks/{webhook}?range=day"),
            "/dashboard/deliveries".to_owned(),
            format!("/dashboard/deliveries?webhook_id={webhook}&status=failed"),
            format!("/dashboard/deliveries/{delivery}"),
            "/dashboard/keys".to_owned(),
        ];
        let mut pages = Vec::new();
        for path in &paths {
            pages.push(time_page(&client, &base, &cookie, path, params.runs).await?);
        }
        anyhow::Ok(pages)
    }
    .await;
    second.stop().await;
    let pages = result?;
    let ok = pages
        .iter()
        .all(|p| p.status == 200 && p.median_ms <= params.target_ms);
    drop(first);
    Ok(DashboardReport {
        deliveries: params.deliveries / params.fanout * params.fanout,
        events: params.deliveries / params.fanout,
        webhooks: params.fanout,
        fill_s,
        db_bytes,
        rollup_rows,
        pages,
        target_ms: params.target_ms,
        ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_then_by_their_number() {
        let a = id("dlv_", 1_700_000_000_000, 5);
        let b = id("dlv_", 1_700_000_000_000, 6);
        let c = id("dlv_", 1_700_000_000_001, 0);
        assert_eq!(a.len(), 4 + 26);
        assert!(a < b && b < c);
        assert!(a.as_bytes()[4] <= b'7');
    }
}
