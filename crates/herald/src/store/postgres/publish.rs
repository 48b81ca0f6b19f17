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

use super::{Announcer, EVENT_COLUMNS, event_from_row};
use crate::domain::ids::DeliveryId;
use sqlx::AssertSqlSafe;

use crate::store::rows::{self, CANDIDATE_COLUMNS};
use crate::store::{Candidate, Event, LeaseOffer, NewEvent, Published, StoreError};

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
        let stored = insert(&self.pool, &events).await?;
        let offer = events.iter().find_map(|event| event.lease.clone());
        let published: Vec<Published> = events.into_iter().zip(stored).map(answer).collect();
        if published.iter().any(made_deliveries) {
            committed(&self.announcer, offer.as_ref());
        }
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
    let stored = match insert(&pool, &events).await {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(e) if events.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut each = Vec::with_capacity(events.len());
            for event in &events {
                let alone = insert(&pool, std::slice::from_ref(event)).await;
                each.push(alone.and_then(|done| {
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
    if results.iter().flatten().any(made_deliveries) {
        committed(&announcer, offer.as_ref());
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

fn made_deliveries(published: &Published) -> bool {
    matches!(published, Published::Created(event) if event.delivery_count > 0)
}

/// After a commit that made deliveries due: this node's engine is told at once, the other
/// nodes through `NOTIFY`. Fresh deliveries are not leased at publish here (see [`answer`]),
/// so the engine only learns that a claim will find work.
fn committed(announcer: &Announcer, offer: Option<&LeaseOffer>) {
    if let Some(offer) = offer {
        offer.engine.committed(Vec::new(), true);
    }
    announcer.due();
}

/// The answer for one stored event. Fresh deliveries are claimed like any other here. Leased
/// at publish, as on SQLite, they were not handed over in the closed-loop benchmark (the
/// webhook nearly always had due work waiting), which only added a query per batch: see
/// docs/PERFORMANCE.md, changelog, round 6 (the notes: `git show ba57ba0:docs/PERFORMANCE.md`).
fn answer((event, stored): (NewEvent, Stored)) -> Published {
    match stored {
        Stored::Created(count) => Published::Created(event.into_event(count)),
        Stored::Duplicate(original) => Published::Duplicate(original),
    }
}

/// A webhook a publish may deliver to: its id and whether it is active (a test send goes to
/// a disabled one too, parked until it is enabled).
/// A webhook an event goes to: its id, whether it is active, whether it is FIFO.
type Target = (String, bool, bool);

/// What a batch did with one event.
enum Stored {
    /// Stored with this many deliveries.
    Created(i64),
    /// The caller's id was seen within the window (perhaps by another node just now, or
    /// earlier in this batch): every duplicate answers with the original.
    Duplicate(Event),
}

/// Stores `events` in one transaction; one answer per event, in order.
///
/// Its statements run with generic plans: PostgreSQL otherwise re-planned the webhook lookup
/// (`org_id = ANY($1)`) for every batch, ≈ 90 µs each, a twentieth of the database's time in
/// a throughput run; its generic plan is the same index scan.
async fn insert(pool: &sqlx::PgPool, events: &[NewEvent]) -> Result<Vec<Stored>, StoreError> {
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    free_stale_source_ids(&mut tx, events).await?;
    let targets = targets(&mut tx, events).await?;
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
    let mut deliveries = Deliveries::default();
    for ((event, targets), _) in events.iter().zip(&targets).zip(&created).filter(|(_, c)| **c) {
        for (webhook, active, fifo) in targets {
            deliveries.push(event, webhook, *active, *fifo);
        }
    }
    deliveries.insert(&mut tx).await?;
    let originals = originals(&mut tx, events, &created).await?;
    tx.commit().await?;
    events
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
        .collect()
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

/// Each event's webhooks: its org's active subscribers, or the one webhook of a test send.
async fn targets(tx: &mut sqlx::PgConnection, events: &[NewEvent]) -> Result<Vec<Vec<Target>>, StoreError> {
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
    // Every webhook any event of the batch may go to, once each.
    let mut candidates: Vec<Candidate> = Vec::new();
    if !orgs.is_empty() {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CANDIDATE_COLUMNS} FROM webhooks WHERE org_id = ANY($1) AND status = 'active' AND deleted_at IS NULL"
        )))
        .bind(&orgs)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            candidates.push(rows::candidate(row)?);
        }
    }
    if !only.is_empty() {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CANDIDATE_COLUMNS} FROM webhooks WHERE id = ANY($1) AND deleted_at IS NULL"
        )))
        .bind(&only)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let tested = rows::candidate(row)?;
            if !candidates.iter().any(|c| c.id == tested.id) {
                candidates.push(tested);
            }
        }
    }
    Ok(events
        .iter()
        .map(|event| {
            crate::store::targets(event, &candidates)
                .map(|c| (c.id.as_str().to_owned(), c.active, c.ordering.is_fifo()))
                .collect()
        })
        .collect())
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
}

impl<'a> Deliveries<'a> {
    fn push(&mut self, event: &'a NewEvent, webhook: &'a str, active: bool, fifo: bool) {
        self.fifo.push(fifo);
        self.ids.push(DeliveryId::new().to_string());
        self.events.push(event.id.as_str());
        self.webhooks.push(webhook);
        self.orgs.push(event.org_id.as_str());
        self.types.push(&event.event_type);
        // A disabled webhook's deliveries wait, parked, until it is enabled.
        self.due.push(active.then_some(event.now));
        self.created.push(event.now);
    }

    async fn insert(self, tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        // The rows and their queue rows in one statement (one round trip). A FIFO webhook's
        // take the next place in its line; those of one batch share it, and their `delivery`
        // (given in the batch's order) keeps them in order.
        sqlx::query(
            "WITH stored AS (INSERT INTO deliveries (id, event_id, webhook_id, org_id, event_type, status, \
               created_at, updated_at) \
               SELECT d.id, d.event_id, d.webhook_id, d.org_id, d.event_type, 'pending', d.created, d.created \
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::bigint[]) \
               AS d(id, event_id, webhook_id, org_id, event_type, created) \
               RETURNING seq, id, webhook_id) \
             INSERT INTO delivery_queue (delivery, webhook_id, due_at, position) \
             SELECT s.seq, s.webhook_id, u.due, CASE WHEN u.fifo THEN (SELECT COALESCE(MAX(q.position), 0) + 1 \
               FROM delivery_queue q WHERE q.webhook_id = s.webhook_id AND q.position IS NOT NULL) END \
             FROM stored s JOIN unnest($1::text[], $6::bigint[], $8::bool[]) AS u(id, due, fifo) ON u.id = s.id",
        )
        .bind(&self.ids)
        .bind(&self.events)
        .bind(&self.webhooks)
        .bind(&self.orgs)
        .bind(&self.types)
        .bind(&self.due)
        .bind(&self.created)
        .bind(&self.fifo)
        .execute(tx)
        .await?;
        Ok(())
    }
}
