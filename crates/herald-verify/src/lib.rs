//! Sign and verify [Standard Webhooks](https://www.standardwebhooks.com/) signatures
//! (the scheme Herald — and Svix — use).
//!
//! A delivery carries three headers:
//!
//! - `webhook-id`: the message id (stable across retries, so use it to deduplicate);
//! - `webhook-timestamp`: unix seconds when the delivery was signed;
//! - `webhook-signature`: space-separated `v1,<base64>` entries, one per signing secret
//!   (several while a secret is being rotated).
//!
//! Each `v1` signature is `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`, where the
//! key is the base64-decoded part of a `whsec_…` secret.
//!
//! Receivers build a [`Verifier`] once and call [`Verifier::verify_headers`] (or
//! [`Verifier::verify`]) on every request, with the raw, unparsed body bytes. Senders
//! (Herald itself) use [`Secret::sign`] or [`signature_header`].
//!
//! ```
//! use herald_verify::{Error, Secret, Verifier};
//!
//! let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let body = br#"{"event":"invoice.paid"}"#;
//! let now = 1_700_000_000;
//!
//! // Sender side: the value of the `webhook-signature` header.
//! let signature = secret.sign("msg_1", now, body);
//!
//! // Receiver side.
//! let verifier = Verifier::new(vec![secret]);
//! verifier.verify_at("msg_1", &now.to_string(), &signature, body, now)?;
//! assert_eq!(
//!     verifier.verify_at("msg_1", &now.to_string(), &signature, b"tampered", now),
//!     Err(Error::NoMatchingSignature)
//! );
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::digest::Key;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// How far a `webhook-timestamp` may be from the receiver's clock, in either direction,
/// before the delivery is rejected (protects against replays). Five minutes, as the
/// Standard Webhooks spec recommends; change it with [`Verifier::with_tolerance`].
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Name of the header that carries the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Name of the header that carries the signing time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Name of the header that carries the space-separated signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Prefix of secrets in their textual form; optional when parsing.
const SECRET_PREFIX: &str = "whsec_";
/// The only signature scheme this crate produces and checks.
const VERSION: &str = "v1";

/// Standard base64 encoding (with padding); decoding accepts padded and unpadded input.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// Why a secret could not be parsed or a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret is not (optionally `whsec_`-prefixed) base64, or decodes to no bytes.
    #[error("invalid webhook secret: expected `whsec_` followed by base64")]
    InvalidSecret,
    /// A required header (named inside) is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// The `webhook-timestamp` header is not an integer number of unix seconds.
    #[error("invalid `webhook-timestamp`: expected unix seconds")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance allows (a late or replayed delivery).
    #[error("webhook timestamp is too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance allows.
    #[error("webhook timestamp is too far in the future")]
    TimestampTooNew,
    /// No `v1` signature in the header matched any of the verifier's secrets.
    #[error("no matching webhook signature")]
    NoMatchingSignature,
}

/// A decoded signing key.
///
/// Parse it from its textual form with [`Secret::parse`] (`whsec_<base64>`) or build it from
/// raw bytes with [`Secret::from_bytes`]. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Secret {
    /// HMAC state already keyed with this secret; cloned for each message.
    mac: HmacSha256,
}

impl Secret {
    /// Parses a secret as shown to users: `whsec_` followed by standard base64 (the prefix
    /// and the `=` padding are optional). Fails with [`Error::InvalidSecret`] on bad base64
    /// or an empty key.
    pub fn parse(s: &str) -> Result<Secret, Error> {
        let encoded = s.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let bytes = B64.decode(encoded).map_err(|_| Error::InvalidSecret)?;
        if bytes.is_empty() {
            return Err(Error::InvalidSecret);
        }
        Ok(Secret::from_bytes(&bytes))
    }

    /// Uses raw key bytes as a secret (e.g. 32 random bytes that Herald generated).
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        // HMAC keys of any length are valid: shorter than a block are zero-padded, longer are
        // hashed first (RFC 2104). Doing that here lets us use the infallible constructor.
        let mut key = Key::<HmacSha256>::default();
        if bytes.len() <= key.len() {
            key[..bytes.len()].copy_from_slice(bytes);
        } else {
            let hash = Sha256::digest(bytes);
            key[..hash.len()].copy_from_slice(&hash);
        }
        Secret {
            mac: HmacSha256::new(&key),
        }
    }

    /// Signs one delivery: returns `"v1,<base64>"`, the value of the `webhook-signature`
    /// header for this secret. `timestamp` is unix seconds and must be sent unchanged as
    /// `webhook-timestamp`; `payload` is the exact body bytes sent.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
        let tag = self.keyed(msg_id, timestamp, payload).finalize().into_bytes();
        format!("{VERSION},{}", B64.encode(tag))
    }

    /// The HMAC state after feeding it the signed content `"{id}.{timestamp}.{payload}"`.
    fn keyed(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Signs one delivery with several secrets (during a rotation, the old and the new one) and
/// returns the full `webhook-signature` header value: the `v1,<base64>` entries separated by
/// spaces, in the order of `secrets`.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp, payload))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks incoming deliveries against one or more secrets.
///
/// Build it once (it is cheap to clone and can be shared across threads) with every secret
/// currently valid for the endpoint: a delivery is accepted if any `v1` signature in its
/// header matches any of them, which lets you rotate secrets without dropping deliveries.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting signatures by any of `secrets`, with [`DEFAULT_TOLERANCE`].
    /// With no secrets, nothing verifies.
    pub fn new(secrets: Vec<Secret>) -> Verifier {
        Verifier {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Replaces how far the timestamp may be from the clock (in both directions) — e.g. a
    /// little more if your receiver's clock is known to drift.
    #[must_use]
    pub fn with_tolerance(self, tolerance: Duration) -> Verifier {
        Verifier { tolerance, ..self }
    }

    /// Verifies a delivery from its three header values (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) and raw body, as if the current time were `now` (unix seconds).
    ///
    /// The timestamp is checked first, then the signatures: entries of a version other than
    /// `v1` (or malformed ones) are skipped, and the call fails with
    /// [`Error::NoMatchingSignature`] only when no `v1` entry matches. Comparisons run in
    /// constant time.
    pub fn verify_at(
        &self,
        msg_id: &str,
        timestamp: &str,
        signature_header: &str,
        payload: &[u8],
        now: i64,
    ) -> Result<(), Error> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| Error::InvalidTimestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(ts) > tolerance {
            return Err(Error::TimestampTooOld);
        }
        if ts.saturating_sub(now) > tolerance {
            return Err(Error::TimestampTooNew);
        }

        let candidates: Vec<Vec<u8>> = signature_header
            .split_ascii_whitespace()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == VERSION)
            .filter_map(|(_, sig)| B64.decode(sig).ok())
            .collect();
        if candidates.is_empty() {
            return Err(Error::NoMatchingSignature);
        }
        for secret in &self.secrets {
            // The payload is hashed once per secret; each candidate only finalizes a clone.
            let mac = secret.keyed(msg_id, ts, payload);
            if candidates.iter().any(|sig| mac.clone().verify_slice(sig).is_ok()) {
                return Ok(());
            }
        }
        Err(Error::NoMatchingSignature)
    }

    /// Like [`Verifier::verify_at`], using the system clock for `now`.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signature_header: &str,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.verify_at(msg_id, timestamp, signature_header, payload, unix_now())
    }

    /// Verifies a delivery with the system clock, looking each header up through `header`,
    /// which is called with the lowercase names `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` and should match names case-insensitively, e.g. with an
    /// `http::HeaderMap`: `|name| headers.get(name).and_then(|v| v.to_str().ok())`.
    /// An absent header fails with [`Error::MissingHeader`] naming it.
    pub fn verify_headers<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        payload: &[u8],
    ) -> Result<(), Error> {
        let get = |name: &'static str| header(name).ok_or(Error::MissingHeader(name));
        let msg_id = get(HEADER_ID)?;
        let timestamp = get(HEADER_TIMESTAMP)?;
        let signature = get(HEADER_SIGNATURE)?;
        self.verify(msg_id, timestamp, signature, payload)
    }
}

/// Current unix time in seconds (negative if the clock is before 1970).
fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn from_bytes_matches_hmac_for_keys_of_any_length() {
        // Keys shorter than, equal to and longer than SHA-256's 64-byte block.
        for len in [0, 1, 24, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut reference = HmacSha256::new_from_slice(&key).unwrap();
            reference.update(b"id.1.body");
            let expected = format!("v1,{}", B64.encode(reference.finalize().into_bytes()));
            assert_eq!(Secret::from_bytes(&key).sign("id", 1, b"body"), expected, "{len}");
        }
    }
}
