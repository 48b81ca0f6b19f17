//! Claiming due deliveries: the head of the due queue, each webhook's own range for those
//! the head did not reach, and leasing what a claim's budget allows.

use super::*;

/// A secret row: the sealed secret, its expiry, its order of creation.
pub(super) type SecretRow = (Vec<u8>, Option<Millis>, i64);

/// A webhook's secret rows, the current one first, then the newest.
pub(super) fn secret_rows(conn: &Connection, webhook: &str) -> Result<Vec<SecretRow>, StoreError> {
    // Ordered here (a webhook has a handful of secret rows at most): with an ORDER BY in SQL,
    // SQLite prepared the statement again on every run.
    let mut rows = conn
        .prepare_cached(SQL_SIGNING_SECRETS)?
        .query_map([webhook], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<Vec<SecretRow>, _>>()?;
    rows.sort_by_key(|(_, expires, seq)| (expires.is_some(), std::cmp::Reverse(*seq)));
    Ok(rows)
}

/// Of `rows` (see [`secret_rows`]), the sealed secrets that sign at `now`, in their order.
/// Filtered here rather than in SQL, where the expiry test on a parameter made SQLite
/// prepare the statement again on every run.
pub(super) fn live_secrets(rows: &[SecretRow], now: Millis) -> Vec<Vec<u8>> {
    rows.iter()
        .filter(|(_, expires, _)| !matches!(expires, Some(expires) if *expires <= now))
        .map(|(ciphertext, _, _)| ciphertext.clone())
        .collect()
}

/// Due deliveries of each webhook with room, oldest first across webhooks: webhook after
/// webhook through `delivery_queue_by_webhook`, skipping from one webhook to the next in the index,
/// so a full webhook's backlog is never read.
pub(super) fn due_per_webhook(
    conn: &Connection,
    budget: &ClaimBudget,
    controls: &Controls,
    now: Millis,
) -> Result<Vec<(i64, String)>, StoreError> {
    let mut next_webhook = conn.prepare_cached(SQL_NEXT_PENDING_WEBHOOK)?;
    let mut due = conn.prepare_cached(SQL_DUE_OF_WEBHOOK)?;
    let mut found: Vec<(Millis, i64, String)> = Vec::new();
    let mut after = String::new();
    while let Some(webhook) = next_webhook.query_row([&after], |row| row.get::<_, Option<String>>(0))? {
        let room = budget.room(&webhook);
        if room > 0 && !controls.fifo.contains(&webhook) {
            for row in due
                .query_map(params![webhook, now], |row| Ok((row.get(0)?, row.get(1)?)))?
                .take(room)
            {
                let (at, seq) = row?;
                found.push((at, seq, webhook.clone()));
            }
        }
        after = webhook;
    }
    found.sort_unstable_by_key(|(at, seq, _)| (*at, *seq));
    Ok(found
        .into_iter()
        .map(|(_, seq, webhook)| (seq, webhook))
        .collect())
}

// The statements that claims, leases at publish and signatures run for every delivery.
// SQLite prepares a statement again on every run when its plan read a bound value, and perf
// found it doing so at a quarter of the writer's time: for a bound LIMIT, an expiry test on a
// parameter, an ORDER BY beside an equality on the index, and the join of webhooks and
// events. These are written around it (results cut short, filtered and ordered in Rust), and
// `hot_statements_are_prepared_once_whatever_their_parameters` holds them to it.

pub(super) const SQL_DUE_HEAD: &str = "SELECT delivery, webhook_id FROM delivery_queue INDEXED BY delivery_queue_due \
     WHERE due_at <= ? ORDER BY due_at";

pub(super) const SQL_NEXT_PENDING_WEBHOOK: &str = "SELECT MIN(webhook_id) FROM delivery_queue INDEXED BY delivery_queue_by_webhook \
     WHERE webhook_id > ?";

/// No ORDER BY: with it SQLite prepares the statement again on every run. The forced index
/// and the equality on its first column make the scan come out in `due_at` order anyway (and
/// every row it returns is due, whatever the order).
pub(super) const SQL_DUE_OF_WEBHOOK: &str = "SELECT due_at, delivery FROM delivery_queue INDEXED BY delivery_queue_by_webhook \
     WHERE webhook_id = ? AND due_at <= ?";

pub(super) const SQL_DUE_WAITING: &str = "SELECT EXISTS (SELECT 1 FROM delivery_queue INDEXED BY delivery_queue_by_webhook \
     WHERE webhook_id = ? AND due_at <= ?)";

/// Read before the lease rather than by `RETURNING`: SQLite gathers returned rows in a
/// temporary table, opened and dropped on every run.
pub(super) const SQL_LEASE_READ: &str = "SELECT id, event_id, webhook_id, attempt_count, cycle_start, \
     (SELECT url FROM webhooks WHERE id = d.webhook_id), (SELECT payload FROM events WHERE id = d.event_id), \
     (SELECT headers FROM webhooks WHERE id = d.webhook_id), \
     (SELECT rate_limit FROM webhooks WHERE id = d.webhook_id) \
     FROM deliveries d WHERE seq = ?";

/// The webhooks with delivery controls, for a claim (a handful, through their partial index).
pub(super) fn controls(conn: &Connection) -> Result<Controls, StoreError> {
    let rows = conn
        .prepare_cached(sql::CONTROLLED)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Controls::from_rows(rows)
}

/// Each FIFO webhook's head, where it is due: the first of its line
/// (`delivery_queue_fifo`, in place order), whatever else of it is due. A head that is
/// leased, waiting for a retry or parked holds the whole line.
pub(super) fn fifo_heads(
    conn: &Connection,
    controls: &Controls,
    now: Millis,
) -> Result<Vec<(i64, String)>, StoreError> {
    let mut head = conn.prepare_cached(SQL_FIFO_HEAD)?;
    let mut due = Vec::new();
    for webhook in &controls.fifo {
        let first = head
            .query_map([webhook], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<Millis>>(1)?))
            })?
            .next()
            .transpose()?;
        if let Some((delivery, Some(at))) = first
            && at <= now
        {
            due.push((delivery, webhook.clone()));
        }
    }
    Ok(due)
}

/// No ORDER BY, as for [`SQL_DUE_OF_WEBHOOK`]: the forced index returns the line in order.
pub(super) const SQL_FIFO_HEAD: &str = "SELECT delivery, due_at FROM delivery_queue INDEXED BY delivery_queue_fifo \
     WHERE webhook_id = ? AND position IS NOT NULL";

pub(super) const SQL_SIGNING_SECRETS: &str =
    "SELECT ciphertext, expires_at, seq FROM webhook_secrets WHERE webhook_id = ?";

/// The oldest due deliveries, at most a claim's head of them.
pub(super) fn due_head(conn: &Connection, now: Millis) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(conn
        .prepare_cached(SQL_DUE_HEAD)?
        .query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?
        .take(ClaimBudget::HEAD)
        .collect::<Result<_, _>>()?)
}

/// Whether a fresh delivery of `webhook` may be leased in its publish ([`fresh_may_pass`]),
/// or waits its turn behind the webhook's due deliveries. A claim here is cheap (the writer's
/// own statements), so fresh deliveries pass no due one: passing them for 50 ms cost 7 % of
/// the closed-loop throughput (four pairs) and tripled its median latency.
pub(super) fn fresh_may_pass_due(conn: &Connection, webhook: &str, now: Millis) -> Result<bool, StoreError> {
    // With no window, whether one is due is all that counts, not since when.
    let due_waiting: bool = conn
        .prepare_cached(SQL_DUE_WAITING)?
        .query_row(params![webhook, now], |row| row.get(0))?;
    Ok(fresh_may_pass(due_waiting.then_some(now), now, 0))
}

/// Leases the chosen rows and reads what their attempts need.
pub(super) fn lease_claims(
    conn: &Connection,
    request: &ClaimRequest,
    chosen: Vec<i64>,
    cache: &WebhookCache,
) -> Result<Vec<Claimed>, StoreError> {
    let mut read = conn.prepare_cached(SQL_LEASE_READ)?;
    let mut lease = conn.prepare_cached(sql::LEASE)?;
    let mut claimed = Vec::with_capacity(chosen.len());
    for seq in chosen {
        let token = claim_token();
        let (
            delivery_id,
            event_id,
            webhook_id,
            attempt_count,
            cycle_start,
            url,
            payload,
            headers,
            rate_limit,
        ) = read.query_row([seq], |row| {
            let (id, event): (String, String) = (row.get(0)?, row.get(1)?);
            Ok((
                DeliveryId::parse(&id).ok_or_else(|| corrupt(0, "delivery id"))?,
                EventId::parse(&event).ok_or_else(|| corrupt(1, "event id"))?,
                webhook_id_at(row, 2)?,
                row.get(3)?,
                row.get(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<Vec<u8>>>(7)?,
                rows::stored_rate_limit(row, 8)?,
            ))
        })?;
        lease.execute(params![request.lease_until, token, seq])?;
        claimed.push(Claimed {
            seq,
            delivery_id,
            claim_token: token,
            event_id,
            secrets: cache.signing_secrets(conn, webhook_id.as_str(), request.now)?,
            lease: request.leases.hold(&webhook_id),
            webhook_id,
            url,
            headers,
            payload,
            attempt_count,
            cycle_start,
            rate_limit,
        });
    }
    Ok(claimed)
}
