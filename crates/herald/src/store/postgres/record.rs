//! Finished attempts on PostgreSQL, a batch at a time: one statement inserts the attempts and
//! updates their deliveries and queue rows, one adds them to the rollups, then whatever the
//! webhooks need (rare: a first success of the batch, a failure, a disable).
//!
//! Row by row, a batch of 64 successes cost 130 round trips on one connection, and the
//! engine holds each delivery's slot until its record is written, so those round trips set
//! the delivery rate.

use std::collections::HashSet;

use sqlx::PgConnection;

use sqlx::AssertSqlSafe;

use super::{park, shared_sql};
use crate::domain::error_class::ErrorClass;
use crate::domain::time::Millis;
use crate::store::rollup::Rollup;
use crate::store::{
    AttemptRecord, BatchWebhooks, ClockChange, Next, QueueStep, StoreError, WebhookEffect, WebhookWrites,
    new_announcement_id,
};

/// Writes `records` in the caller's transaction; one effect per record, in order.
pub(super) async fn write(
    tx: &mut PgConnection,
    records: &[AttemptRecord],
) -> Result<Vec<WebhookEffect>, StoreError> {
    let mut effects = Vec::with_capacity(records.len());
    let mut batch = BatchWebhooks::default();
    for run in runs(records) {
        let stated = store_run(tx, run).await?;
        for record in run {
            if record.next == Next::Failed && stated.contains(&record.seq) {
                sqlx::query(shared_sql!(ANNOUNCE_FAILED))
                    .bind(new_announcement_id())
                    .bind(record.now)
                    .bind(record.seq)
                    .execute(&mut *tx)
                    .await?;
            }
            effects.push(webhook(tx, record, batch.writes_for(record)).await?);
        }
    }
    add_rollup(tx, records).await?;
    Ok(effects)
}

/// Adds the batch's attempts to the dashboard's rollups, the three tables in one statement
/// (one round trip): a multi-row upsert per table, each key once (one statement may not
/// change a row twice), in key order.
async fn add_rollup(tx: &mut PgConnection, records: &[AttemptRecord]) -> Result<(), StoreError> {
    let rollup = Rollup::of(records);
    let (fine, coarse) = (rollup.attempts.keys(), rollup.coarse.keys());
    let rows = || rollup.webhooks.iter();
    sqlx::query(
        "WITH fine AS (INSERT INTO attempt_minutes (webhook_id, minute, outcome, latency_class, attempts) \
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) \
           ON CONFLICT (webhook_id, minute, outcome, latency_class) \
           DO UPDATE SET attempts = attempt_minutes.attempts + excluded.attempts), \
         coarse AS (INSERT INTO attempt_20min (webhook_id, minute, outcome, latency_class, attempts) \
           SELECT * FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) \
           ON CONFLICT (webhook_id, minute, outcome, latency_class) \
           DO UPDATE SET attempts = attempt_20min.attempts + excluded.attempts) \
         INSERT INTO webhook_minutes (webhook_id, minute, delivered, failed, last_attempt_at, \
         last_response_status, last_error) \
         SELECT * FROM unnest($11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], \
         $16::bigint[], $17::text[]) \
         ON CONFLICT (webhook_id, minute) DO UPDATE SET delivered = webhook_minutes.delivered + excluded.delivered, \
         failed = webhook_minutes.failed + excluded.failed, \
         last_response_status = CASE WHEN excluded.last_attempt_at >= webhook_minutes.last_attempt_at \
           THEN excluded.last_response_status ELSE webhook_minutes.last_response_status END, \
         last_error = CASE WHEN excluded.last_attempt_at >= webhook_minutes.last_attempt_at \
           THEN excluded.last_error ELSE webhook_minutes.last_error END, \
         last_attempt_at = GREATEST(excluded.last_attempt_at, webhook_minutes.last_attempt_at)",
    )
    .bind(fine.clone().map(|k| k.webhook_id).collect::<Vec<_>>())
    .bind(fine.clone().map(|k| k.minute).collect::<Vec<_>>())
    .bind(fine.clone().map(|k| k.outcome).collect::<Vec<_>>())
    .bind(fine.map(|k| k.latency_class).collect::<Vec<_>>())
    .bind(rollup.attempts.values().copied().collect::<Vec<_>>())
    .bind(coarse.clone().map(|k| k.webhook_id).collect::<Vec<_>>())
    .bind(coarse.clone().map(|k| k.minute).collect::<Vec<_>>())
    .bind(coarse.clone().map(|k| k.outcome).collect::<Vec<_>>())
    .bind(coarse.map(|k| k.latency_class).collect::<Vec<_>>())
    .bind(rollup.coarse.values().copied().collect::<Vec<_>>())
    .bind(rows().map(|((w, _), _)| *w).collect::<Vec<_>>())
    .bind(rows().map(|((_, m), _)| *m).collect::<Vec<_>>())
    .bind(rows().map(|(_, r)| r.delivered).collect::<Vec<_>>())
    .bind(rows().map(|(_, r)| r.failed).collect::<Vec<_>>())
    .bind(rows().map(|(_, r)| r.last_attempt_at).collect::<Vec<_>>())
    .bind(rows().map(|(_, r)| r.last_response_status).collect::<Vec<_>>())
    .bind(rows().map(|(_, r)| r.last_error.map(ErrorClass::as_str)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `records` cut where a delivery repeats: one `UPDATE … FROM` changes a row once, however
/// many of its source rows match, and a delivery may (rarely) be recorded twice in a batch,
/// its lease having run out and been claimed again.
fn runs(records: &[AttemptRecord]) -> Vec<&[AttemptRecord]> {
    let mut runs = Vec::new();
    let mut seen = HashSet::new();
    let mut start = 0;
    for (i, record) in records.iter().enumerate() {
        if !seen.insert(record.seq) {
            runs.push(&records[start..i]);
            seen.clear();
            seen.insert(record.seq);
            start = i;
        }
    }
    if start < records.len() {
        runs.push(&records[start..]);
    }
    runs
}

/// The run's attempts, and each delivery's queue row and new state, in one statement. As on SQLite (see
/// [`QueueStep`]), the state changes only under our lease, or to `delivered`, and never out
/// of `canceled`; otherwise only the attempt is counted. No column an index holds changes,
/// so the delivery's new row version is a heap-only tuple when its page has room. Returns
/// the deliveries whose state changed.
async fn store_run(tx: &mut PgConnection, run: &[AttemptRecord]) -> Result<HashSet<i64>, StoreError> {
    // In delivery order, the order in which a change to a whole webhook's queue locks its rows
    // (see `lock_queue`): the two then cannot deadlock. (A run holds each delivery once.)
    let mut sorted: Vec<&AttemptRecord> = run.iter().collect();
    sorted.sort_unstable_by_key(|r| r.seq);
    let run = sorted;
    let states: Vec<(&str, Option<Millis>)> = run.iter().map(|r| r.next.row_state(&r.attempt)).collect();
    let steps: Vec<(i16, Option<Millis>)> = run
        .iter()
        .map(|r| match r.next.queue_step() {
            QueueStep::Dequeue => (0, None),
            QueueStep::DequeueLeased => (1, None),
            QueueStep::RequeueLeased(due) => (2, due),
        })
        .collect();
    sqlx::query(
        "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
           $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::smallint[], $11::bigint[], $12::text[], \
           $13::text[], $14::bigint[], $15::bigint[], $16::text[], $17::bool[], $18::text[]) \
           AS r(seq, started_at, response_status, error, error_message, now, status, delivered_at, token, step, due, \
             attempt_id, delivery_id, attempt_number, duration_ms, response_body, response_body_truncated, signature)), \
         tried AS (INSERT INTO attempts (id, delivery_id, attempt_number, started_at, duration_ms, response_status, \
           response_body, response_body_truncated, error, error_message, signature) \
           SELECT attempt_id, delivery_id, attempt_number, started_at, duration_ms, response_status, \
             response_body, response_body_truncated, error, error_message, signature FROM r), \
         gone AS (DELETE FROM delivery_queue q USING r WHERE q.delivery = r.seq AND r.step < 2 \
           AND (r.step = 0 OR q.claim_token = r.token) RETURNING q.delivery), \
         moved AS (UPDATE delivery_queue q SET due_at = r.due, claim_token = NULL FROM r \
           WHERE q.delivery = r.seq AND r.step = 2 AND q.claim_token = r.token RETURNING q.delivery), \
         ours AS (SELECT seq FROM r WHERE step = 0 UNION ALL SELECT delivery FROM gone \
           UNION ALL SELECT delivery FROM moved), \
         stated AS (UPDATE deliveries d SET attempt_count = d.attempt_count + 1, last_attempt_at = r.started_at, \
           last_response_status = r.response_status, last_error = r.error, last_error_message = r.error_message, \
           updated_at = r.now, status = r.status, delivered_at = COALESCE(r.delivered_at, d.delivered_at) \
           FROM r WHERE d.seq = r.seq AND r.seq IN (SELECT seq FROM ours) AND d.status <> 'canceled' \
           RETURNING d.seq), \
         counted AS (UPDATE deliveries d SET attempt_count = d.attempt_count + 1 FROM r \
           WHERE d.seq = r.seq AND r.seq NOT IN (SELECT seq FROM stated)) \
         SELECT seq FROM stated",
    )
    .bind(run.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.started_at).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.response_status).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.error.map(ErrorClass::as_str)).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.error_message.as_deref()).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.now).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.claim_token).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.id.as_str()).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.delivery_id.as_str()).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.attempt_number).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.duration_ms).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.response_body.as_deref()).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.response_body_truncated).collect::<Vec<_>>())
    .bind(run.iter().map(|r| r.attempt.signature.as_deref()).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?
    .iter()
    .map(|row| super::get(row, 0))
    .collect()
}

/// What one record does to its webhook: when it was last triggered, its failure clock, and
/// perhaps disabling it (which parks its pending deliveries).
async fn webhook(
    tx: &mut PgConnection,
    record: &AttemptRecord,
    writes: WebhookWrites,
) -> Result<WebhookEffect, StoreError> {
    let now = record.now;
    let webhook = record.webhook_id.as_str();
    let clock = record.clock_change(writes);
    // A batch's first success usually both touches and clears: one round trip for the two.
    let touched_and_cleared = writes.last_triggered && clock == ClockChange::Clear;
    if touched_and_cleared {
        sqlx::query(shared_sql!(LAST_TRIGGERED_CLEAR_FAILING))
            .bind(now - 1000)
            .bind(now)
            .bind(webhook)
            .bind(now - 1000)
            .execute(&mut *tx)
            .await?;
    } else if writes.last_triggered {
        sqlx::query(shared_sql!(LAST_TRIGGERED))
            .bind(now)
            .bind(webhook)
            .bind(now - 1000)
            .execute(&mut *tx)
            .await?;
    }
    let disable = match clock {
        ClockChange::None => None,
        ClockChange::Clear => {
            if !touched_and_cleared {
                sqlx::query(shared_sql!(CLEAR_FAILING))
                    .bind(webhook)
                    .execute(&mut *tx)
                    .await?;
            }
            None
        }
        ClockChange::Disable(reason) => Some(reason),
        ClockChange::Start(at) => {
            let since: Option<Option<Millis>> = sqlx::query_scalar(shared_sql!(START_FAILING))
                .bind(at)
                .bind(webhook)
                .fetch_optional(&mut *tx)
                .await?;
            record.failing_too_long(since.flatten())
        }
    };
    let Some(reason) = disable else {
        return Ok(WebhookEffect::None);
    };
    let changed = sqlx::query(shared_sql!(DISABLE_WEBHOOK))
        .bind(&reason)
        .bind(now)
        .bind(webhook)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    park(tx, &record.webhook_id).await?;
    if changed > 0 {
        sqlx::query(shared_sql!(ANNOUNCE_DISABLED))
            .bind(new_announcement_id())
            .bind(record.disabled_reason_code())
            .bind(now)
            .bind(webhook)
            .bind(record.seq)
            .execute(&mut *tx)
            .await?;
    }
    Ok(if changed > 0 {
        WebhookEffect::Disabled(reason)
    } else {
        WebhookEffect::None
    })
}
