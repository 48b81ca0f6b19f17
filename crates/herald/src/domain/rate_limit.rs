//! A webhook's rate limit: at most so many deliveries a second to its endpoint (API.md
//! section 3, "Delivery controls"), across every node.
//!
//! The limit is kept by spacing sends evenly, one turn every `1/rate` seconds, with no burst
//! allowance: then no window of 10 s ever holds more than `10 × rate + 1` sends, which is the
//! contract's "within 10 %" with room to spare, whatever the number of nodes. Nodes reserve
//! their turns from one counter in the database (`Store::reserve_turns`), a few at a time.

use serde_json::Value;

/// The range the contract allows, deliveries per second.
pub const MIN: u32 = 1;
pub const MAX: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit(u32);

impl RateLimit {
    /// The limit in `value`, the API's `rate_limit` field: `null` is none; anything but a
    /// whole number from 1 to 10,000 is refused with why.
    pub fn parse(value: &Value) -> Result<Option<Self>, String> {
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .and_then(Self::new)
                .map(Some)
                .ok_or_else(|| format!("rate_limit must be a whole number from {MIN} to {MAX} (deliveries per second), or null")),
            _ => Err("rate_limit must be a number of deliveries per second, or null".to_owned()),
        }
    }

    /// `per_second` if the contract allows it.
    pub fn new(per_second: u32) -> Option<Self> {
        (MIN..=MAX).contains(&per_second).then_some(Self(per_second))
    }

    /// A limit as stored: written by the API, so one out of range is corrupt (`None`).
    pub fn from_stored(per_second: i64) -> Option<Self> {
        u32::try_from(per_second).ok().and_then(Self::new)
    }

    pub fn per_second(self) -> u32 {
        self.0
    }

    /// The time between two turns, in microseconds (at 10,000/s, 100 µs).
    pub fn interval_us(self) -> i64 {
        1_000_000 / i64::from(self.0)
    }

    /// Turns a node reserves at once: a fifth of a second's worth, at least one and at most
    /// 64, so a busy limited webhook costs each node a few database writes a second, and a
    /// node that runs out of work leaves few turns unused.
    pub fn turns_per_reservation(self) -> u32 {
        (self.0 / 5).clamp(1, 64)
    }

    /// How many deliveries of the webhook one node may hold leased: a second of its sends,
    /// within `per_webhook`. A lease outlives at least a second (see
    /// `delivery::Settings::lease`), so a leased delivery gets its turn before its lease ends.
    pub fn lease_cap(limit: Option<Self>, per_webhook: u32) -> u32 {
        limit.map_or(per_webhook, |limit| limit.0.min(per_webhook))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_limit_is_a_whole_number_from_one_to_ten_thousand_or_null() {
        assert_eq!(RateLimit::parse(&json!(null)), Ok(None));
        assert_eq!(RateLimit::parse(&json!(1)), Ok(RateLimit::new(1)));
        assert_eq!(RateLimit::parse(&json!(10_000)), Ok(RateLimit::new(10_000)));
        for bad in [
            json!(0),
            json!(10_001),
            json!(-5),
            json!(2.5),
            json!(1e12),
            json!("50"),
            json!(true),
            json!([50]),
            json!({}),
        ] {
            assert!(RateLimit::parse(&bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn turns_are_evenly_spaced_and_reserved_a_fifth_of_a_second_at_a_time() {
        let limit = |n| RateLimit::new(n).expect("in range");
        assert_eq!(limit(50).interval_us(), 20_000);
        assert_eq!(limit(10_000).interval_us(), 100);
        assert_eq!(limit(1).turns_per_reservation(), 1);
        assert_eq!(limit(50).turns_per_reservation(), 10);
        assert_eq!(limit(10_000).turns_per_reservation(), 64);
    }

    #[test]
    fn a_limited_webhook_leases_a_second_of_sends_at_most() {
        assert_eq!(RateLimit::lease_cap(None, 128), 128);
        assert_eq!(RateLimit::lease_cap(RateLimit::new(50), 128), 50);
        assert_eq!(RateLimit::lease_cap(RateLimit::new(5_000), 128), 128);
    }

    #[test]
    fn a_stored_limit_out_of_range_is_corrupt() {
        assert_eq!(RateLimit::from_stored(50), RateLimit::new(50));
        assert_eq!(RateLimit::from_stored(0), None);
        assert_eq!(RateLimit::from_stored(i64::MAX), None);
    }
}
