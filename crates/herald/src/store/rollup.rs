//! Per-minute rollups of attempts, written with the attempt records: what the dashboard reads
//! instead of scanning a day of attempts (a day at 1,000 events/s is 86 million rows; its
//! rollups are a few rows per webhook and minute).
//!
//! The tables are keyed by webhook then minute (epoch minutes of the attempt's start):
//! `attempt_minutes` counts attempts by outcome and latency class (the charts), and
//! `attempt_20min` the same per 20 minutes (its `minute` is the period's first), for the day
//! chart: 72 periods, where minutes would be 1,440 (about 250 ms at 10 million deliveries a
//! day, against 30). `webhook_minutes` counts the deliveries that ended (delivered, or failed
//! for good) and keeps the minute's last answer (the webhook list). A batch of records is
//! summed here first, so the store upserts each key once per batch, not once per attempt.

use std::collections::BTreeMap;

use super::{AttemptOutcome, AttemptRecord, LATENCY_BOUNDS_MS, Next};
use crate::domain::error_class::ErrorClass;
use crate::domain::time::Millis;

pub const MINUTE_MS: Millis = 60_000;

/// Rollup rows older than this are deleted: the widest page (the day chart, the list's
/// 24 hours) reaches back 24 hours, and an hour more spares a clock or a bucket edge.
pub const KEEP_MS: Millis = 25 * 3_600_000;

/// The minutes of a period of `attempt_20min`.
pub const COARSE_MINUTES: i64 = 20;

/// Which table counts a chart's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Minute,
    /// [`COARSE_MINUTES`]: when buckets and their start are whole periods.
    Coarse,
}

impl Resolution {
    pub fn for_buckets(since: Millis, bucket_ms: i64) -> Self {
        let period = COARSE_MINUTES * MINUTE_MS;
        if bucket_ms > 0 && bucket_ms % period == 0 && since.rem_euclid(period) == 0 {
            Self::Coarse
        } else {
            Self::Minute
        }
    }
}

/// The epoch minute of a time.
pub fn minute_of(at: Millis) -> i64 {
    at.div_euclid(MINUTE_MS)
}

/// The first whole minute at or after `since`: the minutes a window starting then holds.
pub fn first_minute(since: Millis) -> i64 {
    minute_of(since + MINUTE_MS - 1)
}

/// The latency class of a duration: the first bound it is under (see [`LATENCY_BOUNDS_MS`]).
pub fn latency_class(duration_ms: i64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound <= duration_ms)
}

impl AttemptOutcome {
    /// The code the rollups store (and [`AttemptOutcome::from_code`] reads).
    pub fn code(self) -> i64 {
        match self {
            Self::Delivered => 0,
            Self::HttpError => 1,
            Self::NoResponse => 2,
        }
    }

    /// How an attempt ended: delivered, answered with an error, or not answered at all.
    pub fn of(error: Option<ErrorClass>, response_status: Option<i64>) -> Self {
        match (error, response_status) {
            (None, _) => Self::Delivered,
            (Some(_), Some(_)) => Self::HttpError,
            (Some(_), None) => Self::NoResponse,
        }
    }
}

/// A row of `attempt_minutes` (or `attempt_20min`), borrowing its webhook's id from the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttemptMinute<'a> {
    pub webhook_id: &'a str,
    pub minute: i64,
    pub outcome: i64,
    pub latency_class: i64,
}

/// A row of `webhook_minutes`: what to add, and the minute's latest attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookMinute {
    pub delivered: i64,
    pub failed: i64,
    pub last_attempt_at: Millis,
    pub last_response_status: Option<i64>,
    pub last_error: Option<ErrorClass>,
}

/// A batch of records summed per rollup key. Keys are ordered, so concurrent writers
/// (PostgreSQL nodes) take the rows' locks in the same order and cannot deadlock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rollup<'a> {
    pub attempts: BTreeMap<AttemptMinute<'a>, i64>,
    /// The same per [`COARSE_MINUTES`], keyed by each period's first minute.
    pub coarse: BTreeMap<AttemptMinute<'a>, i64>,
    pub webhooks: BTreeMap<(&'a str, i64), WebhookMinute>,
}

impl<'a> Rollup<'a> {
    pub fn of(records: &'a [AttemptRecord]) -> Self {
        let mut rollup = Self::default();
        for record in records {
            let a = &record.attempt;
            let minute = minute_of(a.started_at);
            let webhook = record.webhook_id.as_str();
            let key = AttemptMinute {
                webhook_id: webhook,
                minute,
                outcome: AttemptOutcome::of(a.error, a.response_status).code(),
                latency_class: i64::try_from(latency_class(a.duration_ms)).unwrap_or(0),
            };
            let coarse = AttemptMinute {
                minute: minute - minute.rem_euclid(COARSE_MINUTES),
                ..key
            };
            *rollup.attempts.entry(key).or_default() += 1;
            *rollup.coarse.entry(coarse).or_default() += 1;
            let row = rollup.webhooks.entry((webhook, minute)).or_default();
            match record.next {
                Next::Delivered => row.delivered += 1,
                Next::Failed => row.failed += 1,
                Next::RetryAt(_) | Next::DisableWebhook(_) => {}
            }
            // The first record of the key, or a later attempt: it is the minute's last answer.
            if row.last_attempt_at == 0 || a.started_at >= row.last_attempt_at {
                row.last_attempt_at = a.started_at;
                row.last_response_status = a.response_status;
                row.last_error = a.error;
            }
        }
        rollup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AttemptId, DeliveryId, WebhookId};
    use crate::store::Attempt;

    fn record(
        webhook: &WebhookId,
        started_at: Millis,
        duration_ms: i64,
        status: Option<i64>,
        next: Next,
    ) -> AttemptRecord {
        let error = match (&next, status) {
            (Next::Delivered, _) => None,
            (_, Some(_)) => Some(ErrorClass::HttpStatus),
            (_, None) => Some(ErrorClass::Timeout),
        };
        AttemptRecord {
            seq: 1,
            claim_token: 1,
            webhook_id: webhook.clone(),
            attempt: Attempt {
                id: AttemptId::new(),
                delivery_id: DeliveryId::new(),
                attempt_number: 1,
                started_at,
                duration_ms,
                response_status: status,
                response_body: None,
                response_body_truncated: false,
                error,
                error_message: None,
                signature: None,
            },
            next,
            disable_if_failing_since: 0,
            now: started_at + duration_ms,
        }
    }

    #[test]
    fn a_latency_class_is_the_first_bound_the_duration_is_under() {
        assert_eq!(latency_class(0), 0);
        assert_eq!(latency_class(1), 1, "1 ms is not under the 1 ms bound");
        assert_eq!(latency_class(7), 6, "under 8 ms");
        assert_eq!(latency_class(59_999), LATENCY_BOUNDS_MS.len() - 1);
        assert_eq!(
            latency_class(60_000),
            LATENCY_BOUNDS_MS.len(),
            "longer than every bound"
        );
    }

    #[test]
    fn the_migrations_backfill_with_the_same_classes_and_outcomes() {
        let classes = crate::store::latency_class_sql("a.duration_ms");
        let outcomes =
            "CASE WHEN a.error IS NULL THEN 0 WHEN a.response_status IS NOT NULL THEN 1 ELSE 2 END";
        for migration in [
            include_str!("../../migrations/sqlite/0012_attempt_rollups.sql"),
            include_str!("../../migrations/postgres/0010_attempt_rollups.sql"),
        ] {
            assert!(migration.contains(&classes));
            assert!(migration.contains(outcomes));
        }
        for outcome in [
            AttemptOutcome::Delivered,
            AttemptOutcome::HttpError,
            AttemptOutcome::NoResponse,
        ] {
            assert_eq!(AttemptOutcome::from_code(outcome.code()), outcome);
        }
        assert_eq!(
            AttemptOutcome::of(Some(ErrorClass::HttpStatus), Some(500)).code(),
            1
        );
        assert_eq!(AttemptOutcome::of(Some(ErrorClass::Dns), None).code(), 2);
    }

    #[test]
    fn whole_periods_are_read_from_the_coarse_table() {
        let period = COARSE_MINUTES * MINUTE_MS;
        assert_eq!(Resolution::for_buckets(7 * period, period), Resolution::Coarse);
        assert_eq!(
            Resolution::for_buckets(7 * period, 3 * period),
            Resolution::Coarse
        );
        assert_eq!(
            Resolution::for_buckets(7 * period + MINUTE_MS, period),
            Resolution::Minute
        );
        assert_eq!(Resolution::for_buckets(7 * period, MINUTE_MS), Resolution::Minute);
    }

    #[test]
    fn a_window_holds_the_minutes_that_start_inside_it() {
        assert_eq!(first_minute(120_000), 2);
        assert_eq!(first_minute(120_001), 3);
        assert_eq!(minute_of(119_999), 1);
    }

    #[test]
    fn a_batch_is_summed_once_per_webhook_minute_outcome_and_latency_class() {
        let a = WebhookId::new();
        let b = WebhookId::new();
        let records = [
            record(&a, 60_000, 3, Some(200), Next::Delivered),
            record(&a, 60_500, 3, Some(204), Next::Delivered),
            record(&a, 61_000, 700, Some(500), Next::RetryAt(70_000)),
            record(&a, 62_000, 30_000, None, Next::Failed),
            record(&a, 120_000, 3, Some(200), Next::Delivered),
            record(&b, 60_000, 3, Some(200), Next::Delivered),
        ];
        let rollup = Rollup::of(&records);
        let count = |w: &WebhookId, minute, outcome: AttemptOutcome, ms| {
            rollup
                .attempts
                .get(&AttemptMinute {
                    webhook_id: w.as_str(),
                    minute,
                    outcome: outcome.code(),
                    latency_class: i64::try_from(latency_class(ms)).unwrap_or(0),
                })
                .copied()
        };
        assert_eq!(count(&a, 1, AttemptOutcome::Delivered, 3), Some(2));
        assert_eq!(count(&a, 1, AttemptOutcome::HttpError, 700), Some(1));
        assert_eq!(count(&a, 1, AttemptOutcome::NoResponse, 30_000), Some(1));
        assert_eq!(count(&a, 2, AttemptOutcome::Delivered, 3), Some(1));
        assert_eq!(count(&b, 1, AttemptOutcome::Delivered, 3), Some(1));
        assert_eq!(rollup.attempts.len(), 5);
        assert_eq!(
            rollup.attempts.values().sum::<i64>(),
            6,
            "every attempt counted once"
        );
        let coarse = |w: &WebhookId, minute| {
            rollup
                .coarse
                .iter()
                .filter(|(k, _)| k.webhook_id == w.as_str() && k.minute == minute)
                .map(|(_, n)| n)
                .sum::<i64>()
        };
        assert_eq!(coarse(&a, 0), 5, "minutes 1 and 2 are in the period of minute 0");
        assert_eq!(coarse(&b, 0), 1);
        assert_eq!(rollup.coarse.len(), 4, "{:?}", rollup.coarse);

        let minute = &rollup.webhooks[&(a.as_str(), 1)];
        assert_eq!((minute.delivered, minute.failed), (2, 1), "a retry ends nothing");
        assert_eq!(minute.last_attempt_at, 62_000, "the minute's latest attempt");
        assert_eq!(minute.last_response_status, None);
        assert_eq!(minute.last_error, Some(ErrorClass::Timeout));
        assert_eq!(rollup.webhooks.len(), 3);
    }

    #[test]
    fn the_last_answer_is_the_latest_attempt_whatever_the_order_of_the_batch() {
        let a = WebhookId::new();
        let records = [
            record(&a, 60_900, 3, Some(200), Next::Delivered),
            record(&a, 60_100, 3, Some(503), Next::RetryAt(1)),
        ];
        let rollup = Rollup::of(&records);
        let minute = &rollup.webhooks[&(a.as_str(), 1)];
        assert_eq!(minute.last_attempt_at, 60_900);
        assert_eq!(minute.last_response_status, Some(200));
        assert_eq!(minute.last_error, None);
    }
}
