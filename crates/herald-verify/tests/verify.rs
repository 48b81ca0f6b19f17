//! Behaviour of signing and verification, against the published Standard Webhooks vector and
//! hand-made deliveries.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_verify::{DEFAULT_TOLERANCE, Error, Secret, Verifier, signature_header};

// The conformance vector published by Standard Webhooks / Svix.
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1614265330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const ID: &str = "msg_2Xq8";
const TS: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"type":"invoice.paid","amount":4200}"#;

fn secret(byte: u8) -> Secret {
    Secret::from_bytes(&[byte; 32])
}

fn verifier(secrets: Vec<Secret>) -> Verifier {
    Verifier::new(secrets)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn conformance_vector_signs_to_published_signature() {
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    assert_eq!(secret.sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
}

#[test]
fn conformance_vector_verifies() {
    let v = verifier(vec![Secret::parse(VECTOR_SECRET).unwrap()]);
    let ts = VECTOR_TS.to_string();
    assert_eq!(
        v.verify_at(VECTOR_ID, &ts, VECTOR_SIG, VECTOR_BODY, VECTOR_TS),
        Ok(())
    );
}

#[test]
fn secret_parses_with_or_without_prefix_and_padding() {
    let with_prefix = Secret::parse(VECTOR_SECRET).unwrap();
    let bare = Secret::parse(VECTOR_SECRET.trim_start_matches("whsec_")).unwrap();
    assert_eq!(bare.sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
    assert_eq!(with_prefix.sign(ID, TS, BODY), bare.sign(ID, TS, BODY));

    // Herald's format: whsec_ + padded standard base64 of 32 bytes (44 chars, one '=').
    let herald = Secret::parse("whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let unpadded = Secret::parse("whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE").unwrap();
    assert_eq!(herald.sign(ID, TS, BODY), secret(1).sign(ID, TS, BODY));
    assert_eq!(unpadded.sign(ID, TS, BODY), secret(1).sign(ID, TS, BODY));
}

#[test]
fn secret_parse_rejects_invalid_base64_and_empty_keys() {
    for bad in ["whsec_not base64!", "whsec_", "", "whsec_@@@@", "whsec_A"] {
        assert_eq!(Secret::parse(bad).unwrap_err(), Error::InvalidSecret, "{bad:?}");
    }
}

#[test]
fn secret_debug_does_not_reveal_key() {
    use base64::Engine as _;
    let encoded = VECTOR_SECRET.trim_start_matches("whsec_");
    let key = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let decimal = format!("{:?}", &key[..3]); // e.g. "[49, 242, 144]"
    let decimal = decimal.trim_matches(|c| c == '[' || c == ']');
    let hex: String = key[..3].iter().map(|b| format!("{b:02x}")).collect();
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    for shown in [
        format!("{secret:?}"),
        format!("{secret:#?}"),
        format!("{:?}", verifier(vec![secret.clone()])),
    ] {
        assert!(!shown.contains(&encoded[..6]), "{shown}");
        assert!(!shown.contains(decimal), "{shown}");
        assert!(!shown.to_lowercase().contains(&hex), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

#[test]
fn signature_header_lists_one_signature_per_secret_in_order() {
    let secrets = [secret(1), secret(2), secret(3)];
    let header = signature_header(&secrets, ID, TS, BODY);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 3);
    for (entry, secret) in entries.iter().zip(&secrets) {
        assert_eq!(*entry, secret.sign(ID, TS, BODY));
    }
    assert_eq!(signature_header(&[], ID, TS, BODY), "");
}

#[test]
fn header_with_several_signatures_verifies_when_any_matches() {
    let header = signature_header(&[secret(1), secret(2)], ID, TS, BODY);
    let ts = TS.to_string();
    for receiver_secret in [secret(1), secret(2)] {
        let v = verifier(vec![receiver_secret]);
        assert_eq!(v.verify_at(ID, &ts, &header, BODY, TS), Ok(()));
    }
    let v = verifier(vec![secret(3)]);
    assert_eq!(
        v.verify_at(ID, &ts, &header, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn verifier_with_several_secrets_accepts_a_signature_by_any_of_them() {
    let v = verifier(vec![secret(1), secret(2), secret(3)]);
    let ts = TS.to_string();
    for s in [secret(1), secret(2), secret(3)] {
        assert_eq!(v.verify_at(ID, &ts, &s.sign(ID, TS, BODY), BODY, TS), Ok(()));
    }
    assert_eq!(
        v.verify_at(ID, &ts, &secret(4).sign(ID, TS, BODY), BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn non_v1_signature_entries_are_ignored() {
    let good = secret(1).sign(ID, TS, BODY);
    let same_mac_as_v2 = good.replacen("v1,", "v2,", 1);
    let ts = TS.to_string();
    let v = verifier(vec![secret(1)]);

    // A v2 entry next to a good v1 entry is not an error.
    let header = format!("{same_mac_as_v2} v2,bm90IGEgc2lnbmF0dXJl {good}");
    assert_eq!(v.verify_at(ID, &ts, &header, BODY, TS), Ok(()));
    // A correct MAC labelled v2 does not count as a v1 match.
    assert_eq!(
        v.verify_at(ID, &ts, &same_mac_as_v2, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn malformed_signature_entries_are_skipped() {
    let good = secret(1).sign(ID, TS, BODY);
    let ts = TS.to_string();
    let v = verifier(vec![secret(1)]);
    let header = format!("garbage v1 v1,!!notbase64!! v1,AAAA v1,  {good}  ");
    assert_eq!(v.verify_at(ID, &ts, &header, BODY, TS), Ok(()));
    for bad in ["", "   ", "v1,", "v1,!!!", "garbage", "v1,AAAA"] {
        assert_eq!(
            v.verify_at(ID, &ts, bad, BODY, TS),
            Err(Error::NoMatchingSignature),
            "{bad:?}"
        );
    }
}

#[test]
fn tampered_body_is_rejected() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    let mut tampered = BODY.to_vec();
    tampered[10] ^= 1;
    for body in [&tampered[..], &BODY[..BODY.len() - 1], b""] {
        assert_eq!(
            v.verify_at(ID, &TS.to_string(), &sig, body, TS),
            Err(Error::NoMatchingSignature)
        );
    }
}

#[test]
fn wrong_message_id_is_rejected() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    assert_eq!(
        v.verify_at("msg_other", &TS.to_string(), &sig, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn wrong_timestamp_is_rejected() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    let other = TS + 1;
    assert_eq!(
        v.verify_at(ID, &other.to_string(), &sig, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn wrong_secret_is_rejected() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(2)]);
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), &sig, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
    let nobody = verifier(vec![]);
    assert_eq!(
        nobody.verify_at(ID, &TS.to_string(), &sig, BODY, TS),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn timestamp_older_than_tolerance_is_too_old() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    let limit = DEFAULT_TOLERANCE.as_secs() as i64;
    assert_eq!(limit, 300);
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), &sig, BODY, TS + limit + 1),
        Err(Error::TimestampTooOld)
    );
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), &sig, BODY, i64::MAX),
        Err(Error::TimestampTooOld)
    );
}

#[test]
fn timestamp_more_than_tolerance_ahead_is_too_new() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), &sig, BODY, TS - 301),
        Err(Error::TimestampTooNew)
    );
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), &sig, BODY, i64::MIN),
        Err(Error::TimestampTooNew)
    );
}

#[test]
fn timestamp_exactly_at_tolerance_is_accepted() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    for now in [TS - 300, TS, TS + 300] {
        assert_eq!(v.verify_at(ID, &TS.to_string(), &sig, BODY, now), Ok(()));
    }
}

#[test]
fn timestamp_is_checked_before_the_signature() {
    let v = verifier(vec![secret(1)]);
    assert_eq!(
        v.verify_at(ID, &TS.to_string(), "v1,bogus", BODY, TS + 1000),
        Err(Error::TimestampTooOld)
    );
}

#[test]
fn custom_tolerance_is_applied() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]).with_tolerance(Duration::from_secs(10));
    let ts = TS.to_string();
    assert_eq!(v.verify_at(ID, &ts, &sig, BODY, TS + 10), Ok(()));
    assert_eq!(
        v.verify_at(ID, &ts, &sig, BODY, TS + 11),
        Err(Error::TimestampTooOld)
    );
    assert_eq!(
        v.verify_at(ID, &ts, &sig, BODY, TS - 11),
        Err(Error::TimestampTooNew)
    );
    let lenient = verifier(vec![secret(1)]).with_tolerance(Duration::MAX);
    assert_eq!(lenient.verify_at(ID, &ts, &sig, BODY, i64::MAX), Ok(()));
}

#[test]
fn non_numeric_timestamp_is_invalid() {
    let sig = secret(1).sign(ID, TS, BODY);
    let v = verifier(vec![secret(1)]);
    for bad in [
        "",
        "abc",
        "1700000000.5",
        "1.7e9",
        "0x6553f100",
        "99999999999999999999",
    ] {
        assert_eq!(
            v.verify_at(ID, bad, &sig, BODY, TS),
            Err(Error::InvalidTimestamp),
            "{bad:?}"
        );
    }
}

#[test]
fn verify_uses_the_system_clock() {
    let ts = now();
    let sig = secret(1).sign(ID, ts, BODY);
    let v = verifier(vec![secret(1)]);
    assert_eq!(v.verify(ID, &ts.to_string(), &sig, BODY), Ok(()));
    let stale = secret(1).sign(ID, ts - 3600, BODY);
    assert_eq!(
        v.verify(ID, &(ts - 3600).to_string(), &stale, BODY),
        Err(Error::TimestampTooOld)
    );
}

fn headers(ts: i64, sig: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("webhook-id", ID.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig.to_string()),
    ])
}

#[test]
fn verify_headers_accepts_a_valid_delivery() {
    let ts = now();
    let map = headers(ts, &secret(1).sign(ID, ts, BODY));
    let v = verifier(vec![secret(1)]);
    assert_eq!(
        v.verify_headers(|name| map.get(name).map(String::as_str), BODY),
        Ok(())
    );
    assert_eq!(
        v.verify_headers(|name| map.get(name).map(String::as_str), b"other"),
        Err(Error::NoMatchingSignature)
    );
}

#[test]
fn verify_headers_reports_each_missing_header_by_name() {
    let ts = now();
    let full = headers(ts, &secret(1).sign(ID, ts, BODY));
    let v = verifier(vec![secret(1)]);
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut map = full.clone();
        map.remove(missing);
        assert_eq!(
            v.verify_headers(|name| map.get(name).map(String::as_str), BODY),
            Err(Error::MissingHeader(missing))
        );
    }
    assert_eq!(
        v.verify_headers(|_| None, BODY),
        Err(Error::MissingHeader("webhook-id"))
    );
}

#[test]
fn verify_headers_works_with_an_http_header_map_regardless_of_case() {
    use axum::http::{HeaderMap, HeaderValue};
    let ts = now();
    let mut map = HeaderMap::new();
    map.insert("Webhook-Id", HeaderValue::from_static(ID));
    map.insert("WEBHOOK-TIMESTAMP", ts.to_string().parse().unwrap());
    map.insert("Webhook-Signature", secret(1).sign(ID, ts, BODY).parse().unwrap());
    let v = verifier(vec![secret(1)]);
    assert_eq!(
        v.verify_headers(|name| map.get(name).and_then(|v| v.to_str().ok()), BODY),
        Ok(())
    );
}

#[test]
fn errors_display_a_readable_message() {
    assert_eq!(
        Error::MissingHeader("webhook-id").to_string(),
        "missing header `webhook-id`"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::NoMatchingSignature);
    assert_eq!(boxed.to_string(), "no matching webhook signature");
}
