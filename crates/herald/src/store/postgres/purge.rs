//! Retention and erasure on PostgreSQL: one batch of an org's events at a time, locked with
//! `SKIP LOCKED` so that several nodes purging at once take different events and never wait
//! for each other; each batch deleted with its deliveries and attempts in one statement.

use std::sync::LazyLock;

use sqlx::{AssertSqlSafe, PgPool, Row as _};

use crate::store::sql::{numbered, purge_scan};
use crate::store::{PurgeStep, Purged, StoreError};

static SCAN: LazyLock<String> =
    LazyLock::new(|| numbered(concat!(purge_scan!(), " FOR UPDATE OF e SKIP LOCKED")));

/// Every data-modifying part sees the same snapshot, so the deliveries' ids are still there
/// for the attempts and the queue while the deliveries go.
const DELETE: &str = "WITH attempts_gone AS (DELETE FROM attempts WHERE delivery_id IN \
       (SELECT id FROM deliveries WHERE event_id = ANY($1)) RETURNING 1), \
     queue_gone AS (DELETE FROM delivery_queue WHERE delivery IN \
       (SELECT seq FROM deliveries WHERE event_id = ANY($1)) RETURNING 1), \
     deliveries_gone AS (DELETE FROM deliveries WHERE event_id = ANY($1) RETURNING 1), \
     events_gone AS (DELETE FROM events WHERE id = ANY($1) RETURNING 1) \
     SELECT (SELECT count(*) FROM events_gone), (SELECT count(*) FROM deliveries_gone), \
       (SELECT count(*) FROM attempts_gone), (SELECT count(*) FROM queue_gone)";

pub(super) async fn purge(pool: &PgPool, step: &PurgeStep) -> Result<Purged, StoreError> {
    let mut tx = pool.begin().await?;
    let scanned = sqlx::query(AssertSqlSafe(SCAN.as_str()))
        .bind(step.org.as_str())
        .bind(&step.after)
        .bind(&step.before)
        .bind(i64::from(step.limit))
        .fetch_all(&mut *tx)
        .await?;
    let mut purged = Purged {
        examined: scanned.len(),
        ..Purged::default()
    };
    let mut going = Vec::with_capacity(scanned.len());
    for row in &scanned {
        let (id, pending): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
        if !(pending && step.keep_pending) {
            going.push(id.clone());
        }
        purged.last = Some(id);
    }
    if !going.is_empty() {
        let counts = sqlx::query(DELETE).bind(&going).fetch_one(&mut *tx).await?;
        let count = |i: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(counts.try_get::<i64, _>(i)?).unwrap_or(0))
        };
        purged.events = count(0)?;
        purged.deliveries = count(1)?;
        purged.attempts = count(2)?;
    }
    tx.commit().await?;
    Ok(purged)
}
