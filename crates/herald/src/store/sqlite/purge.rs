//! Retention and erasure on SQLite: one batch of an org's events at a time, each event
//! deleted with its deliveries and attempts through their indexes, never a table scan.

use super::*;

const SQL_EVENT_ATTEMPTS: &str =
    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?)";
const SQL_EVENT_QUEUE: &str =
    "DELETE FROM delivery_queue WHERE delivery IN (SELECT seq FROM deliveries WHERE event_id = ?)";
const SQL_EVENT_DELIVERIES: &str = "DELETE FROM deliveries WHERE event_id = ?";
const SQL_EVENT: &str = "DELETE FROM events WHERE id = ?";

/// One [`PurgeStep`] inside the writer's transaction.
pub(super) fn purge_in(conn: &Connection, step: &PurgeStep) -> Result<Purged, StoreError> {
    let scanned: Vec<(String, bool)> = conn
        .prepare_cached(sql::PURGE_SCAN)?
        .query_map(
            params![step.org.as_str(), step.after, step.before, step.limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
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
