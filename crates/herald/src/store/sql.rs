//! SQL that reads the same on both backends, written once with `?` placeholders (SQLite's);
//! PostgreSQL's `$1, $2, …` are made from it by [`numbered`]. Statements whose text differs
//! (upserts, `unnest` batches, locking clauses) stay with their backend.

/// Holds a disabled webhook's pending deliveries until it is enabled again: `webhook_id`.
pub const PARK: &str = "UPDATE deliveries SET next_attempt_at = NULL, claim_token = NULL WHERE webhook_id = ? AND status = 'pending'";
/// Makes a re-enabled webhook's parked deliveries due: `now`, `webhook_id`.
pub const UNPARK: &str = "UPDATE deliveries SET next_attempt_at = ? WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at IS NULL";
/// `now`, `webhook_id`, `now` less a second: written at most once a second per webhook.
pub const LAST_TRIGGERED: &str = "UPDATE webhooks SET last_triggered_at = ? WHERE id = ? AND (last_triggered_at IS NULL OR last_triggered_at < ?)";
/// A success stops the failure clock: `webhook_id`.
pub const CLEAR_FAILING: &str =
    "UPDATE webhooks SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL";
/// A failure starts the clock unless it runs already; returns when it started: `started_at`,
/// `webhook_id`.
pub const START_FAILING: &str =
    "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ? RETURNING failing_since";
/// `reason`, `now`, `webhook_id`; changes nothing on a webhook already disabled.
pub const DISABLE_WEBHOOK: &str = "UPDATE webhooks SET status = 'disabled', disabled_reason = ?, updated_at = ? WHERE id = ? AND status = 'active'";

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
            numbered(PARK),
            "UPDATE deliveries SET next_attempt_at = NULL, claim_token = NULL WHERE webhook_id = $1 AND status = 'pending'"
        );
    }
}
