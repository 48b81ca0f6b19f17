//! Durations as people write them in settings and requests (`500ms`, `30s`, `5m`, `2h`,
//! `7d`): one parser for the configuration and the API, and the inverse that shows a stored
//! length back in the largest unit that divides it.

use std::time::Duration;

/// The units, largest first, so [`format_ms`] picks the largest exact one.
const UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses `500ms`, `30s`, `5m`, `2h`, `5d`: digits, then one unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s or 5m"))?;
    let ms_per_unit = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms)
        .ok_or_else(|| format!("`{s}` has an unknown unit (use ms, s, m, h or d)"))?;
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// `ms` in the largest unit that divides it exactly: 604800000 → `7d`, 90000 → `90s`.
pub fn format_ms(ms: u64) -> String {
    UNITS
        .iter()
        .find(|(_, size)| ms > 0 && ms.is_multiple_of(*size))
        .map_or_else(
            || format!("{ms}ms"),
            |(name, size)| format!("{}{name}", ms / size),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn signs_missing_units_and_unknown_units_are_refused() {
        for bad in ["-1s", "+1s", "1", "abc", "", "1w", "1.5h", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad} parsed");
        }
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_ms(604_800_000), "7d");
        assert_eq!(format_ms(90_000), "90s");
        assert_eq!(format_ms(43_200_000), "12h");
        assert_eq!(format_ms(1_500), "1500ms");
        assert_eq!(format_ms(0), "0ms");
        for text in ["7d", "90s", "12h", "1500ms", "5m"] {
            let ms = parse_duration(text).map(|d| d.as_millis() as u64);
            assert_eq!(ms.map(format_ms).as_deref(), Ok(text));
        }
    }
}
