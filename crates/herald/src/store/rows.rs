//! Rows to domain types, written once for both backends. A backend reads a column through
//! [`Columns`] (rusqlite's row, sqlx's row); the column lists both dialects select, and the
//! rules of turning them into values (an id must parse, a status must be known, a delivery
//! shows `next_attempt_at` only while pending), live here.

use super::{
    Announcement, ApiKey, Attempt, Candidate, Delivery, DeliveryStatus, Event, FailedDelivery, Org,
    OrgLifecycle, PortalLink, Role, Session, Webhook, WebhookStatus,
};
use crate::domain::error_class::ErrorClass;
use crate::domain::event_types::Subscription;
use crate::domain::filter::Filter;
use crate::domain::ids::{AttemptId, DeliveryId, EventId, KeyId, OrgId, WebhookId};
use crate::domain::ordering::DeliveryOrder;
use crate::domain::rate_limit::RateLimit;

/// One result row, column by column, in a backend's own error type.
pub trait Columns {
    type Error;

    fn text(&self, column: usize) -> Result<String, Self::Error>;
    fn text_opt(&self, column: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, column: usize) -> Result<i64, Self::Error>;
    fn int_opt(&self, column: usize) -> Result<Option<i64>, Self::Error>;
    fn bytes(&self, column: usize) -> Result<Vec<u8>, Self::Error>;
    fn bytes_opt(&self, column: usize) -> Result<Option<Vec<u8>>, Self::Error>;
    /// A boolean: `BOOLEAN` on PostgreSQL, an integer on SQLite.
    fn flag(&self, column: usize) -> Result<bool, Self::Error>;
    /// The error for a stored value that does not parse.
    fn corrupt(&self, column: usize, what: &str) -> Self::Error;
}

/// An attempt's error class in `column`, if any.
pub fn error_class<R: Columns + ?Sized>(row: &R, column: usize) -> Result<Option<ErrorClass>, R::Error> {
    row.text_opt(column)?
        .map(|name| ErrorClass::parse(&name).ok_or_else(|| row.corrupt(column, "error class")))
        .transpose()
}

/// The text in `column`, parsed by `parse`, or the row is corrupt.
fn parsed<R: Columns + ?Sized, T>(
    row: &R,
    column: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, R::Error> {
    parse(&row.text(column)?).ok_or_else(|| row.corrupt(column, what))
}

/// The columns of [`super::sql::ANNOUNCEMENTS`].
pub fn announcement<R: Columns + ?Sized>(row: &R) -> Result<Announcement, R::Error> {
    let failed = match row.text_opt(7)? {
        None => None,
        Some(delivery) => Some(FailedDelivery {
            delivery_id: DeliveryId::parse(&delivery).ok_or_else(|| row.corrupt(7, "delivery id"))?,
            event_id: parsed(row, 8, "event id", EventId::parse)?,
            event_type: row.text(9)?,
            attempts: row.int(10)?,
            last_error: error_class(row, 11)?,
            last_response_status: row.int_opt(12)?,
        }),
    };
    Ok(Announcement {
        id: row.text(0)?,
        event_type: row.text(1)?,
        org_id: parsed(row, 2, "org id", OrgId::parse)?,
        webhook_id: parsed(row, 3, "webhook id", WebhookId::parse)?,
        url: row.text(4)?,
        at: row.int(5)?,
        reason: row.text_opt(6)?,
        failed,
    })
}

pub const ORG_COLUMNS: &str = "id, name, created_at, retention_ms";

pub fn org<R: Columns + ?Sized>(row: &R) -> Result<Org, R::Error> {
    Ok(Org {
        id: parsed(row, 0, "org id", OrgId::parse)?,
        name: row.text(1)?,
        created_at: row.int(2)?,
        retention_ms: row.int_opt(3)?,
    })
}

/// A row of [`super::sql::ORG_LIFECYCLES`].
pub fn org_lifecycle<R: Columns + ?Sized>(row: &R) -> Result<OrgLifecycle, R::Error> {
    Ok(OrgLifecycle {
        id: parsed(row, 0, "org id", OrgId::parse)?,
        retention_ms: row.int_opt(1)?,
        erased_at: row.int_opt(2)?,
    })
}

pub const WEBHOOK_COLUMNS: &str = "id, org_id, name, description, url, status, disabled_reason, \
     event_types, secret_last4, last_triggered_at, created_at, updated_at, filter, headers, rate_limit, ordering";

pub fn webhook<R: Columns + ?Sized>(row: &R) -> Result<Webhook, R::Error> {
    let event_types = row
        .text_opt(7)?
        .map(|json| serde_json::from_str(&json).map_err(|_| row.corrupt(7, "event types")))
        .transpose()?;
    let filter = stored_filter(row, 12)?;
    Ok(Webhook {
        id: parsed(row, 0, "webhook id", WebhookId::parse)?,
        org_id: parsed(row, 1, "org id", OrgId::parse)?,
        name: row.text_opt(2)?,
        description: row.text_opt(3)?,
        url: row.text(4)?,
        status: parsed(row, 5, "status", WebhookStatus::parse)?,
        disabled_reason: row.text_opt(6)?,
        event_types,
        filter,
        headers_ciphertext: row.bytes_opt(13)?,
        rate_limit: stored_rate_limit(row, 14)?,
        ordering: parsed(row, 15, "ordering", DeliveryOrder::from_name)?,
        secret_last4: row.text(8)?,
        last_triggered_at: row.int_opt(9)?,
        created_at: row.int(10)?,
        updated_at: row.int(11)?,
    })
}

pub const EVENT_COLUMNS: &str = "id, org_id, event_type, payload, source_id, delivery_count, created_at";

pub fn event<R: Columns + ?Sized>(row: &R) -> Result<Event, R::Error> {
    Ok(Event {
        id: parsed(row, 0, "event id", EventId::parse)?,
        org_id: parsed(row, 1, "org id", OrgId::parse)?,
        event_type: row.text(2)?,
        payload: row.text(3)?,
        source_id: row.text_opt(4)?,
        delivery_count: row.int(5)?,
        created_at: row.int(6)?,
    })
}

/// A delivery with its event's payload and its queue row: see [`DELIVERY_FROM`].
pub const DELIVERY_COLUMNS: &str = "d.id, d.event_id, d.webhook_id, d.org_id, d.event_type, d.status, d.attempt_count, \
     q.due_at, d.last_attempt_at, d.last_response_status, d.last_error, d.last_error_message, \
     d.delivered_at, e.payload, d.created_at, d.updated_at";

/// `d` is `deliveries`, `e` its event, `q` its queue row (while pending); a macro, so that a
/// backend can `concat!` its own clauses to it.
macro_rules! delivery_from {
    () => {
        "FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN delivery_queue q ON q.delivery = d.seq"
    };
}
pub(crate) use delivery_from;

pub const DELIVERY_FROM: &str = delivery_from!();

/// A delivery. Its queued `due_at` is also a lease's end while an attempt is in flight.
pub fn delivery<R: Columns + ?Sized>(row: &R) -> Result<Delivery, R::Error> {
    let status = parsed(row, 5, "delivery status", DeliveryStatus::parse)?;
    Ok(Delivery {
        id: parsed(row, 0, "delivery id", DeliveryId::parse)?,
        event_id: parsed(row, 1, "event id", EventId::parse)?,
        webhook_id: parsed(row, 2, "webhook id", WebhookId::parse)?,
        org_id: parsed(row, 3, "org id", OrgId::parse)?,
        event_type: row.text(4)?,
        status,
        attempt_count: row.int(6)?,
        next_attempt_at: row.int_opt(7)?.filter(|_| status == DeliveryStatus::Pending),
        last_attempt_at: row.int_opt(8)?,
        last_response_status: row.int_opt(9)?,
        last_error: error_class(row, 10)?,
        last_error_message: row.text_opt(11)?,
        delivered_at: row.int_opt(12)?,
        payload: row.text(13)?,
        created_at: row.int(14)?,
        updated_at: row.int(15)?,
    })
}

pub const ATTEMPT_COLUMNS: &str = "id, delivery_id, attempt_number, started_at, duration_ms, response_status, \
     response_body, response_body_truncated, error, error_message, signature";

pub fn attempt<R: Columns + ?Sized>(row: &R) -> Result<Attempt, R::Error> {
    Ok(Attempt {
        id: parsed(row, 0, "attempt id", AttemptId::parse)?,
        delivery_id: parsed(row, 1, "delivery id", DeliveryId::parse)?,
        attempt_number: row.int(2)?,
        started_at: row.int(3)?,
        duration_ms: row.int(4)?,
        response_status: row.int_opt(5)?,
        response_body: row.text_opt(6)?,
        response_body_truncated: row.flag(7)?,
        error: error_class(row, 8)?,
        error_message: row.text_opt(9)?,
        signature: row.text_opt(10)?,
    })
}

pub const API_KEY_COLUMNS: &str = "id, org_id, role, secret_hash, name, created_at, last_used_at";

pub fn api_key<R: Columns + ?Sized>(row: &R) -> Result<ApiKey, R::Error> {
    Ok(ApiKey {
        id: parsed(row, 0, "key id", KeyId::parse)?,
        org_id: parsed(row, 1, "org id", OrgId::parse)?,
        role: parsed(row, 2, "role", Role::parse)?,
        secret_hash: row.bytes(3)?,
        name: row.text_opt(4)?,
        created_at: row.int(5)?,
        last_used_at: row.int_opt(6)?,
    })
}

pub const SESSION_COLUMNS: &str = "key_id, org_id, created_at, expires_at";

/// The session whose token hashes to `token_hash`, from a row of [`SESSION_COLUMNS`].
pub fn session<R: Columns + ?Sized>(token_hash: Vec<u8>, row: &R) -> Result<Session, R::Error> {
    Ok(Session {
        token_hash,
        key_id: parsed(row, 0, "key id", KeyId::parse)?,
        org_id: parsed(row, 1, "org id", OrgId::parse)?,
        created_at: row.int(2)?,
        expires_at: row.int(3)?,
    })
}

/// The columns of [`super::sql::PORTAL_LINK`].
pub fn portal_link<R: Columns + ?Sized>(token_hash: Vec<u8>, row: &R) -> Result<PortalLink, R::Error> {
    Ok(PortalLink {
        token_hash,
        org_id: parsed(row, 0, "org id", OrgId::parse)?,
        read_only: row.flag(1)?,
        theme: row.text_opt(2)?,
        created_at: row.int(3)?,
        expires_at: row.int(4)?,
    })
}

/// A webhook's subscription in its stored form, the JSON array [`webhook`] and [`candidate`]
/// read back (`None`: every type).
pub fn event_types_json(types: &Option<Vec<String>>) -> Result<Option<String>, super::StoreError> {
    types
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| super::StoreError::Backend(e.to_string()))
}

pub const CANDIDATE_COLUMNS: &str =
    "id, org_id, status, event_types, url, filter, headers, rate_limit, ordering";

/// A rate limit as stored: written by the API in range, so one out of range is corrupt.
pub fn stored_rate_limit<R: Columns + ?Sized>(row: &R, i: usize) -> Result<Option<RateLimit>, R::Error> {
    row.int_opt(i)?
        .map(|n| RateLimit::from_stored(n).ok_or_else(|| row.corrupt(i, "rate limit")))
        .transpose()
}

/// A filter as stored: written by the API from a parsed [`Filter`], so one that no longer
/// parses is corrupt.
fn stored_filter<R: Columns + ?Sized>(row: &R, i: usize) -> Result<Option<Filter>, R::Error> {
    row.text_opt(i)?
        .map(|text| Filter::from_stored(&text).ok_or_else(|| row.corrupt(i, "filter")))
        .transpose()
}

/// A webhook as a publish weighs it: its subscription parsed once, here.
pub fn candidate<R: Columns + ?Sized>(row: &R) -> Result<Candidate, R::Error> {
    let subscription = Subscription::from_stored(row.text_opt(3)?.as_deref())
        .ok_or_else(|| row.corrupt(3, "event types"))?;
    Ok(Candidate {
        id: parsed(row, 0, "webhook id", WebhookId::parse)?,
        org_id: parsed(row, 1, "org id", OrgId::parse)?,
        active: parsed(row, 2, "status", WebhookStatus::parse)? == WebhookStatus::Active,
        subscription,
        url: row.text(4)?,
        filter: stored_filter(row, 5)?,
        headers: row.bytes_opt(6)?,
        rate_limit: stored_rate_limit(row, 7)?,
        ordering: parsed(row, 8, "ordering", DeliveryOrder::from_name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of text and integer cells, as either driver would read it.
    enum Cell {
        Text(&'static str),
        Int(i64),
        Null,
    }

    struct Cells(Vec<Cell>);

    impl Columns for Cells {
        type Error = String;

        fn text(&self, column: usize) -> Result<String, String> {
            self.text_opt(column)?.ok_or_else(|| format!("{column} is null"))
        }

        fn text_opt(&self, column: usize) -> Result<Option<String>, String> {
            match &self.0[column] {
                Cell::Text(text) => Ok(Some((*text).to_owned())),
                Cell::Null => Ok(None),
                Cell::Int(_) => Err(format!("{column} is not text")),
            }
        }

        fn int(&self, column: usize) -> Result<i64, String> {
            self.int_opt(column)?.ok_or_else(|| format!("{column} is null"))
        }

        fn int_opt(&self, column: usize) -> Result<Option<i64>, String> {
            match &self.0[column] {
                Cell::Int(n) => Ok(Some(*n)),
                Cell::Null => Ok(None),
                Cell::Text(_) => Err(format!("{column} is not an integer")),
            }
        }

        fn bytes(&self, column: usize) -> Result<Vec<u8>, String> {
            self.text(column).map(String::into_bytes)
        }

        fn bytes_opt(&self, column: usize) -> Result<Option<Vec<u8>>, String> {
            self.text_opt(column).map(|text| text.map(String::into_bytes))
        }

        fn flag(&self, column: usize) -> Result<bool, String> {
            self.int(column).map(|n| n != 0)
        }

        fn corrupt(&self, column: usize, what: &str) -> String {
            format!("column {column}: stored {what} is malformed")
        }
    }

    fn delivery_row(status: &'static str, id: &'static str) -> Cells {
        use Cell::{Int, Null, Text};
        Cells(vec![
            Text(id),
            Text("evt_01jd5k3m6x7y8z9a0b1c2d3e4f"),
            Text("wh_01jd5k3m6x7y8z9a0b1c2d3e4f"),
            Text("org_01jd5k3m6x7y8z9a0b1c2d3e4f"),
            Text("order.filled"),
            Text(status),
            Int(1),
            Int(5_000),
            Int(1_000),
            Int(500),
            Text("http_status"),
            Null,
            Null,
            Text("{}"),
            Int(1),
            Int(2),
        ])
    }

    #[test]
    fn a_delivery_shows_its_next_attempt_only_while_pending() {
        let pending = delivery(&delivery_row("pending", "dlv_01jd5k3m6x7y8z9a0b1c2d3e4f")).expect("row");
        assert_eq!(pending.next_attempt_at, Some(5_000));
        let failed = delivery(&delivery_row("failed", "dlv_01jd5k3m6x7y8z9a0b1c2d3e4f")).expect("row");
        assert_eq!(failed.status, DeliveryStatus::Failed);
        assert_eq!(
            failed.next_attempt_at, None,
            "a lease's end means nothing once ended"
        );
    }

    #[test]
    fn a_malformed_stored_value_is_an_error_naming_its_column() {
        let bad_id = delivery(&delivery_row("pending", "wh_not_a_delivery")).expect_err("bad id");
        assert_eq!(bad_id, "column 0: stored delivery id is malformed");
        let bad_status =
            delivery(&delivery_row("lost", "dlv_01jd5k3m6x7y8z9a0b1c2d3e4f")).expect_err("status");
        assert_eq!(bad_status, "column 5: stored delivery status is malformed");
    }

    #[test]
    fn a_webhooks_event_types_are_read_back_from_json() {
        use Cell::{Int, Null, Text};
        let row = |types: Cell| {
            Cells(vec![
                Text("wh_01jd5k3m6x7y8z9a0b1c2d3e4f"),
                Text("org_01jd5k3m6x7y8z9a0b1c2d3e4f"),
                Null,
                Null,
                Text("https://example.com/hook"),
                Text("active"),
                Null,
                types,
                Text("abcd"),
                Null,
                Int(1),
                Int(2),
                Null,
                Null,
                Null,
                Text("none"),
            ])
        };
        let subscribed = webhook(&row(Text(r#"["order.*"]"#))).expect("row");
        assert_eq!(subscribed.event_types, Some(vec!["order.*".to_owned()]));
        assert_eq!(
            webhook(&row(Null)).expect("row").event_types,
            None,
            "null: every type"
        );
        assert!(webhook(&row(Text("not json"))).is_err());
    }

    #[test]
    fn a_webhooks_filter_is_parsed_as_stored_and_a_malformed_one_is_corrupt() {
        use Cell::{Int, Null, Text};
        let row = |filter: Cell| {
            let mut cells = vec![
                Text("wh_01jd5k3m6x7y8z9a0b1c2d3e4f"),
                Text("org_01jd5k3m6x7y8z9a0b1c2d3e4f"),
                Null,
                Null,
                Text("https://example.com/hook"),
                Text("active"),
                Null,
                Null,
                Text("abcd"),
                Null,
                Int(1),
                Int(2),
            ];
            cells.push(filter);
            cells.extend([Null, Null, Text("none")]);
            Cells(cells)
        };
        let filtered = webhook(&row(Text(r#"{"symbol":"AAPL"}"#))).expect("row");
        assert_eq!(
            filtered.filter.map(|f| f.json().clone()),
            Some(serde_json::json!({"symbol": "AAPL"}))
        );
        assert_eq!(webhook(&row(Null)).expect("row").filter, None);
        assert!(webhook(&row(Text(r#"{"a":{"$regex":"x"}}"#))).is_err());
    }
}
