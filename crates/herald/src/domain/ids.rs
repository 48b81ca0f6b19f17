//! Prefixed, time-sortable ids: `wh_01jd5k3m6x7y8z9a0b1c2d3e4f`.
//!
//! The 26 characters after the prefix are a UUIDv7 in lowercase Crockford base32. UUIDv7 puts
//! the millisecond timestamp first and the `uuid` crate keeps a counter for values made in the
//! same millisecond, so ids sort by creation time; cursors and "newest first" rely on that.

use std::fmt;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Encodes 128 bits as 26 Crockford base32 characters (the first one carries 3 bits).
fn encode(value: u128) -> String {
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 0x1f) as usize] as char)
        .collect()
}

/// Checks the 26-character body: Crockford lowercase, and no more than 128 bits.
fn is_valid_body(body: &str) -> bool {
    body.len() == 26 && body.bytes().all(is_alphabet) && body.as_bytes().first().is_some_and(|b| *b <= b'7')
}

/// Whether `b` is in [`ALPHABET`], by ranges: a search of the alphabet for every character
/// of every id parsed was 3–4 % of the SQLite writer's instructions (callgrind).
fn is_alphabet(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'h' | b'j' | b'k' | b'm' | b'n' | b'p'..=b't' | b'v'..=b'z')
}

/// Makes a fresh id body from a UUIDv7.
pub fn new_body() -> String {
    encode(uuid::Uuid::now_v7().as_u128())
}

/// The smallest id body made at `ms`: every id made at or after `ms` sorts at or above it, so
/// "since a time" becomes a range scan on the primary key.
pub fn floor_body(ms: crate::domain::time::Millis) -> String {
    let ms = u128::try_from(ms.max(0)).unwrap_or(0) & ((1 << 48) - 1);
    encode(ms << 80)
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, new_body()))
            }

            /// Accepts only a well-formed id of this kind; anything else is `None`, which the
            /// API answers as "not found" (an id that cannot exist does not exist).
            pub fn parse(s: &str) -> Option<Self> {
                let body = s.strip_prefix($prefix)?;
                is_valid_body(body).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The lowest id this kind can have for something made at `ms` (see [`floor_body`]).
            pub fn floor_at(ms: crate::domain::time::Millis) -> String {
                format!("{}{}", $prefix, floor_body(ms))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("not a valid `{}` id", $prefix))
                })
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-7][0-9a-hjkmnp-tv-z]{25}$")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// An organisation: the tenant boundary every object lives in.
    OrgId,
    "org_"
);
prefixed_id!(
    /// An API key; the secret half is never stored, only its SHA-256.
    KeyId,
    "key_"
);
prefixed_id!(
    /// A webhook endpoint.
    WebhookId,
    "wh_"
);
prefixed_id!(
    /// A published event.
    EventId,
    "evt_"
);
prefixed_id!(
    /// One (event, webhook) delivery.
    DeliveryId,
    "dlv_"
);
prefixed_id!(
    /// One HTTP attempt of a delivery.
    AttemptId,
    "att_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_have_prefix_and_26_chars_and_round_trip() {
        let id = WebhookId::new();
        assert!(id.as_str().starts_with("wh_"));
        assert_eq!(id.as_str().len(), 3 + 26);
        assert_eq!(WebhookId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn the_range_check_accepts_exactly_the_alphabet() {
        for b in 0..=u8::MAX {
            assert_eq!(is_alphabet(b), ALPHABET.contains(&b), "byte {b}");
        }
    }

    #[test]
    fn ids_made_later_sort_later() {
        let ids: Vec<_> = (0..1000).map(|_| EventId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn floor_at_sorts_between_ids_made_before_and_after() {
        let before = EventId::new();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let floor = EventId::floor_at(crate::domain::time::now_ms() - 1);
        let after = EventId::new();
        assert!(before.as_str() < floor.as_str(), "{before} < {floor}");
        assert!(floor.as_str() <= after.as_str(), "{floor} <= {after}");
        assert!(EventId::parse(&floor).is_some());
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "wh_",
            "wh_01jd5k3m6x7y8z9a0b1c2d3e4",   // 25 chars
            "wh_01jd5k3m6x7y8z9a0b1c2d3e4fx", // 27 chars
            "wh_01JD5K3M6X7Y8Z9A0B1C2D3E4F",  // uppercase
            "wh_01jd5k3m6x7y8z9a0b1c2d3e4u",  // 'u' is not Crockford
            "wh_81jd5k3m6x7y8z9a0b1c2d3e4f",  // more than 128 bits
            "org_01jd5k3m6x7y8z9a0b1c2d3e4f", // wrong prefix
        ] {
            assert_eq!(WebhookId::parse(bad), None, "{bad}");
        }
        assert!(WebhookId::parse("wh_01jd5k3m6x7y8z9a0b1c2d3e4f").is_some());
    }
}
