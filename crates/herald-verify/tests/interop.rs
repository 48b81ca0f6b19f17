//! Interoperability with the reference `standardwebhooks` crate, in both directions.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use herald_verify::{Secret, Verifier, signature_header};
use proptest::prelude::*;
use standardwebhooks::Webhook;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Herald's textual form of a key: `whsec_` + padded standard base64.
fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(key))
}

fn header_map(id: &str, ts: i64, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    map.insert("webhook-timestamp", HeaderValue::from(ts));
    map.insert("webhook-signature", HeaderValue::from_str(signature).unwrap());
    map
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reference_signature_verifies_with_ours(
        key in proptest::collection::vec(any::<u8>(), 1..80),
        id in "msg_[A-Za-z0-9]{1,32}",
        payload in any::<String>(),
    ) {
        let ts = now();
        let reference = Webhook::new(&whsec(&key)).unwrap();
        let signature = reference.sign(&id, ts, payload.as_bytes()).unwrap();

        let ours = Secret::parse(&whsec(&key)).unwrap();
        prop_assert_eq!(&ours.sign(&id, ts, payload.as_bytes()), &signature);
        let verifier = Verifier::new(vec![ours]);
        prop_assert_eq!(
            verifier.verify(&id, &ts.to_string(), &signature, payload.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn our_signature_verifies_with_reference(
        key in proptest::collection::vec(any::<u8>(), 1..80),
        other_key in proptest::collection::vec(any::<u8>(), 32),
        id in "msg_[A-Za-z0-9]{1,32}",
        payload in any::<String>(),
    ) {
        let ts = now();
        let ours = Secret::parse(&whsec(&key)).unwrap();
        let reference = Webhook::new(&whsec(&key)).unwrap();

        let single = ours.sign(&id, ts, payload.as_bytes());
        prop_assert!(reference.verify(payload.as_bytes(), &header_map(&id, ts, &single)).is_ok());

        // A rotation header (another secret's signature first) is accepted too.
        let rotating = signature_header(
            &[Secret::from_bytes(&other_key), ours],
            &id,
            ts,
            payload.as_bytes(),
        );
        prop_assert!(reference.verify(payload.as_bytes(), &header_map(&id, ts, &rotating)).is_ok());

        // And a tampered body is rejected by the reference as well.
        let mut tampered = payload.clone();
        tampered.push('!');
        prop_assert!(reference.verify(tampered.as_bytes(), &header_map(&id, ts, &single)).is_err());
    }
}

#[test]
fn conformance_vector_matches_reference_implementation() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (id, ts, body) = (
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    let reference = Webhook::new(secret).unwrap().sign(id, ts, body).unwrap();
    let ours = Secret::parse(secret).unwrap().sign(id, ts, body);
    assert_eq!(ours, reference);
    assert_eq!(ours, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
