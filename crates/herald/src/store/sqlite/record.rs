//! Recording attempts: the attempt row and the delivery's new state, and what it does to the
//! webhook (the failure clock, a 410).

use super::*;
use crate::domain::error_class::ErrorClass;

/// The start of the update of a recorded delivery's state (a macro, so that `concat!` can
/// build both statements as constants: the record runs one per attempt).
macro_rules! record_state_update {
    () => {
        "UPDATE deliveries SET attempt_count = attempt_count + 1, last_attempt_at = ?, \
         last_response_status = ?, last_error = ?, last_error_message = ?, updated_at = ?, \
         status = ?, next_attempt_at = ?, delivered_at = COALESCE(?, delivered_at), claim_token = NULL \
         WHERE id = ? AND "
    };
}

/// The update of a recorded delivery's state: to `delivered` whoever holds the lease (but
/// never out of `canceled`), to anything else only under our lease. `status <> 'canceled'`
/// rather than `status IN (…)`: see the status check's migration (0007) for what SQLite does
/// with a list.
pub(super) fn record_state_sql(delivered: bool) -> &'static str {
    if delivered {
        concat!(record_state_update!(), "status <> 'canceled'")
    } else {
        concat!(record_state_update!(), "status = 'pending' AND claim_token = ?")
    }
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
    let (status, next_at, delivered_at) = record.next.row_state(a);
    let delivered = matches!(record.next, Next::Delivered);
    let mut update = conn.prepare_cached(record_state_sql(delivered))?;
    let state = params![
        a.started_at,
        a.response_status,
        a.error.map(ErrorClass::as_str),
        a.error_message,
        now,
        status,
        next_at,
        delivered_at,
        a.delivery_id.as_str()
    ];
    let updated = if delivered {
        update.execute(state)?
    } else {
        let mut under_lease = state.to_vec();
        under_lease.push(&record.claim_token);
        update.execute(under_lease.as_slice())?
    };
    if updated == 0 {
        // Our lease ran out and someone else owns the delivery now: only the count moves.
        conn.prepare_cached("UPDATE deliveries SET attempt_count = attempt_count + 1 WHERE id = ?")?
            .execute([a.delivery_id.as_str()])?;
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
    Ok(if changed > 0 {
        WebhookEffect::Disabled(reason)
    } else {
        WebhookEffect::None
    })
}
