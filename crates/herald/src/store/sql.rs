//! SQL that reads the same on both backends, written once with `?` placeholders (SQLite's);
//! PostgreSQL's `$1, $2, …` are made from it by [`numbered`]. Statements whose text differs
//! (upserts, `unnest` batches, locking clauses) stay with their backend.

/// Holds a disabled webhook's pending deliveries until it is enabled again: `webhook_id`.
pub const PARK: &str = "UPDATE delivery_queue SET due_at = NULL, claim_token = NULL WHERE webhook_id = ?";
/// Makes a re-enabled webhook's parked deliveries due: `now`, `webhook_id`.
pub const UNPARK: &str = "UPDATE delivery_queue SET due_at = ? WHERE webhook_id = ? AND due_at IS NULL";
/// `now`, `webhook_id`, `now` less a second: written at most once a second per webhook.
pub const LAST_TRIGGERED: &str = "UPDATE webhooks SET last_triggered_at = ? WHERE id = ? AND (last_triggered_at IS NULL OR last_triggered_at < ?)";
/// [`LAST_TRIGGERED`] and [`CLEAR_FAILING`] in one statement, for a backend where each
/// statement is a round trip (a batch's first success usually needs both): `now` less a
/// second, `now`, `webhook_id`, `now` less a second.
pub const LAST_TRIGGERED_CLEAR_FAILING: &str = "UPDATE webhooks SET last_triggered_at = CASE \
     WHEN last_triggered_at IS NULL OR last_triggered_at < ? THEN ? ELSE last_triggered_at END, \
     failing_since = NULL WHERE id = ? AND (failing_since IS NOT NULL OR last_triggered_at IS NULL OR last_triggered_at < ?)";
/// A success stops the failure clock: `webhook_id`.
pub const CLEAR_FAILING: &str =
    "UPDATE webhooks SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL";
/// A failure starts the clock unless it runs already; returns when it started: `started_at`,
/// `webhook_id`.
pub const START_FAILING: &str =
    "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ? RETURNING failing_since";
/// `reason`, `now`, `webhook_id`; changes nothing on a webhook already disabled.
pub const DISABLE_WEBHOOK: &str = "UPDATE webhooks SET status = 'disabled', disabled_reason = ?, updated_at = ? WHERE id = ? AND status = 'active'";

/// Operational events (API.md section 11) are written by the state change they announce, in
/// its transaction, and published later by the announcer (`crate::announcements`). None is
/// written for a delivery of an operational event: they never beget more of themselves.
///
/// A webhook disabled by a record: `id`, `reason` (`gone`, `failing`), `now`, `webhook_id`,
/// the recorded delivery's `seq`.
pub const ANNOUNCE_DISABLED: &str = "INSERT INTO announcements (id, event_type, org_id, webhook_id, url, reason, at) \
     SELECT ?, 'webhook.disabled', w.org_id, w.id, w.url, ?, ? FROM webhooks w WHERE w.id = ? \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = ? \
       AND d.event_type IN ('webhook.disabled', 'webhook.enabled', 'delivery.failed'))";
/// A disabled webhook enabled again: `id`, `now`, `webhook_id`.
pub const ANNOUNCE_ENABLED: &str = "INSERT INTO announcements (id, event_type, org_id, webhook_id, url, at) \
     SELECT ?, 'webhook.enabled', org_id, id, url, ? FROM webhooks WHERE id = ?";
/// A delivery failed after its last retry, as its row reads once recorded: `id`, `now`, `seq`.
pub const ANNOUNCE_FAILED: &str = "INSERT INTO announcements (id, event_type, org_id, webhook_id, url, at, \
     delivery_id, event_id, delivery_event_type, attempts, last_error, last_response_status) \
     SELECT ?, 'delivery.failed', d.org_id, d.webhook_id, w.url, ?, d.id, d.event_id, d.event_type, \
       d.attempt_count, d.last_error, d.last_response_status \
     FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.seq = ? \
     AND d.event_type NOT IN ('webhook.disabled', 'webhook.enabled', 'delivery.failed')";
/// The oldest announcements first: `limit`.
pub const ANNOUNCEMENTS: &str = "SELECT id, event_type, org_id, webhook_id, url, at, reason, delivery_id, event_id, \
     delivery_event_type, attempts, last_error, last_response_status FROM announcements ORDER BY id LIMIT ?";
/// A published announcement: `id`.
pub const FORGET_ANNOUNCEMENT: &str = "DELETE FROM announcements WHERE id = ?";
/// The operator's org, while it lives.
pub const OPERATOR_ORG: &str =
    "SELECT o.org_id FROM operator_org o JOIN orgs ON orgs.id = o.org_id WHERE orgs.erased_at IS NULL";
/// The first start's org is the operator's: `org_id`.
pub const MARK_OPERATOR_ORG: &str = "INSERT INTO operator_org (org_id) VALUES (?)";

/// The steps of recording an attempt (see [`crate::store::QueueStep`]).
///
/// The delivery's new state, unless it was canceled meanwhile: `last_attempt_at`,
/// `last_response_status`, `last_error`, `last_error_message`, `now`, `status`,
/// `delivered_at`, `seq`.
pub const RECORD_STATE: &str = "UPDATE deliveries SET attempt_count = attempt_count + 1, last_attempt_at = ?, last_response_status = ?, last_error = ?, last_error_message = ?, updated_at = ?, status = ?, delivered_at = COALESCE(?, delivered_at) WHERE seq = ? AND status <> 'canceled'";
/// An attempt whose lease ran out before it was recorded is counted, nothing more: `seq`.
pub const COUNT_ATTEMPT: &str = "UPDATE deliveries SET attempt_count = attempt_count + 1 WHERE seq = ?";
/// Delivered: out of the queue whoever holds the lease: `seq`.
pub const DEQUEUE: &str = "DELETE FROM delivery_queue WHERE delivery = ?";
/// Failed for good, under our lease: `seq`, `claim_token`.
pub const DEQUEUE_LEASED: &str = "DELETE FROM delivery_queue WHERE delivery = ? AND claim_token = ?";
/// Due again at `due_at` (NULL: parked), under our lease: `due_at`, `seq`, `claim_token`.
pub const REQUEUE_LEASED: &str =
    "UPDATE delivery_queue SET due_at = ?, claim_token = NULL WHERE delivery = ? AND claim_token = ?";
/// A lease taken by a claim: `due_at` (the lease's end), `claim_token`, `seq`.
pub const LEASE: &str = "UPDATE delivery_queue SET due_at = ?, claim_token = ? WHERE delivery = ?";

/// Whether the database has been set up (the first start makes an org).
pub const ANY_ORG: &str = "SELECT EXISTS(SELECT 1 FROM orgs)";
/// A deleted webhook's pending deliveries end `canceled`: `now`, `webhook_id`; then
/// [`DEQUEUE_WEBHOOK`] takes them out of the queue.
pub const CANCEL_PENDING: &str = "UPDATE deliveries SET status = 'canceled', updated_at = ? WHERE seq IN (SELECT delivery FROM delivery_queue WHERE webhook_id = ?)";
/// `webhook_id`.
pub const DEQUEUE_WEBHOOK: &str = "DELETE FROM delivery_queue WHERE webhook_id = ?";
/// `status`, sealed `body`, `key_id`, `key`.
pub const COMPLETE_IDEMPOTENCY_KEY: &str =
    "UPDATE idempotency_keys SET status = ?, body = ? WHERE key_id = ? AND key = ?";
/// `webhook_id`, `now`.
pub const DELETE_EXPIRED_SECRETS: &str =
    "DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at <= ?";
/// Every secret of a webhook (a rotation that keeps no old one): `webhook_id`.
pub const DELETE_SECRETS: &str = "DELETE FROM webhook_secrets WHERE webhook_id = ?";
/// `token_hash`.
pub const DELETE_SESSION: &str = "DELETE FROM dashboard_sessions WHERE token_hash = ?";
/// A rotation sets the current secret to expire: `expires_at`, `webhook_id`.
pub const EXPIRE_CURRENT_SECRET: &str =
    "UPDATE webhook_secrets SET expires_at = ? WHERE webhook_id = ? AND expires_at IS NULL";
/// `id`, `org_id`, `role`, `secret_hash`, `name`, `created_at`.
pub const INSERT_API_KEY: &str =
    "INSERT INTO api_keys (id, org_id, role, secret_hash, name, created_at) VALUES (?, ?, ?, ?, ?, ?)";
/// `id`, `name`, `retention_ms`, `created_at`.
pub const INSERT_ORG: &str = "INSERT INTO orgs (id, name, retention_ms, created_at) VALUES (?, ?, ?, ?)";
/// `name`, `retention_ms`, `id`.
pub const UPDATE_ORG: &str = "UPDATE orgs SET name = ?, retention_ms = ? WHERE id = ? AND erased_at IS NULL";
/// `now`, `id`.
pub const ERASE_ORG: &str = "UPDATE orgs SET erased_at = ? WHERE id = ? AND erased_at IS NULL";
/// Every live key of an erased org: `now`, `org_id`.
pub const REVOKE_ORG_KEYS: &str =
    "UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND revoked_at IS NULL";
/// The dashboard sessions of an erased org, and of its keys elsewhere: `org_id`, `org_id`.
pub const DELETE_ORG_SESSIONS: &str =
    "DELETE FROM dashboard_sessions WHERE org_id = ? OR key_id IN (SELECT id FROM api_keys WHERE org_id = ?)";
/// An erased org's pending deliveries end `canceled`: `now`, `org_id`; then
/// [`DEQUEUE_ORG`] takes them out of the queue, so nothing of it is sent again.
pub const CANCEL_ORG_PENDING: &str = "UPDATE deliveries SET status = 'canceled', updated_at = ? WHERE seq IN (SELECT delivery FROM delivery_queue WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?))";
/// `org_id`.
pub const DEQUEUE_ORG: &str =
    "DELETE FROM delivery_queue WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?)";
/// The role of a live key: `id`.
pub const LIVE_KEY_ROLE: &str = "SELECT role FROM api_keys WHERE id = ? AND revoked_at IS NULL";
/// Live admin keys other than `id`.
pub const OTHER_LIVE_ADMINS: &str =
    "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL AND id <> ?";
/// `now`, `id`.
pub const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";
/// `used_at`, `id`, `used_at` less [`super::KEY_USE_RESOLUTION_MS`]: at most once a minute.
pub const TOUCH_KEY: &str =
    "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)";
/// Live orgs only: an erased org is gone for every route.
pub const LIVE_ORGS: &str = "FROM orgs WHERE erased_at IS NULL";
/// Live keys only: a revoked key is gone for every route.
pub const LIVE_KEYS: &str = "FROM api_keys WHERE revoked_at IS NULL";

/// ` AND {column} NOT IN (erased orgs)`: every by-id lookup of an org's objects carries it,
/// so an erased org's webhooks, events and deliveries answer 404 before the purger is done.
pub fn in_live_org(column: &str) -> String {
    format!(" AND {column} NOT IN (SELECT id FROM orgs WHERE erased_at IS NOT NULL)")
}
/// `webhook_id`, `ciphertext`, `created_at`.
pub const INSERT_SECRET: &str =
    "INSERT INTO webhook_secrets (webhook_id, ciphertext, created_at) VALUES (?, ?, ?)";
/// `token_hash`, `key_id`, `org_id`, `created_at`, `expires_at`.
pub const INSERT_SESSION: &str = "INSERT INTO dashboard_sessions (token_hash, key_id, org_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)";
/// `id`, `org_id`, `name`, `description`, `url`, `event_types`, `secret_last4`, `created_at`,
/// `updated_at`, `filter`, `headers`, `rate_limit`, `ordering`.
pub const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (id, org_id, name, description, url, status, event_types, secret_last4, created_at, updated_at, filter, headers, rate_limit, ordering) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)";
/// The webhooks with delivery controls a claim heeds (a rate limit, FIFO order):
/// `id`, `rate_limit`, `ordering`.
pub const CONTROLLED: &str =
    "SELECT id, rate_limit, ordering FROM webhooks WHERE rate_limit IS NOT NULL OR ordering = 'fifo'";
/// The next place in a FIFO webhook's line, behind every delivery pending there: `webhook_id`.
pub const NEXT_POSITION: &str =
    "SELECT COALESCE(MAX(position), 0) + 1 FROM delivery_queue WHERE webhook_id = ? AND position IS NOT NULL";
/// Turning FIFO on lines a webhook's pending deliveries up in acceptance order: `webhook_id`.
pub const LINE_UP: &str =
    "UPDATE delivery_queue SET position = delivery WHERE webhook_id = ? AND position IS NULL";
/// Turning FIFO off: `webhook_id`.
pub const UNLINE: &str =
    "UPDATE delivery_queue SET position = NULL WHERE webhook_id = ? AND position IS NOT NULL";
/// A webhook's sealed secrets that sign at `now`, the current one first: `webhook_id`, `now`.
pub const LIVE_SECRETS: &str = "SELECT ciphertext, expires_at FROM webhook_secrets WHERE webhook_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY expires_at IS NOT NULL, seq DESC";
/// When the next pending delivery is due (a lease's end included).
pub const NEXT_DUE_AT: &str = "SELECT MIN(due_at) FROM delivery_queue";
/// Readiness: the database answers.
pub const PING: &str = "SELECT 1";
/// Readiness after a refused write: a write that changes nothing but still goes to disk (the
/// row is rewritten), so a full or read-only database refuses it.
pub const WRITE_PROBE: &str = "UPDATE orgs SET name = name WHERE id = (SELECT MIN(id) FROM orgs)";
/// Records older than the 24 h window: `before`.
pub const PURGE_IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at < ?";
/// Every org: `id`, `retention_ms`, `erased_at`.
pub const ORG_LIFECYCLES: &str = "SELECT id, retention_ms, erased_at FROM orgs";

/// One batch of an org's events, oldest first, each with whether a delivery of it is still
/// pending (retention keeps those): `org_id`, `after`, `before`, `limit`. A macro so that
/// PostgreSQL can append its row locks.
macro_rules! purge_scan {
    () => {
        "SELECT e.id, EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
         FROM events e WHERE e.org_id = ? AND e.id > ? AND e.id < ? ORDER BY e.id LIMIT ?"
    };
}
pub(crate) use purge_scan;
pub const PURGE_SCAN: &str = purge_scan!();

/// The last of an erased org, once its events are gone, in an order its foreign keys allow;
/// each takes the `org_id` once. A session of another org's admin that was looking at it
/// goes back to its own org.
pub const FORGET_ORG: &[&str] = &[
    "DELETE FROM attempt_minutes WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?)",
    "DELETE FROM attempt_20min WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?)",
    "DELETE FROM webhook_minutes WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?)",
    "DELETE FROM webhook_secrets WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = ?)",
    "DELETE FROM webhooks WHERE org_id = ?",
    "DELETE FROM portal_links WHERE org_id = ?",
    "DELETE FROM idempotency_keys WHERE key_id IN (SELECT id FROM api_keys WHERE org_id = ?)",
    "DELETE FROM dashboard_sessions WHERE key_id IN (SELECT id FROM api_keys WHERE org_id = ?)",
    "UPDATE dashboard_sessions SET org_id = (SELECT k.org_id FROM api_keys k WHERE k.id = dashboard_sessions.key_id) \
     WHERE org_id = ?",
    "DELETE FROM api_keys WHERE org_id = ?",
    "DELETE FROM orgs WHERE id = ?",
];
/// Dashboard sessions expired before `now`.
pub const PURGE_SESSIONS: &str = "DELETE FROM dashboard_sessions WHERE expires_at < ?";
/// Portal links expired before `now`.
pub const PURGE_PORTAL_LINKS: &str = "DELETE FROM portal_links WHERE expires_at < ?";
/// `token_hash`, `org_id`, `read_only`, `theme`, `created_at`, `expires_at`.
pub const INSERT_PORTAL_LINK: &str = "INSERT INTO portal_links (token_hash, org_id, read_only, theme, created_at, expires_at) \
     VALUES (?, ?, ?, ?, ?, ?)";
/// A portal link that still opens: not expired at `now`, its org not erased: `token_hash`,
/// `now`. Columns as [`super::rows::portal_link`] reads them.
pub const PORTAL_LINK: &str = "SELECT l.org_id, l.read_only, l.theme, l.created_at, l.expires_at FROM portal_links l \
     JOIN orgs o ON o.id = l.org_id WHERE l.token_hash = ? AND l.expires_at > ? AND o.erased_at IS NULL";
/// Pending deliveries, how many of them are due at `now` (a leased one is due when its lease
/// ends; a parked one never), and the oldest one's creation (`seq` grows with time, so the
/// lowest queued one is the oldest, found without reading every queued delivery's row).
pub const QUEUE_STATS: &str = "SELECT COUNT(*), COUNT(CASE WHEN due_at <= ? THEN 1 END), \
     (SELECT created_at FROM deliveries WHERE seq = (SELECT MIN(delivery) FROM delivery_queue)) FROM delivery_queue";
/// Frees an unfinished claim for a retry: `key_id`, `key`.
pub const RELEASE_IDEMPOTENCY_KEY: &str =
    "DELETE FROM idempotency_keys WHERE key_id = ? AND key = ? AND status IS NULL";
/// A replay queues a webhook's failed deliveries created in `[since, until)` (then
/// [`REPLAY_FAILED`] makes them pending), on a FIFO webhook behind what is pending there, in
/// their own order: `due`, `webhook_id` (three times), `since`, `until`.
pub const QUEUE_FAILED: &str = "INSERT INTO delivery_queue (delivery, webhook_id, due_at, position) \
     SELECT seq, webhook_id, ?, CASE WHEN (SELECT ordering FROM webhooks WHERE id = ?) = 'fifo' \
       THEN (SELECT COALESCE(MAX(position), 0) FROM delivery_queue WHERE webhook_id = ? AND position IS NOT NULL) + seq END \
     FROM deliveries WHERE webhook_id = ? AND status = 'failed' AND created_at >= ? AND created_at < ?";
/// With a fresh retry cycle: `now`, `webhook_id`, `since`, `until`.
pub const REPLAY_FAILED: &str = "UPDATE deliveries SET status = 'pending', cycle_start = attempt_count, updated_at = ? WHERE webhook_id = ? AND status = 'failed' AND created_at >= ? AND created_at < ?";
/// A manual retry, with a fresh retry cycle: `now`, `seq`; then [`QUEUE_DELIVERY`].
pub const REQUEUE_DELIVERY: &str =
    "UPDATE deliveries SET status = 'pending', cycle_start = attempt_count, updated_at = ? WHERE seq = ?";
/// Queues a delivery due at `due_at`, taking back any lease on it, on a FIFO webhook at the end
/// of its line: `seq`, `due_at`, `webhook_id`.
pub const QUEUE_DELIVERY: &str = "INSERT INTO delivery_queue (delivery, webhook_id, due_at, position) \
     SELECT ?, w.id, ?, CASE WHEN w.ordering = 'fifo' THEN (SELECT COALESCE(MAX(q.position), 0) + 1 \
       FROM delivery_queue q WHERE q.webhook_id = w.id AND q.position IS NOT NULL) END FROM webhooks w WHERE w.id = ? \
     ON CONFLICT (delivery) DO UPDATE SET due_at = excluded.due_at, claim_token = NULL, position = excluded.position";
/// `secret_last4`, `now`, `webhook_id`.
pub const SET_SECRET_LAST4: &str = "UPDATE webhooks SET secret_last4 = ?, updated_at = ? WHERE id = ?";
/// An admin's session switches org: `org_id`, `token_hash`.
pub const SET_SESSION_ORG: &str = "UPDATE dashboard_sessions SET org_id = ? WHERE token_hash = ?";

/// Adds one key's attempts to the charts' rollup: `webhook_id`, `minute`, `outcome`,
/// `latency_class`, `attempts` (see [`crate::store::rollup`]).
pub const ADD_ATTEMPT_MINUTE: &str = "INSERT INTO attempt_minutes (webhook_id, minute, outcome, latency_class, attempts) \
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (webhook_id, minute, outcome, latency_class) \
     DO UPDATE SET attempts = attempt_minutes.attempts + excluded.attempts";
/// [`ADD_ATTEMPT_MINUTE`] per 20 minutes (`minute`: the period's first).
pub const ADD_ATTEMPT_20MIN: &str = "INSERT INTO attempt_20min (webhook_id, minute, outcome, latency_class, attempts) \
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (webhook_id, minute, outcome, latency_class) \
     DO UPDATE SET attempts = attempt_20min.attempts + excluded.attempts";
/// Adds one webhook-minute's ended deliveries, and keeps its latest answer: `webhook_id`,
/// `minute`, `delivered`, `failed`, `last_attempt_at`, `last_response_status`, `last_error`.
pub const ADD_WEBHOOK_MINUTE: &str = "INSERT INTO webhook_minutes (webhook_id, minute, delivered, failed, \
     last_attempt_at, last_response_status, last_error) VALUES (?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (webhook_id, minute) DO UPDATE SET delivered = webhook_minutes.delivered + excluded.delivered, \
     failed = webhook_minutes.failed + excluded.failed, \
     last_response_status = CASE WHEN excluded.last_attempt_at >= webhook_minutes.last_attempt_at \
       THEN excluded.last_response_status ELSE webhook_minutes.last_response_status END, \
     last_error = CASE WHEN excluded.last_attempt_at >= webhook_minutes.last_attempt_at \
       THEN excluded.last_error ELSE webhook_minutes.last_error END, \
     last_attempt_at = CASE WHEN excluded.last_attempt_at >= webhook_minutes.last_attempt_at \
       THEN excluded.last_attempt_at ELSE webhook_minutes.last_attempt_at END";
/// The charts' counts from a rollup table, of an org or (`AND w.id = ?`) one webhook.
macro_rules! attempt_counts {
    ($table:literal, $webhook:literal) => {
        concat!(
            "SELECT (m.minute * 60000 - ?) / ?, m.outcome, m.latency_class, CAST(SUM(m.attempts) AS BIGINT) \
             FROM webhooks w JOIN ",
            $table,
            " m ON m.webhook_id = w.id WHERE w.org_id = ? AND m.minute >= ?",
            $webhook,
            " GROUP BY 1, 2, 3"
        )
    };
}
/// The charts' counts of an org from the rollup: `since`, `bucket_ms`, `org_id`, first minute.
/// Webhooks deleted since still count (their rows keep their org). Indexed by
/// [`crate::store::rollup::Resolution`]; the `WEBHOOK_` ones take `webhook_id` too.
pub const ATTEMPT_COUNTS: [&str; 2] = [
    attempt_counts!("attempt_minutes", ""),
    attempt_counts!("attempt_20min", ""),
];
pub const WEBHOOK_ATTEMPT_COUNTS: [&str; 2] = [
    attempt_counts!("attempt_minutes", " AND w.id = ?"),
    attempt_counts!("attempt_20min", " AND w.id = ?"),
];
/// Pending deliveries per webhook of an org, now (the queue holds exactly those): `org_id`.
pub const PENDING_BY_WEBHOOK: &str = "SELECT q.webhook_id, COUNT(*) FROM webhooks w \
     JOIN delivery_queue q ON q.webhook_id = w.id WHERE w.org_id = ? GROUP BY q.webhook_id";
/// Rollup rows from before a minute, which no page shows: `minute`.
pub const PURGE_ROLLUPS: &[&str] = &[
    "DELETE FROM attempt_minutes WHERE minute < ?",
    "DELETE FROM attempt_20min WHERE minute < ?",
    "DELETE FROM webhook_minutes WHERE minute < ?",
];

/// `sql` with each `?` outside quotes numbered for PostgreSQL (`$1`, `$2`, …).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes_only() {
        assert_eq!(
            numbered("UPDATE t SET a = ?, b = '?' WHERE c = ? AND d = 'x'"),
            "UPDATE t SET a = $1, b = '?' WHERE c = $2 AND d = 'x'"
        );
        assert_eq!(
            numbered(UNPARK),
            "UPDATE delivery_queue SET due_at = $1 WHERE webhook_id = $2 AND due_at IS NULL"
        );
    }
}
