//! Publishing: an event and its deliveries in the writer's transaction, fresh deliveries
//! leased to this process's engine where it grants them.

use super::*;

pub(super) const SQL_INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, event_id, webhook_id, org_id, event_type, \
     status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)";

/// A fresh delivery's queue row: `delivery`, `webhook_id`, `due_at` (its lease's end when
/// leased at once; NULL when its webhook is disabled), `claim_token`, `position` (a FIFO
/// webhook's place in line, else NULL).
pub(super) const SQL_QUEUE_FRESH: &str =
    "INSERT INTO delivery_queue (delivery, webhook_id, due_at, claim_token, position) VALUES (?, ?, ?, ?, ?)";

/// Stores one event and its deliveries in the writer's transaction. Deliveries leased under
/// the event's offer join `committed`, handed to the engine once the whole transaction
/// commits.
pub(super) fn publish_in(
    conn: &Connection,
    event: &NewEvent,
    cache: &WebhookCache,
    committed: &mut Committed,
) -> Result<Published, StoreError> {
    if let Some(source) = &event.source_id {
        let existing = conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE org_id = ? AND source_id = ?"
            ))?
            .query_row(params![event.org_id.as_str(), source], event_from_row)
            .optional()?;
        if let Some(existing) = existing {
            if existing.created_at >= event.dedup_after {
                return Ok(Published::Duplicate(existing));
            }
            conn.prepare_cached("UPDATE events SET source_id = NULL WHERE id = ?")?
                .execute([existing.id.as_str()])?;
        }
    }
    let candidates = cache.candidates(conn, &event.org_id)?;
    let targets: Vec<&Candidate> = targets(event, &candidates).collect();
    let count = i64::try_from(targets.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO events (id, org_id, event_type, payload, source_id, delivery_count, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        event.id.as_str(),
        event.org_id.as_str(),
        event.stored_type(),
        event.payload,
        event.source_id,
        count,
        event.now
    ])?;
    let mut insert = conn.prepare_cached(SQL_INSERT_DELIVERY)?;
    let mut queue = conn.prepare_cached(SQL_QUEUE_FRESH)?;
    for candidate in targets {
        let Candidate {
            id: webhook,
            active,
            url,
            headers,
            rate_limit,
            ordering,
            ..
        } = candidate;
        let active = *active;
        let id = DeliveryId::new();
        // A FIFO webhook's deliveries take their place in its line, and are claimed from
        // its head in turn: never leased here.
        let position: Option<i64> = if ordering.is_fifo() {
            Some(
                conn.prepare_cached(sql::NEXT_POSITION)?
                    .query_row([webhook.as_str()], |row| row.get(0))?,
            )
        } else {
            None
        };
        let lease = match &event.lease {
            Some(offer) => offer
                .lease_fresh(candidate, || {
                    fresh_may_pass_due(conn, webhook.as_str(), event.now)
                })?
                .map(|held| (offer.lease_until, claim_token(), held)),
            None => None,
        };
        committed.due_left |= active && lease.is_none();
        let due = lease
            .as_ref()
            .map(|(until, _, _)| *until)
            .or(active.then_some(event.now));
        insert.execute(params![
            id.as_str(),
            event.id.as_str(),
            webhook.as_str(),
            event.org_id.as_str(),
            event.event_type,
            event.now,
            event.now
        ])?;
        let seq = conn.last_insert_rowid();
        queue.execute(params![
            seq,
            webhook.as_str(),
            due,
            lease.as_ref().map(|(_, token, _)| *token),
            position
        ])?;
        if let Some((_, token, hold)) = lease {
            committed.leased.push(Claimed {
                seq,
                delivery_id: id,
                claim_token: token,
                event_id: event.id.clone(),
                secrets: cache.signing_secrets(conn, webhook.as_str(), event.now)?,
                lease: hold,
                webhook_id: webhook.clone(),
                url: url.clone(),
                headers: headers.clone(),
                payload: event.payload.clone(),
                attempt_count: 0,
                cycle_start: 0,
                rate_limit: *rate_limit,
            });
        }
    }
    Ok(Published::Created(event.clone().into_event(count)))
}

/// Tells the engine what a transaction of publishes stored, the moment it commits.
pub(super) fn hand_over(offer: Option<&LeaseOffer>, committed: Committed) -> Option<OnCommit> {
    match offer {
        Some(offer) if !committed.leased.is_empty() || committed.due_left => {
            let engine = Arc::clone(&offer.engine);
            Some(Box::new(move || {
                engine.committed(committed.leased, committed.due_left)
            }))
        }
        _ => None,
    }
}
