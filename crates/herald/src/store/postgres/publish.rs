//! Publishes on PostgreSQL, grouped: the publishes waiting when a writer is free share one
//! transaction, a handful of multi-row statements and one durable commit.
//!
//! Alone, each publish was a transaction of five round trips ending in its own wait for the
//! WAL flush, holding a pooled connection all the while; under load the pool, not the disk,
//! set the pace. Two writers take turns so one batch's flush overlaps the next one's
//! statements. A batch the database refuses is written again one publish at a time, so one
//! bad publish never fails the others.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_channel::{mpsc, oneshot};

use super::{Announcer, EVENT_COLUMNS, event_from_row, get, live_secrets};
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::time::Millis;
use sqlx::AssertSqlSafe;

use crate::store::rows::{self, CANDIDATE_COLUMNS};
use crate::store::{
    Candidate, Claimed, Committed, Event, Lease, LeaseOffer, NewEvent, Published, StoreError, claim_token,
    fresh_may_pass,
};

/// Publishes in one transaction, at most: bounded so one batch's statements stay small.
const MAX_BATCH: usize = 128;
/// Transactions in flight at once.
const WRITERS: usize = 2;

type Job = (NewEvent, oneshot::Sender<Result<Published, StoreError>>);

pub(super) struct Publisher {
    /// Unbounded: every publish awaits its answer, so the queue holds at most one event per
    /// caller in flight.
    queue: mpsc::UnboundedSender<Job>,
    pool: sqlx::PgPool,
    announcer: Announcer,
}

impl Publisher {
    pub(super) fn spawn(pool: sqlx::PgPool, announcer: Announcer) -> Self {
        let (queue, waiting) = mpsc::unbounded();
        tokio::spawn(gather(pool.clone(), waiting, announcer.clone()));
        Self {
            queue,
            pool,
            announcer,
        }
    }

    /// A batch from the API: its own transaction, not grouped with other publishes, so it
    /// is stored whole or not at all.
    pub(super) async fn publish_all(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, StoreError> {
        let (stored, handover) = insert(&self.pool, &events).await?;
        let offer = events.iter().find_map(|event| event.lease.clone());
        let published: Vec<Published> = events.into_iter().zip(stored).map(answer).collect();
        committed(&self.announcer, offer.as_ref(), handover);
        Ok(published)
    }

    pub(super) async fn publish(&self, event: NewEvent) -> Result<Published, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the publisher has stopped".to_owned());
        self.queue.unbounded_send((event, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Forms batches of the publishes waiting and writes them, at most [`WRITERS`] at once: a
/// batch is what has queued up by the time a writer is free.
async fn gather(pool: sqlx::PgPool, mut waiting: mpsc::UnboundedReceiver<Job>, announcer: Announcer) {
    let mut in_flight = VecDeque::with_capacity(WRITERS);
    while let Ok(first) = waiting.recv().await {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        in_flight.push_back(tokio::spawn(write(pool.clone(), batch, announcer.clone())));
        if in_flight.len() >= WRITERS
            && let Some(oldest) = in_flight.pop_front()
        {
            // A writer that panicked dropped its replies: those callers see the publisher stop.
            let _ = oldest.await;
        }
    }
}

async fn write(pool: sqlx::PgPool, batch: Vec<Job>, announcer: Announcer) {
    let (events, replies): (Vec<NewEvent>, Vec<_>) = batch.into_iter().unzip();
    let mut handover = Committed::default();
    let stored = match insert(&pool, &events).await {
        Ok((done, all)) => {
            handover = all;
            done.into_iter().map(Ok).collect()
        }
        Err(e) if events.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut each = Vec::with_capacity(events.len());
            for event in &events {
                let alone = insert(&pool, std::slice::from_ref(event)).await;
                each.push(alone.and_then(|(done, one)| {
                    handover.absorb(one);
                    done.into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Backend("a publish went unanswered".to_owned()))
                }));
            }
            each
        }
    };
    let offer = events.iter().find_map(|event| event.lease.clone());
    let results: Vec<Result<Published, StoreError>> = events
        .into_iter()
        .zip(stored)
        .map(|(event, stored)| stored.map(|stored| answer((event, stored))))
        .collect();
    committed(&announcer, offer.as_ref(), handover);
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

/// After a commit: this node's engine gets what was leased to it and is told whether
/// deliveries were left due, and then so are the other nodes, through `NOTIFY`.
fn committed(announcer: &Announcer, offer: Option<&LeaseOffer>, handover: Committed) {
    let due_left = handover.due_left;
    if let Some(offer) = offer
        && (due_left || !handover.leased.is_empty())
    {
        offer.engine.committed(handover.leased, due_left);
    }
    if due_left {
        announcer.due();
    }
}

/// The answer for one stored event.
fn answer((event, stored): (NewEvent, Stored)) -> Published {
    match stored {
        Stored::Created(count) => Published::Created(event.into_event(count)),
        Stored::Duplicate(original) => Published::Duplicate(original),
    }
}

/// How long a publish may lease fresh deliveries past its webhook's due ones
/// ([`fresh_may_pass`]). In a closed loop of publishes the previous batch's deliveries
/// nearly always wait for their claim, so without a window nothing was leased at publish.
const PASS_WINDOW_MS: Millis = 50;

/// The webhooks a batch may deliver to; when each one's oldest queued delivery is (or was)
/// due, for [`fresh_may_pass`]; and each one's live signing secrets, for a delivery leased
/// here (read with the webhooks, not after: a publish waits for every round trip).
struct Candidates {
    webhooks: Vec<Candidate>,
    oldest_due: Vec<Option<Millis>>,
    secrets: Vec<Vec<Vec<u8>>>,
}

/// What a batch did with one event.
enum Stored {
    /// Stored with this many deliveries.
    Created(i64),
    /// The caller's id was seen within the window (perhaps by another node just now, or
    /// earlier in this batch): every duplicate answers with the original.
    Duplicate(Event),
}

/// Stores `events` in one transaction; one answer per event, in order, and what the engine
/// is to be handed once it has committed: the fresh deliveries it granted leases on
/// ([`fresh_may_pass`], [`crate::store::Leasing::try_fresh`]), stored leased, and whether
/// others were left due.
///
/// Its statements run with generic plans: PostgreSQL otherwise re-planned the webhook lookup
/// (`org_id = ANY($1)`) for every batch, ≈ 90 µs each, a twentieth of the database's time in
/// a throughput run; its generic plan is the same index scan.
async fn insert(pool: &sqlx::PgPool, events: &[NewEvent]) -> Result<(Vec<Stored>, Committed), StoreError> {
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    free_stale_source_ids(&mut tx, events).await?;
    let (candidates, targets) = targets(&mut tx, events).await?;
    let counts: Vec<i64> = targets
        .iter()
        .map(|t| i64::try_from(t.len()).unwrap_or(i64::MAX))
        .collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, org_id, event_type, payload, source_id, delivery_count, created_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) \
         ON CONFLICT (org_id, source_id) WHERE source_id IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.org_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(NewEvent::stored_type).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.source_id.as_deref()).collect::<Vec<_>>())
    .bind(&counts)
    .bind(events.iter().map(|e| e.now).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let created: Vec<bool> = events.iter().map(|e| inserted.contains(e.id.as_str())).collect();
    let token = claim_token();
    let mut deliveries = Deliveries::default();
    let mut leases: Vec<FreshLease> = Vec::new();
    let mut due_left = false;
    for ((event, targets), _) in events.iter().zip(&targets).zip(&created).filter(|(_, c)| **c) {
        for &target in targets {
            let candidate = &candidates.webhooks[target];
            let granted = match &event.lease {
                Some(offer) => offer
                    .lease_fresh(candidate, || {
                        Ok(fresh_may_pass(
                            candidates.oldest_due[target],
                            event.now,
                            PASS_WINDOW_MS,
                        ))
                    })?
                    .map(|hold| (offer.lease_until, hold)),
                None => None,
            };
            due_left |= candidate.active && granted.is_none();
            let id = DeliveryId::new();
            deliveries.push(
                id.to_string(),
                event,
                candidate,
                granted.as_ref().map(|(until, _)| (*until, token)),
            );
            if let Some((_, hold)) = granted {
                leases.push(FreshLease {
                    id,
                    event,
                    webhook: target,
                    hold,
                });
            }
        }
    }
    let seqs = deliveries.insert(&mut tx).await?;
    let originals = originals(&mut tx, events, &created).await?;
    tx.commit().await?;
    let mut leased = Vec::with_capacity(leases.len());
    for FreshLease {
        id,
        event,
        webhook,
        hold,
    } in leases
    {
        let candidate = &candidates.webhooks[webhook];
        leased.push(Claimed {
            seq: *seqs
                .get(id.as_str())
                .ok_or_else(|| StoreError::Backend("a leased delivery went unanswered".to_owned()))?,
            delivery_id: id,
            claim_token: token,
            event_id: event.id.clone(),
            webhook_id: candidate.id.clone(),
            url: candidate.url.clone(),
            payload: event.payload.clone(),
            attempt_count: 0,
            cycle_start: 0,
            secrets: candidates.secrets[webhook].clone(),
            headers: candidate.headers.clone(),
            rate_limit: candidate.rate_limit,
            lease: hold,
        });
    }
    let stored = events
        .iter()
        .zip(counts)
        .zip(created)
        .map(|((event, count), created)| {
            if created {
                return Ok(Stored::Created(count));
            }
            let key = (
                event.org_id.as_str().to_owned(),
                event.source_id.clone().unwrap_or_default(),
            );
            originals
                .get(&key)
                .cloned()
                .map(Stored::Duplicate)
                .ok_or_else(|| StoreError::Backend("a duplicate event's original is missing".to_owned()))
        })
        .collect::<Result<_, _>>()?;
    Ok((stored, Committed { leased, due_left }))
}

/// A fresh delivery this publish leases to its engine: its id, its event, its webhook (an
/// index into the batch's candidates), and the engine's hold on it.
struct FreshLease<'a> {
    id: DeliveryId,
    event: &'a NewEvent,
    webhook: usize,
    hold: Lease,
}

/// A caller id older than the dedup window is free again.
async fn free_stale_source_ids(tx: &mut sqlx::PgConnection, events: &[NewEvent]) -> Result<(), StoreError> {
    let with_source: Vec<&NewEvent> = events.iter().filter(|e| e.source_id.is_some()).collect();
    if with_source.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE events SET source_id = NULL FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s(org_id, source_id, after) \
         WHERE events.org_id = s.org_id AND events.source_id = s.source_id AND events.created_at < s.after",
    )
    .bind(with_source.iter().map(|e| e.org_id.as_str()).collect::<Vec<_>>())
    .bind(with_source.iter().map(|e| e.source_id.as_deref()).collect::<Vec<_>>())
    .bind(with_source.iter().map(|e| e.dedup_after).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// The webhooks the batch may deliver to, and each event's among them (indices): its org's
/// active subscribers, or the one webhook of a test send.
async fn targets(
    tx: &mut sqlx::PgConnection,
    events: &[NewEvent],
) -> Result<(Candidates, Vec<Vec<usize>>), StoreError> {
    let mut orgs: Vec<&str> = events
        .iter()
        .filter(|e| e.only_webhook.is_none())
        .map(|e| e.org_id.as_str())
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    let only: Vec<&str> = events
        .iter()
        .filter_map(|e| e.only_webhook.as_ref())
        .map(|w| w.as_str())
        .collect();
    // Every webhook any event of the batch may go to, once each, the due time of its first
    // queued delivery (one step of `delivery_queue_by_webhook`), and its secrets.
    let mut candidates = Candidates {
        webhooks: Vec::new(),
        oldest_due: Vec::new(),
        secrets: Vec::new(),
    };
    let now = events.iter().map(|e| e.now).min().unwrap_or_default();
    for (which, ids) in [
        ("org_id = ANY($1) AND status = 'active'", &orgs),
        ("id = ANY($1)", &only),
    ] {
        if ids.is_empty() {
            continue;
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CANDIDATE_COLUMNS}, (SELECT MIN(q.due_at) FROM delivery_queue q WHERE q.webhook_id = webhooks.id), \
               (SELECT {} FROM webhook_secrets s WHERE s.webhook_id = webhooks.id) \
             FROM webhooks WHERE {which} AND deleted_at IS NULL",
            live_secrets!("$2")
        )))
        .bind(ids)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let candidate = rows::candidate(row)?;
            if !candidates.webhooks.iter().any(|c| c.id == candidate.id) {
                candidates.oldest_due.push(get(row, 9)?);
                candidates
                    .secrets
                    .push(get::<Option<Vec<Vec<u8>>>>(row, 10)?.unwrap_or_default());
                candidates.webhooks.push(candidate);
            }
        }
    }
    let index: HashMap<&WebhookId, usize> = candidates
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.id, i))
        .collect();
    let targets = events
        .iter()
        .map(|event| {
            crate::store::targets(event, &candidates.webhooks)
                .filter_map(|target| index.get(&target.id).copied())
                .collect()
        })
        .collect();
    Ok((candidates, targets))
}

/// The stored originals of the events not created, by (org, caller id).
async fn originals(
    tx: &mut sqlx::PgConnection,
    events: &[NewEvent],
    created: &[bool],
) -> Result<HashMap<(String, String), Event>, StoreError> {
    let (orgs, sources): (Vec<&str>, Vec<&str>) = events
        .iter()
        .zip(created)
        .filter(|(_, c)| !**c)
        .filter_map(|(e, _)| Some((e.org_id.as_str(), e.source_id.as_deref()?)))
        .unzip();
    let mut found = HashMap::new();
    if orgs.is_empty() {
        return Ok(found);
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (org_id, source_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    )))
    .bind(&orgs)
    .bind(&sources)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let event = event_from_row(row)?;
        let key = (
            event.org_id.as_str().to_owned(),
            event.source_id.clone().unwrap_or_default(),
        );
        found.insert(key, event);
    }
    Ok(found)
}

/// The deliveries of a batch, column by column for one `unnest` insert.
#[derive(Default)]
struct Deliveries<'a> {
    ids: Vec<String>,
    events: Vec<&'a str>,
    webhooks: Vec<&'a str>,
    orgs: Vec<&'a str>,
    types: Vec<&'a str>,
    due: Vec<Option<i64>>,
    created: Vec<i64>,
    fifo: Vec<bool>,
    tokens: Vec<Option<i64>>,
}

impl<'a> Deliveries<'a> {
    /// `lease`: leased at publish, until when and under which token.
    fn push(
        &mut self,
        id: String,
        event: &'a NewEvent,
        webhook: &'a Candidate,
        lease: Option<(Millis, i64)>,
    ) {
        self.fifo.push(webhook.ordering.is_fifo());
        self.ids.push(id);
        self.events.push(event.id.as_str());
        self.webhooks.push(webhook.id.as_str());
        self.orgs.push(event.org_id.as_str());
        self.types.push(&event.event_type);
        // Leased, it is due again when its lease runs out; a disabled webhook's deliveries
        // wait, parked, until it is enabled.
        self.due.push(
            lease
                .map(|(until, _)| until)
                .or(webhook.active.then_some(event.now)),
        );
        self.tokens.push(lease.map(|(_, token)| token));
        self.created.push(event.now);
    }

    /// Inserts them; the internal key (`seq`) of each leased one, by id.
    async fn insert(self, tx: &mut sqlx::PgConnection) -> Result<HashMap<String, i64>, StoreError> {
        if self.ids.is_empty() {
            return Ok(HashMap::new());
        }
        // The rows and their queue rows in one statement (one round trip). A FIFO webhook's
        // take the next place in its line; those of one batch share it, and their `delivery`
        // (given in the batch's order) keeps them in order.
        let leased = sqlx::query(
            "WITH stored AS (INSERT INTO deliveries (id, event_id, webhook_id, org_id, event_type, status, \
               created_at, updated_at) \
               SELECT d.id, d.event_id, d.webhook_id, d.org_id, d.event_type, 'pending', d.created, d.created \
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::bigint[]) \
               AS d(id, event_id, webhook_id, org_id, event_type, created) \
               RETURNING seq, id, webhook_id), \
             queued AS (INSERT INTO delivery_queue (delivery, webhook_id, due_at, claim_token, position) \
             SELECT s.seq, s.webhook_id, u.due, u.token, CASE WHEN u.fifo THEN (SELECT COALESCE(MAX(q.position), 0) + 1 \
               FROM delivery_queue q WHERE q.webhook_id = s.webhook_id AND q.position IS NOT NULL) END \
             FROM stored s JOIN unnest($1::text[], $6::bigint[], $8::bool[], $9::bigint[]) AS u(id, due, fifo, token) \
               ON u.id = s.id \
             RETURNING delivery, claim_token) \
             SELECT s.id, s.seq FROM stored s JOIN queued q ON q.delivery = s.seq WHERE q.claim_token IS NOT NULL",
        )
        .bind(&self.ids)
        .bind(&self.events)
        .bind(&self.webhooks)
        .bind(&self.orgs)
        .bind(&self.types)
        .bind(&self.due)
        .bind(&self.created)
        .bind(&self.fifo)
        .bind(&self.tokens)
        .fetch_all(tx)
        .await?;
        leased
            .iter()
            .map(|row| Ok((get::<String>(row, 0)?, get::<i64>(row, 1)?)))
            .collect()
    }
}
