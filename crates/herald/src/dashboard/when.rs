//! Times as the dashboard shows and reads them: UTC, 24-hour, labelled —
//! `2026-11-23 09:41:03 UTC` — in tables, filters, the replay form and chart axes alike. One
//! zone everywhere, and no browser-local rendering, so a time copied from a table and typed
//! into a filter means the same instant whoever's browser shows it.
//!
//! A typed time stands for the whole second (or minute, or day) it names: tables show whole
//! seconds, so "from" and "to" both set to a time read off a row find that row.

use crate::domain::time::{Millis, format_ms, parse_rfc3339};

/// What the filters accept, for placeholders and messages.
pub const FORMAT: &str = "YYYY-MM-DD hh:mm:ss";

/// `2026-11-23 09:41:03 UTC`: whole seconds, the zone said.
pub fn shown(ms: Millis) -> String {
    let iso = format_ms(ms);
    format!("{} UTC", iso.get(..19).unwrap_or(&iso).replace('T', " "))
}

/// The instants a typed time covers: from `start`, up to but not including `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Millis,
    pub end: Millis,
}

const SECOND: Millis = 1000;
const MINUTE: Millis = 60 * SECOND;
const DAY: Millis = 24 * 60 * MINUTE;

/// Reads a time as the tables show it (`2026-11-23 09:41:03 UTC`) or shorter
/// (`2026-11-23 09:41`, `2026-11-23`), with `T` or a space, and with `UTC`, `Z` or no zone
/// (all UTC); an RFC 3339 offset (`+01:00`) is honoured. `None` when it is none of these.
pub fn parse(raw: &str) -> Option<Span> {
    let text = raw.trim();
    if !text.is_ascii() {
        return None;
    }
    let (civil, zone) = split_zone(text)?;
    let (full, unit) = match civil.len() {
        10 => (format!("{civil}T00:00:00"), DAY),
        16 => (format!("{civil}:00"), MINUTE),
        19 => (civil.to_owned(), SECOND),
        n if n > 20 && civil.as_bytes().get(19) == Some(&b'.') => {
            let digits = u32::try_from(n - 20).ok()?;
            (civil.to_owned(), 10i64.pow(3u32.saturating_sub(digits)))
        }
        _ => return None,
    };
    // The date and the time are separated by a space (as shown) or a `T` (RFC 3339).
    let (date, time) = full.split_at(10);
    let time = time.strip_prefix([' ', 'T', 't'])?;
    let start = parse_rfc3339(&format!("{date}T{time}{zone}"))?;
    Some(Span {
        start,
        end: start + unit,
    })
}

/// Splits off the zone: `UTC`, `Z` and nothing all read as `Z`; a trailing `±hh:mm` stays.
fn split_zone(text: &str) -> Option<(&str, &str)> {
    let upper = text.to_ascii_uppercase();
    if upper.ends_with("UTC") {
        return Some((text.get(..text.len() - 3)?.trim_end(), "Z"));
    }
    if upper.ends_with('Z') {
        return Some((text.get(..text.len() - 1)?, "Z"));
    }
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 16 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        return Some((text.get(..n - 6)?, text.get(n - 6..)?));
    }
    Some((text, "Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Millis = 1_795_426_863_456; // 2026-11-23T09:41:03.456Z

    #[test]
    fn a_time_is_shown_in_utc_to_the_second_with_its_zone() {
        assert_eq!(shown(AT), "2026-11-23 09:41:03 UTC");
    }

    #[test]
    fn a_shown_time_read_back_covers_the_instant_it_was_shown_for() {
        let span = parse(&shown(AT)).expect("a shown time parses");
        assert_eq!(span.start, AT - 456);
        assert_eq!(span.end, AT - 456 + 1000);
        assert!(span.start <= AT && AT < span.end);
    }

    #[test]
    fn shorter_times_cover_their_minute_or_day() {
        let minute = parse("2026-11-23 09:41").expect("minute");
        assert_eq!(minute.end - minute.start, MINUTE);
        assert_eq!(minute.start, AT - 3456);
        let day = parse("2026-11-23").expect("day");
        assert_eq!(day.end - day.start, DAY);
        assert!(day.start <= AT && AT < day.end);
    }

    #[test]
    fn rfc_3339_spellings_and_offsets_are_read_too() {
        let second = AT - 456;
        for same in [
            "2026-11-23T09:41:03Z",
            "2026-11-23T09:41:03",
            "2026-11-23 09:41:03utc",
            "  2026-11-23 09:41:03 UTC ",
            "2026-11-23T10:41:03+01:00",
        ] {
            assert_eq!(parse(same).map(|s| s.start), Some(second), "{same}");
        }
        let exact = parse("2026-11-23T09:41:03.456Z").expect("milliseconds");
        assert_eq!((exact.start, exact.end), (AT, AT + 1));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "yesterday",
            "11/23/2026 9:41 AM",
            "2026-11-23 9:41",
            "2026-11-23X09:41:03",
            "2026-13-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
