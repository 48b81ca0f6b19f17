//! Recording attempts: the attempt row and the delivery's new state, and what it does to the
//! webhook (the failure clock, a 410).

use super::*;
use crate::domain::error_class::ErrorClass;
use crate::store::rollup::Rollup;

/// Adds a batch's attempts to the dashboard's rollups: one upsert per key of the batch.
pub(super) fn add_rollup(conn: &Connection, records: &[AttemptRecord]) -> Result<(), StoreError> {
    let rollup = Rollup::of(records);
    let mut add = conn.prepare_cached(sql::ADD_ATTEMPT_MINUTE)?;
    for (key, attempts) in &rollup.attempts {
        add.execute(params![
            key.webhook_id,
            key.minute,
            key.outcome,
            key.latency_class,
            attempts
        ])?;
    }
    let mut add = conn.prepare_cached(sql::ADD_ATTEMPT_20MIN)?;
    for (key, attempts) in &rollup.coarse {
        add.execute(params![
            key.webhook_id,
            key.minute,
            key.outcome,
            key.latency_class,
            attempts
        ])?;
    }
    let mut add = conn.prepare_cached(sql::ADD_WEBHOOK_MINUTE)?;
    for ((webhook, minute), row) in &rollup.webhooks {
        add.execute(params![
            webhook,
            minute,
            row.delivered,
            row.failed,
            row.last_attempt_at,
            row.last_response_status,
            row.last_error.map(ErrorClass::as_str)
        ])?;
    }
    Ok(())
}

/// One attempt and its delivery's new state, inside the caller's transaction.
pub(super) fn record_one(
    conn: &Connection,
    record: &AttemptRecord,
    writes: WebhookWrites,
) -> Result<WebhookEffect, StoreError> {
    let a = &record.attempt;
    let now = record.now;
    conn.prepare_cached(
        "INSERT INTO attempts (id, delivery_id, attempt_number, started_at, duration_ms, response_status, \
         response_body, response_body_truncated, error, error_message, signature) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        a.id.as_str(),
        a.delivery_id.as_str(),
        a.attempt_number,
        a.started_at,
        a.duration_ms,
        a.response_status,
        a.response_body,
        i64::from(a.response_body_truncated),
        a.error.map(ErrorClass::as_str),
        a.error_message,
        a.signature
    ])?;
    // The attempt happened whatever the lease says; the state changes only while we
    // hold the lease (or to `delivered`, which is true whoever holds it).
    let seq = record.seq;
    let step = record.next.queue_step();
    let queued = match step {
        QueueStep::Dequeue => conn.prepare_cached(sql::DEQUEUE)?.execute([seq])?,
        QueueStep::DequeueLeased => conn
            .prepare_cached(sql::DEQUEUE_LEASED)?
            .execute(params![seq, record.claim_token])?,
        QueueStep::RequeueLeased(due) => {
            conn.prepare_cached(sql::REQUEUE_LEASED)?
                .execute(params![due, seq, record.claim_token])?
        }
    };
    let updated = if queued > 0 || !step.needs_lease() {
        let (status, delivered_at) = record.next.row_state(a);
        conn.prepare_cached(sql::RECORD_STATE)?.execute(params![
            a.started_at,
            a.response_status,
            a.error.map(ErrorClass::as_str),
            a.error_message,
            now,
            status,
            delivered_at,
            seq
        ])?
    } else {
        0
    };
    if updated > 0 && record.next == Next::Failed {
        conn.prepare_cached(sql::ANNOUNCE_FAILED)?
            .execute(params![new_announcement_id(), now, seq])?;
    }
    if updated == 0 {
        // Our lease ran out and someone else owns the delivery now (or it was canceled):
        // only the count moves.
        conn.prepare_cached(sql::COUNT_ATTEMPT)?.execute([seq])?;
    }

    let webhook = record.webhook_id.as_str();
    if writes.last_triggered {
        conn.prepare_cached(sql::LAST_TRIGGERED)?
            .execute(params![now, webhook, now - 1000])?;
    }
    let disable = match record.clock_change(writes) {
        ClockChange::None => None,
        ClockChange::Clear => {
            conn.prepare_cached(sql::CLEAR_FAILING)?.execute([webhook])?;
            None
        }
        ClockChange::Disable(reason) => Some(reason),
        ClockChange::Start(at) => {
            let since: Option<Millis> = conn
                .prepare_cached(sql::START_FAILING)?
                .query_row(params![at, webhook], |row| row.get(0))
                .optional()?
                .flatten();
            record.failing_too_long(since)
        }
    };
    let Some(reason) = disable else {
        return Ok(WebhookEffect::None);
    };
    let changed = conn
        .prepare_cached(sql::DISABLE_WEBHOOK)?
        .execute(params![reason, now, webhook])?;
    park(conn, &record.webhook_id)?;
    if changed > 0 {
        conn.prepare_cached(sql::ANNOUNCE_DISABLED)?.execute(params![
            new_announcement_id(),
            record.disabled_reason_code(),
            now,
            webhook,
            seq
        ])?;
    }
    Ok(if changed > 0 {
        WebhookEffect::Disabled(reason)
    } else {
        WebhookEffect::None
    })
}
