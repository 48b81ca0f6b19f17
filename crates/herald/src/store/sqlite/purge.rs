//! Retention and erasure on SQLite: one batch of an org's events at a time, each event
//! deleted with its deliveries and attempts through their indexes, never a table scan.

use super::*;

const SQL_EVENT_ATTEMPTS: &str =
    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?)";
const SQL_EVENT_QUEUE: &str =
    "DELETE FROM delivery_queue WHERE delivery IN (SELECT seq FROM deliveries WHERE event_id = ?)";
const SQL_EVENT_DELIVERIES: &str = "DELETE FROM deliveries WHERE event_id = ?";
const SQL_EVENT: &str = "DELETE FROM events WHERE id = ?";

/// The events a step looks at, each with whether a delivery of it is pending.
pub(super) fn scan(conn: &Connection, step: &PurgeStep) -> Result<Vec<(String, bool)>, StoreError> {
    Ok(conn
        .prepare_cached(sql::PURGE_SCAN)?
        .query_map(
            params![step.org.as_str(), step.after, step.before, step.limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?)
}

/// What a step that deletes nothing reports, when `scanned` holds nothing it may delete:
/// then it need not take the writer (most steps, on an org with nothing aged).
pub(super) fn nothing_to_delete(step: &PurgeStep, scanned: &[(String, bool)]) -> Option<Purged> {
    scanned
        .iter()
        .all(|(_, pending)| *pending && step.keep_pending)
        .then(|| Purged {
            last: scanned.last().map(|(id, _)| id.clone()),
            examined: scanned.len(),
            ..Purged::default()
        })
}

/// One [`PurgeStep`] inside the writer's transaction.
pub(super) fn purge_in(conn: &Connection, step: &PurgeStep) -> Result<Purged, StoreError> {
    let scanned = scan(conn, step)?;
    let mut purged = Purged {
        last: scanned.last().map(|(id, _)| id.clone()),
        examined: scanned.len(),
        ..Purged::default()
    };
    let mut attempts = conn.prepare_cached(SQL_EVENT_ATTEMPTS)?;
    let mut queue = conn.prepare_cached(SQL_EVENT_QUEUE)?;
    let mut deliveries = conn.prepare_cached(SQL_EVENT_DELIVERIES)?;
    let mut event = conn.prepare_cached(SQL_EVENT)?;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    for (id, pending) in scanned {
        if pending && step.keep_pending {
            continue;
        }
        purged.attempts += count(attempts.execute([&id])?);
        if pending {
            queue.execute([&id])?;
        }
        purged.deliveries += count(deliveries.execute([&id])?);
        purged.events += count(event.execute([&id])?);
    }
    Ok(purged)
}
