//! Times are stored as epoch milliseconds (the same SQL on every backend) and shown as
//! RFC 3339 UTC with exactly three fractional digits, as the contract asks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-23T06:54:18.123Z`.
pub fn format_ms(ms: Millis) -> String {
    // The RFC 3339 printer with a fixed precision, not `strftime`: every event and delivery
    // answered formats a few of these, and the format-string interpreter cost about three
    // times as much (callgrind).
    const PRINTER: jiff::fmt::temporal::DateTimePrinter =
        jiff::fmt::temporal::DateTimePrinter::new().precision(Some(3));
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => PRINTER.timestamp_to_string(&ts),
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    s.parse::<jiff::Timestamp>().ok().map(|ts| ts.as_millisecond())
}

/// Serde helpers so row types can keep `Millis` and still serialize as the contract's strings.
pub mod serde_ms {
    use super::{Millis, format_ms};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(*ms))
    }

    pub mod option {
        use super::{Millis, format_ms};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&format_ms(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_fraction_digits_and_z() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_614_265_330_007), "2021-02-25T15:02:10.007Z");
    }

    #[test]
    fn parses_offsets_and_round_trips() {
        assert_eq!(
            parse_rfc3339("2021-02-25T16:02:10.007+01:00"),
            Some(1_614_265_330_007)
        );
        assert_eq!(
            parse_rfc3339(&format_ms(1_700_000_000_123)),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
