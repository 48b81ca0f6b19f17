//! A webhook's custom headers (API.md section 3, "Delivery controls"): name → value pairs
//! sent on every delivery, such as an API key the receiver checks.
//!
//! They are parsed once, where they enter (the API's JSON object, the dashboard's
//! `Name: value` lines, or a stored row when the engine opens it), into [`CustomHeaders`];
//! the engine never meets a header that could replace one of Herald's own or that the HTTP
//! client would refuse. Values are secrets-like: no message here ever quotes one.

use serde_json::{Map, Value};

/// The most headers one webhook may carry.
pub const MAX_HEADERS: usize = 20;
/// The longest value, in characters (all ASCII, so bytes too).
pub const MAX_VALUE_CHARS: usize = 1024;

/// Names Herald sets itself, or that belong to the connection rather than the request,
/// compared in lowercase. `webhook-*` is refused as a prefix, beside these.
const RESERVED: [&str; 9] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Valid custom headers, in the order given (a JSON object's order is by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(Vec<(String, String)>);

/// Why headers were refused: `param` is `headers` or `headers.<name>`, as the API answers it;
/// `message` names the header, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HeadersError {
    pub param: String,
    pub message: String,
}

impl HeadersError {
    fn whole(message: impl Into<String>) -> Self {
        Self {
            param: "headers".to_owned(),
            message: message.into(),
        }
    }

    fn at(name: &str, message: impl Into<String>) -> Self {
        Self {
            param: format!("headers.{name}"),
            message: message.into(),
        }
    }
}

impl CustomHeaders {
    /// Parses and checks `json`, the value of a webhook's `headers` field (`null` is none).
    pub fn parse(json: &Value) -> Result<Self, HeadersError> {
        match json {
            Value::Null => Ok(Self::default()),
            Value::Object(map) => Self::from_pairs(map.iter().map(|(name, value)| (name.as_str(), value))),
            _ => Err(HeadersError::whole(
                r#"headers is an object of header names to string values, e.g. {"X-Api-Key": "…"}"#,
            )),
        }
    }

    /// Parses `Name: value` lines, as the dashboard's form edits them; blank lines are
    /// skipped. The checks and their messages are [`CustomHeaders::parse`]'s.
    pub fn parse_lines(text: &str) -> Result<Self, HeadersError> {
        let mut pairs = Vec::new();
        for (number, line) in text.lines().map(str::trim).enumerate() {
            if line.is_empty() {
                continue;
            }
            // The line is not quoted: it may hold a value.
            let (name, value) = line.split_once(':').ok_or_else(|| {
                HeadersError::whole(format!(
                    "each line is a header as Name: value; line {} has no colon",
                    number + 1
                ))
            })?;
            pairs.push((name.trim_end(), Value::String(value.trim_start().to_owned())));
        }
        Self::from_pairs(pairs.iter().map(|(name, value)| (*name, value)))
    }

    /// The one set of rules, whatever the form the headers came in.
    fn from_pairs<'a>(
        pairs: impl ExactSizeIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<Self, HeadersError> {
        if pairs.len() > MAX_HEADERS {
            return Err(HeadersError::whole(format!(
                "at most {MAX_HEADERS} headers; got {}",
                pairs.len()
            )));
        }
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            check_name(name)?;
            if out.iter().any(|(seen, _)| seen.eq_ignore_ascii_case(name)) {
                return Err(HeadersError::at(
                    name,
                    format!("header {name} is given twice (header names ignore letter case)"),
                ));
            }
            let Value::String(value) = value else {
                return Err(HeadersError::at(
                    name,
                    format!("the value of header {name} must be a string"),
                ));
            };
            check_value(name, value)?;
            out.push((name.to_owned(), value.clone()));
        }
        Ok(Self(out))
    }

    /// Headers as stored: written by [`CustomHeaders::to_json`] from parsed ones, so stored
    /// bytes that no longer parse are refused (`None`) rather than sent.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        Self::parse(&serde_json::from_slice(bytes).ok()?).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Name and value pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The JSON object the webhook object shows and the store keeps (sealed).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    }

    /// `Name: value` lines, as [`CustomHeaders::parse_lines`] reads them back.
    pub fn to_lines(&self) -> String {
        self.iter().map(|(n, v)| format!("{n}: {v}\n")).collect()
    }
}

/// A name must be an HTTP token (RFC 9110 section 5.6.2) that Herald does not set itself.
fn check_name(name: &str) -> Result<(), HeadersError> {
    if name.is_empty() {
        return Err(HeadersError::at(name, "a header name cannot be empty"));
    }
    if !name.bytes().all(is_tchar) {
        return Err(HeadersError::at(
            name,
            format!(
                "header name {name} is not an HTTP token: use letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons)"
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("webhook-") {
        return Err(HeadersError::at(
            name,
            format!("header {name} is reserved: webhook-* headers are Herald's signature headers"),
        ));
    }
    if RESERVED.contains(&lower.as_str()) {
        return Err(HeadersError::at(
            name,
            format!("header {name} is reserved: Herald or the connection sets it"),
        ));
    }
    Ok(())
}

/// A value must be printable ASCII, at most [`MAX_VALUE_CHARS`]. A space at either end is
/// refused too: HTTP drops it on the way, so the receiver would not get the value as set.
fn check_value(name: &str, value: &str) -> Result<(), HeadersError> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(HeadersError::at(
            name,
            format!("the value of header {name} is longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(HeadersError::at(
            name,
            format!(
                "the value of header {name} must be printable ASCII (no control characters, no non-ASCII)"
            ),
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(HeadersError::at(
            name,
            format!("the value of header {name} must not begin or end with a space (HTTP drops it)"),
        ));
    }
    Ok(())
}

/// `tchar` of RFC 9110.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(json: Value) -> HeadersError {
        CustomHeaders::parse(&json).expect_err("refused")
    }

    #[test]
    fn valid_headers_parse_and_show_as_given() {
        let json = json!({"X-Api-Key": "k3y with spaces", "Authorization": "Bearer abc", "x-e": ""});
        let headers = CustomHeaders::parse(&json).expect("valid");
        assert_eq!(headers.to_json(), json);
        assert_eq!(headers.iter().count(), 3);
        assert_eq!(
            CustomHeaders::from_stored(headers.to_json().to_string().as_bytes()),
            Some(headers)
        );
    }

    #[test]
    fn null_and_the_empty_object_are_no_headers() {
        assert!(CustomHeaders::parse(&Value::Null).expect("null").is_empty());
        assert!(CustomHeaders::parse(&json!({})).expect("{}").is_empty());
    }

    #[test]
    fn anything_but_an_object_is_refused_as_a_whole() {
        for bad in [json!("X-Api-Key: k"), json!(["a"]), json!(3), json!(true)] {
            assert_eq!(refused(bad).param, "headers");
        }
    }

    #[test]
    fn a_value_that_is_not_a_string_names_its_header() {
        for bad in [
            json!(1),
            json!(null),
            json!(["k"]),
            json!({"a": "b"}),
            json!(false),
        ] {
            let e = refused(json!({"X-Key": bad}));
            assert_eq!(e.param, "headers.X-Key");
            assert!(e.message.contains("must be a string"), "{}", e.message);
        }
    }

    #[test]
    fn names_must_be_http_tokens() {
        for name in ["X-Bad Name", "X:Colon", "", "X-Ünicode", "X\tTab", "(x)", "x/y"] {
            let e = refused(json!({ name: "v" }));
            assert_eq!(e.param, format!("headers.{name}"));
        }
        let ok = CustomHeaders::parse(&json!({"X-A_b.c~!#$%&'*+^`|9": "v"}));
        assert!(ok.is_ok(), "every tchar is allowed");
    }

    #[test]
    fn reserved_names_are_refused_in_any_letter_case() {
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "WEBHOOK-anything",
            "Content-Type",
            "content-length",
            "Host",
            "User-Agent",
            "CONNECTION",
            "Transfer-Encoding",
            "TE",
            "Trailer",
            "Upgrade",
        ] {
            let e = refused(json!({ name: "v" }));
            assert_eq!(e.param, format!("headers.{name}"));
            assert!(e.message.contains("reserved"), "{}", e.message);
        }
        assert!(CustomHeaders::parse(&json!({"Webhook": "v", "X-Host": "v", "Tea": "v"})).is_ok());
    }

    #[test]
    fn values_are_printable_ascii_of_at_most_1024_characters() {
        assert!(CustomHeaders::parse(&json!({"X": "~".repeat(1024)})).is_ok());
        for bad in [
            "x".repeat(1025),
            "a\nb".to_owned(),
            "a\rb".to_owned(),
            "a\tb".to_owned(),
            "\u{7f}".to_owned(),
            "café".to_owned(),
            " leading".to_owned(),
            "trailing ".to_owned(),
        ] {
            let e = refused(json!({"X-Key": bad}));
            assert_eq!(e.param, "headers.X-Key");
            assert!(!e.message.contains(&bad), "a message never quotes a value");
        }
    }

    #[test]
    fn at_most_20_headers() {
        let many = |n: usize| Value::Object((0..n).map(|i| (format!("X-{i}"), json!("v"))).collect());
        assert!(CustomHeaders::parse(&many(20)).is_ok());
        assert_eq!(refused(many(21)).param, "headers");
    }

    #[test]
    fn names_differing_only_in_case_are_one_header_given_twice() {
        let e = CustomHeaders::parse_lines("X-Key: a\nx-key: b").expect_err("twice");
        assert_eq!(e.param, "headers.x-key");
    }

    #[test]
    fn lines_round_trip_and_share_the_json_rules() {
        let headers = CustomHeaders::parse_lines("X-Api-Key: abc:def\r\n\n  Authorization:Bearer t  \n")
            .expect("valid lines");
        assert_eq!(
            headers.to_json(),
            json!({"X-Api-Key": "abc:def", "Authorization": "Bearer t"})
        );
        assert_eq!(CustomHeaders::parse_lines(&headers.to_lines()), Ok(headers));
        assert!(CustomHeaders::parse_lines("").expect("blank").is_empty());
        assert_eq!(
            CustomHeaders::parse_lines("X-Bad Name: v")
                .expect_err("space")
                .param,
            "headers.X-Bad Name"
        );
        assert_eq!(
            CustomHeaders::parse_lines("Content-Type: text/plain")
                .expect_err("reserved")
                .param,
            "headers.Content-Type"
        );
        assert_eq!(
            CustomHeaders::parse_lines("no colon here")
                .expect_err("colon")
                .param,
            "headers"
        );
    }
}
