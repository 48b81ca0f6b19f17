//! When to try again: the configured schedule with ±10 % jitter, pushed back (never
//! forward) by a `Retry-After` on 429/503, at most 24 h.

use std::time::Duration;

use crate::domain::time::Millis;

pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay before retry number `retry` (1 = the first retry), or `None` when the schedule
/// is exhausted. `unit` in [0, 1) draws the jitter.
pub fn delay(schedule: &[Duration], retry: usize, unit: f64) -> Option<Duration> {
    let base = *schedule.get(retry.checked_sub(1)?)?;
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    Some(base.mul_f64(factor))
}

/// A uniform number in [0, 1) from the OS.
pub fn jitter_unit() -> f64 {
    getrandom::u32().map_or(0.5, |n| f64::from(n) / (f64::from(u32::MAX) + 1.0))
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date, as a delay from `now`.
pub fn parse_retry_after(value: &str, now: Millis) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = jiff::fmt::rfc2822::parse(value)
            .ok()?
            .timestamp()
            .as_millisecond();
        Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The next attempt's time: the schedule's, or later if the endpoint asked for more time.
pub fn next_attempt_at(now: Millis, scheduled: Duration, retry_after: Option<Duration>) -> Millis {
    let wait = retry_after.map_or(scheduled, |asked| scheduled.max(asked));
    now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        [60, 300, 1800].iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn delays_follow_the_schedule_within_ten_percent() {
        let s = schedule();
        assert_eq!(delay(&s, 1, 0.0), Some(Duration::from_secs(54)));
        assert_eq!(delay(&s, 1, 1.0), Some(Duration::from_secs(66)));
        assert_eq!(delay(&s, 3, 0.5), Some(Duration::from_secs(1800)));
        assert_eq!(delay(&s, 4, 0.5), None, "exhausted");
        assert_eq!(delay(&s, 0, 0.5), None);
        for _ in 0..100 {
            let d = delay(&s, 2, jitter_unit()).expect("scheduled");
            assert!(
                d >= Duration::from_secs(270) && d <= Duration::from_secs(330),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates_and_is_capped() {
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_only_pushes_the_next_attempt_later() {
        let now = 1_000;
        assert_eq!(
            next_attempt_at(now, Duration::from_secs(60), Some(Duration::from_secs(5))),
            61_000
        );
        assert_eq!(
            next_attempt_at(now, Duration::from_secs(60), Some(Duration::from_secs(600))),
            601_000
        );
        assert_eq!(next_attempt_at(now, Duration::from_secs(60), None), 61_000);
    }
}
