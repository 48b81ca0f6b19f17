//! The delivery engine, inside `herald serve`.
//!
//! The [`Dispatcher`] runs one [`attempt`] for each leased delivery, at most `WINDOW` leased
//! and at most `PER_WEBHOOK` in flight per endpoint (so a slow or dead endpoint only ever
//! holds its own slots), and records the outcome. A webhook may hold up to
//! `LEASED_PER_WEBHOOK` leases, more than its slots: the next attempt starts from a lease
//! already held when one ends (see [`endpoints`]). Deliveries reach it two ways:
//! - handed over by their publish, already leased in its transaction (through an
//!   [`EngineHandle`]): the common case of an endpoint that keeps up, at no extra write;
//! - claimed from the store: retries, backlogs, and whatever the publish could not lease. It
//!   claims when woken (a publish that left work due, a manual retry, another node), when
//!   the next retry is due, when attempts finish while due work waits for room (gathered:
//!   see `CLAIM_AFTER`), and otherwise polls slowly, so an idle Herald does almost nothing.
//!
//! A lease that is never recorded (the process died) runs out and the delivery becomes due
//! again: at-least-once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::domain::ids::{AttemptId, WebhookId};
use crate::domain::net::TargetPolicy;
use crate::domain::time::{Millis, now_ms};
use crate::secrets::SecretBox;
use crate::store::{
    Attempt, AttemptRecord, ClaimRequest, Claimed, LeaseOffer, Next, Store, StoreError, WebhookEffect,
};
use crate::telemetry;

pub mod attempt;
pub mod client;
pub mod endpoints;
pub mod leases;
pub mod pacing;
pub mod retry;

use leases::EngineLeasing;

/// Deliveries in flight in this process, at most (their payloads are what the engine holds
/// in memory, whatever the backlog).
const WINDOW: u32 = 1024;
/// Attempts in flight to one webhook from this process, at most: enough for a fast endpoint
/// to take thousands a second, few enough that a slow one holds a small share of the window
/// and a small receiver is not flooded.
const PER_WEBHOOK: u32 = 64;
/// Deliveries leased to one webhook at once by this process: three times its slots, so that
/// when an attempt ends the next one's lease is already held, even while a claim gathers
/// (`CLAIM_AFTER`) and runs (see [`leases::Leases`] for why the count is kept in memory, per
/// node).
const LEASED_PER_WEBHOOK: u32 = 3 * PER_WEBHOOK;
/// While due work waits for room, a claim follows this many finished attempts, or
/// `CLAIM_GATHER` after the first of them or after a wakeup, whichever comes first.
/// Claiming after each one (and after each publish, on PostgreSQL) made claims small
/// (≈ 30 deliveries, one every ≈ 5 ms), and each claim pays its transaction and the row
/// locks of the queue's head whatever it takes.
const CLAIM_AFTER: u32 = PER_WEBHOOK;
const CLAIM_GATHER: Duration = Duration::from_millis(5);
/// With nothing scheduled, look for work this often anyway (another process may publish).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How the engine behaves, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub schedule: Vec<Duration>,
    pub timeout: Duration,
    pub disable_after: Duration,
    pub policy: TargetPolicy,
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            schedule: config.retry_schedule.clone(),
            timeout: config.delivery_timeout,
            disable_after: config.disable_after,
            policy: config.target_policy(),
        }
    }

    /// A lease outlives a wait for the webhook's slot (a lease held ahead waits for at most
    /// one round of the attempts in flight, each bounded by the timeout), the attempt's own
    /// timeout, and room to record the result (as much again, between 1 s and 10 s).
    pub fn lease(&self) -> Duration {
        2 * self.timeout
            + self
                .timeout
                .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }
}

fn ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// From now until `at` (zero if it has passed).
fn until(at: Millis) -> Duration {
    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
}

/// An attempt waiting to be recorded, and who waits for the result.
type PendingRecord = (AttemptRecord, oneshot::Sender<Result<WebhookEffect, StoreError>>);

/// How the API reaches this process's delivery engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    wake: Arc<Notify>,
    lease: Duration,
    leasing: Arc<EngineLeasing>,
}

impl EngineHandle {
    /// Tells the engine there is due work to claim.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What a publish may lease for this engine right now. If the engine has stopped when
    /// the publish commits, those leases run out and the deliveries are claimed again later.
    pub fn offer(&self) -> LeaseOffer {
        LeaseOffer {
            lease_until: now_ms() + ms(self.lease),
            engine: Arc::clone(&self.leasing) as Arc<dyn crate::store::Leasing>,
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    /// Finished attempts go to the recorder, which writes many in one transaction.
    records: mpsc::Sender<PendingRecord>,
    client: reqwest::Client,
    secret_box: SecretBox,
    settings: Settings,
    wake: Arc<Notify>,
    /// One permit per delivery leased here, claimed or handed over.
    window: Arc<Semaphore>,
    leasing: Arc<EngineLeasing>,
    endpoints: Arc<endpoints::Endpoints>,
    pacer: pacing::Pacer,
}

/// Where a claim left the engine.
enum AfterClaim {
    /// It filled the window: claim again at once.
    WindowFull,
    /// It took what fitted; `more_due` if due work was left behind (or may have been).
    Settled { more_due: bool },
}

/// What wakes the engine's loop.
enum Wakeup {
    /// Due work may exist: claim.
    Claim,
    /// Told that due work may exist (a publish, a manual retry, another node).
    Woken,
    /// Deliveries handed over by publishes.
    Fresh(Vec<Claimed>),
    /// An attempt finished; a retry it scheduled, if any.
    Finished(Option<Millis>),
    Stats,
    Shutdown,
}

impl Dispatcher {
    /// The engine, its handle for the API, and the receiving end of the hand-overs (for
    /// [`Self::run`]).
    pub fn new(
        store: Arc<dyn Store>,
        secret_box: SecretBox,
        settings: Settings,
        wake: Arc<Notify>,
    ) -> Result<(Self, EngineHandle, mpsc::UnboundedReceiver<Vec<Claimed>>), reqwest::Error> {
        let (records, queue) = mpsc::channel(WINDOW as usize);
        tokio::spawn(record_batches(Arc::clone(&store), queue, settings.lease() / 2));
        let window = Arc::new(Semaphore::new(WINDOW as usize));
        let (leasing, handed) =
            EngineLeasing::new(LEASED_PER_WEBHOOK, Arc::clone(&window), Arc::clone(&wake));
        let handle = EngineHandle {
            wake: Arc::clone(&wake),
            lease: settings.lease(),
            leasing: Arc::clone(&leasing),
        };
        let dispatcher = Self {
            client: client::build(&settings.policy, settings.timeout)?,
            records,
            pacer: pacing::Pacer::new(Arc::clone(&store)),
            store,
            secret_box,
            settings,
            wake,
            window,
            leasing,
            endpoints: Arc::new(endpoints::Endpoints::new(PER_WEBHOOK)),
        };
        Ok((dispatcher, handle, handed))
    }

    /// Runs until `shutdown` turns true, then lets the attempts in flight finish (each is
    /// bounded by the delivery timeout) and records them.
    pub async fn run(
        self: Arc<Self>,
        mut handed: mpsc::UnboundedReceiver<Vec<Claimed>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tasks: JoinSet<Option<Millis>> = JoinSet::new();
        let mut stats = tokio::time::interval(Duration::from_secs(5));
        let mut claim = true;
        // After a claim: when to look again, and whether due work is waiting for room (then a
        // finished attempt is a reason to claim).
        let mut deadline = tokio::time::Instant::now();
        let mut waiting = false;
        // Attempts finished since the last claim, while `waiting`.
        let mut finished: u32 = 0;
        while !*shutdown.borrow() {
            if claim {
                finished = 0;
                let more_due = match self.claim(&mut tasks).await {
                    Ok(AfterClaim::WindowFull) => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Ok(AfterClaim::Settled { more_due }) => more_due,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim deliveries; retrying in a second");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                };
                // Due work left behind makes finished attempts the reason to claim; only
                // otherwise is the store asked when the next retry or lease end falls.
                let (wait, due_now) = if more_due {
                    (IDLE_POLL, true)
                } else {
                    self.until_next_due().await
                };
                deadline = tokio::time::Instant::now() + wait;
                waiting = due_now;
                claim = false;
            }
            let wakeup = tokio::select! {
                () = self.wake.notified() => Wakeup::Woken,
                Some(leased) = handed.recv() => Wakeup::Fresh(leased),
                Some(done) = tasks.join_next(), if !tasks.is_empty() => Wakeup::Finished(done.ok().flatten()),
                () = tokio::time::sleep_until(deadline) => Wakeup::Claim,
                _ = stats.tick() => Wakeup::Stats,
                _ = shutdown.changed() => Wakeup::Shutdown,
            };
            match wakeup {
                Wakeup::Claim => claim = true,
                // Due work already waits for room that only finishing attempts free: the new
                // work joins it, and the gathered claim takes both.
                Wakeup::Woken if waiting && !tasks.is_empty() => {
                    deadline = deadline.min(tokio::time::Instant::now() + CLAIM_GATHER);
                }
                Wakeup::Woken => claim = true,
                Wakeup::Fresh(leased) => {
                    self.start(&mut tasks, leased);
                    while let Ok(more) = handed.try_recv() {
                        self.start(&mut tasks, more);
                    }
                }
                Wakeup::Finished(retry_at) => {
                    let mut retries = vec![retry_at];
                    while let Some(done) = tasks.try_join_next() {
                        retries.push(done.ok().flatten());
                    }
                    for at in retries.iter().flatten() {
                        deadline = deadline.min(tokio::time::Instant::now() + until(*at));
                    }
                    if waiting {
                        if finished == 0 {
                            deadline = deadline.min(tokio::time::Instant::now() + CLAIM_GATHER);
                        }
                        finished += u32::try_from(retries.len()).unwrap_or(u32::MAX);
                        claim = finished >= CLAIM_AFTER || tasks.is_empty();
                    }
                }
                Wakeup::Stats => self.report_queue().await,
                Wakeup::Shutdown => {}
            }
        }
        handed.close();
        while let Some(leased) = handed.recv().await {
            self.start(&mut tasks, leased);
        }
        tracing::info!(
            in_flight = tasks.len(),
            "delivery engine stopping; finishing attempts in flight"
        );
        while tasks.join_next().await.is_some() {}
    }

    /// Claims as much due work as the window has room for and starts it.
    async fn claim(self: &Arc<Self>, tasks: &mut JoinSet<Option<Millis>>) -> Result<AfterClaim, StoreError> {
        let free = self.window.available_permits();
        // No room to claim into: whatever is due waits for an attempt to finish.
        let settled = AfterClaim::Settled { more_due: true };
        if free == 0 {
            return Ok(settled);
        }
        let limit = u32::try_from(free).unwrap_or(WINDOW);
        // Publishes may take permits meanwhile; then the next wakeup claims.
        let Ok(mut slots) = Arc::clone(&self.window).try_acquire_many_owned(limit) else {
            return Ok(settled);
        };
        let now = now_ms();
        let claim = self
            .store
            .claim_due(ClaimRequest {
                now,
                lease_until: now + ms(self.settings.lease()),
                limit,
                leases: Arc::clone(&self.leasing) as Arc<dyn crate::store::Leasing>,
            })
            .await?;
        let full = claim.jobs.len() == free;
        for job in claim.jobs {
            self.spawn(tasks, job, slots.split(1));
        }
        Ok(if full {
            AfterClaim::WindowFull
        } else {
            AfterClaim::Settled {
                more_due: claim.more_due,
            }
        })
    }

    /// Starts the attempts a publish handed over; each one's lease holds its window permit.
    fn start(self: &Arc<Self>, tasks: &mut JoinSet<Option<Millis>>, leased: Vec<Claimed>) {
        for job in leased {
            self.spawn(tasks, job, None);
        }
    }

    fn spawn(
        self: &Arc<Self>,
        tasks: &mut JoinSet<Option<Millis>>,
        job: Claimed,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let me = Arc::clone(self);
        tasks.spawn(async move {
            let at_endpoint = me.endpoints.enter(&job.webhook_id).await;
            if let Some(limit) = job.rate_limit {
                me.pacer.wait_turn(&job.webhook_id, limit).await;
            }
            // Allocated once the attempt may run, not with the waiting task: measured with
            // hundreds of tasks waiting at gates (fan-out 10), peak RSS 163–294 MB inline
            // against 79–102 MB boxed, though the future is only ~1.6 KB (the allocator's
            // fragmentation, by all signs).
            let retry_at = Box::pin(me.process_one(job, &at_endpoint)).await;
            drop(at_endpoint);
            drop(slot);
            retry_at
        });
    }

    /// How long to sleep before the next scheduled attempt, and whether work is due now
    /// that could not be claimed (its endpoints or the window are full): then an attempt
    /// finishing is a reason to claim again.
    async fn until_next_due(&self) -> (Duration, bool) {
        match self.store.next_due_at().await {
            Ok(Some(at)) if at <= now_ms() => (IDLE_POLL, true),
            Ok(Some(at)) => (until(at).min(IDLE_POLL), false),
            Ok(None) | Err(_) => (IDLE_POLL, false),
        }
    }

    /// The queue's gauges, and the store's health: a read that fails, or writes the store
    /// refuses, is a store that is down.
    async fn report_queue(&self) {
        let stats = self.store.queue_stats().await;
        let up = match &stats {
            Ok(_) => self.store.writes_refused().await.is_none(),
            Err(_) => false,
        };
        telemetry::report_store(up);
        if let Ok(stats) = stats {
            metrics::gauge!("herald_queue_depth").set(stats.pending as f64);
            metrics::gauge!("herald_queue_due").set(stats.due as f64);
            let age = stats
                .oldest_pending_created_at
                .map_or(0.0, |at| (now_ms() - at).max(0) as f64 / 1000.0);
            metrics::gauge!("herald_oldest_pending_age_seconds").set(age);
        }
    }

    /// Decrypts the webhook's secrets; undecryptable ones are skipped (and logged).
    fn open_secrets(&self, webhook: &WebhookId, sealed: &[Vec<u8>]) -> Vec<herald_verify::Secret> {
        sealed
            .iter()
            .filter_map(|sealed| match self.secret_box.open(sealed, webhook.as_str()) {
                Ok(plain) => String::from_utf8(plain)
                    .ok()
                    .and_then(|s| herald_verify::Secret::parse(&s).ok()),
                Err(e) => {
                    tracing::error!(webhook.id = %webhook, error = %e, "cannot decrypt a signing secret");
                    None
                }
            })
            .collect()
    }

    /// Decrypts the webhook's custom headers. Headers that cannot be opened are logged (by
    /// name of the webhook only: values are secrets) and the attempt goes without them, as
    /// the contract has the signature, not these headers, prove a delivery's origin.
    fn open_headers(&self, webhook: &WebhookId, sealed: Option<&[u8]>) -> HeaderMap {
        let headers = match self.secret_box.open_headers(sealed, webhook.as_str()) {
            Ok(headers) => headers,
            Err(e) => {
                tracing::error!(webhook.id = %webhook, error = %e, "cannot open the custom headers; sending without them");
                return HeaderMap::new();
            }
        };
        let mut map = HeaderMap::with_capacity(headers.iter().count());
        for (name, value) in headers.iter() {
            // Validation made every name a token and every value printable ASCII, which is
            // what these take.
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    map.insert(name, value);
                }
                _ => {
                    tracing::error!(webhook.id = %webhook, header.name = name, "a stored custom header is not sendable; skipped")
                }
            }
        }
        map
    }

    /// What follows an attempt: delivered, retried later, given up, or the webhook disabled.
    fn decide(&self, job: &Claimed, outcome: &attempt::Outcome, now: Millis) -> Next {
        if outcome.delivered() {
            return Next::Delivered;
        }
        if outcome.response_status == Some(410) {
            return Next::DisableWebhook("the endpoint answered 410 Gone".to_owned());
        }
        let attempts_in_cycle = job.attempt_count + 1 - job.cycle_start;
        let retry = usize::try_from(attempts_in_cycle).unwrap_or(usize::MAX);
        match retry::delay(&self.settings.schedule, retry, retry::jitter_unit()) {
            Some(delay) => Next::RetryAt(retry::next_attempt_at(now, delay, outcome.retry_after)),
            None => Next::Failed,
        }
    }

    /// One delivery: attempt, decide, record; returns when a retry is due, if one is. A record
    /// that cannot be written is retried a few times; if it still fails the lease runs out and
    /// the delivery is attempted again.
    async fn process_one(&self, job: Claimed, at_endpoint: &endpoints::Slot) -> Option<Millis> {
        let sealed = attempt::Sealed {
            secrets: &job.secrets,
            headers: job.headers.as_deref(),
        };
        let target = at_endpoint.target(&job.url, sealed, |sealed| attempt::Opened {
            secrets: self.open_secrets(&job.webhook_id, sealed.secrets),
            headers: self.open_headers(&job.webhook_id, sealed.headers),
        });
        let outcome = attempt::send(
            &self.client,
            &self.settings.policy,
            attempt::Request {
                target: &target,
                event_id: job.event_id.as_str(),
                payload: &job.payload,
            },
            self.settings.timeout,
        )
        .await;
        let now = now_ms();
        let next = self.decide(&job, &outcome, now);
        let retry_at = match next {
            Next::RetryAt(at) => Some(at),
            _ => None,
        };
        let result = match &next {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "retry",
            Next::Failed => "failed",
            Next::DisableWebhook(_) => "disabled",
        };
        metrics::histogram!("herald_attempt_duration_seconds", "result" => if outcome.delivered() { "success" } else { "failure" })
            .record(outcome.duration.as_secs_f64());
        metrics::counter!("herald_deliveries_total", "outcome" => result).increment(1);
        let (error, error_message) = match &outcome.error {
            Some((class, message)) => (Some(*class), Some(message.clone())),
            None => (None, None),
        };
        if let Some(class) = &error {
            tracing::debug!(delivery.id = %job.delivery_id, webhook.id = %job.webhook_id, attempt.error = %class,
                attempt.status = ?outcome.response_status, attempt.duration_ms = outcome.duration.as_millis() as u64, "attempt failed");
        }
        let record = AttemptRecord {
            seq: job.seq,
            claim_token: job.claim_token,
            webhook_id: job.webhook_id.clone(),
            attempt: Attempt {
                id: AttemptId::new(),
                delivery_id: job.delivery_id.clone(),
                attempt_number: job.attempt_count + 1,
                started_at: outcome.started_at,
                duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
                response_status: outcome.response_status.map(i64::from),
                response_body: outcome.response_body,
                response_body_truncated: outcome.response_body_truncated,
                error,
                error_message,
                signature: outcome.signature,
            },
            next,
            disable_if_failing_since: now - ms(self.settings.disable_after),
            now,
        };
        let disabled_as = record.disabled_reason_code();
        let (done, recorded) = oneshot::channel();
        if self.records.send((record, done)).await.is_err() {
            return None;
        }
        match recorded.await {
            Ok(Ok(WebhookEffect::Disabled(reason))) => {
                metrics::counter!("herald_webhooks_disabled_total", "reason" => disabled_as).increment(1);
                tracing::warn!(webhook.id = %job.webhook_id, reason = %reason, "webhook disabled");
            }
            Ok(Ok(WebhookEffect::None)) => {
                if result == "failed" {
                    tracing::info!(delivery.id = %job.delivery_id, webhook.id = %job.webhook_id, "delivery failed: retries exhausted");
                }
            }
            Ok(Err(e)) => {
                tracing::error!(delivery.id = %job.delivery_id, error = %e, "cannot record an attempt; the delivery will be attempted again when its lease ends");
            }
            Err(_) => {}
        }
        retry_at
    }
}

/// Writes finished attempts in batches: whatever is waiting when the store is free goes in
/// one transaction, so under load many attempts share one commit. A batch the database
/// refuses for now is retried with backoff for up to `patience`; after that its deliveries are
/// attempted again when their leases end.
async fn record_batches(store: Arc<dyn Store>, mut queue: mpsc::Receiver<PendingRecord>, patience: Duration) {
    const MAX_BATCH: usize = 256;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, waiters): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let result = loop {
            match store.record_attempts(records.clone()).await {
                Err(StoreError::Unavailable(e)) if started.elapsed() < patience => {
                    tracing::warn!(error = %e, attempts = records.len(), "cannot record attempts yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        match result {
            Ok(effects) => {
                for (waiter, effect) in waiters.into_iter().zip(effects) {
                    let _ = waiter.send(Ok(effect));
                }
            }
            Err(e) => {
                for waiter in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }
}
