//! Event types, the catalog they come from, and the subscription patterns webhooks use.
//!
//! A pattern is an exact type (`order.filled`), a wildcard on a dot boundary (`order.*`, which
//! also matches `order.x.y`), or `*`. Every pattern must match at least one catalog type: a
//! typo must never silently subscribe an endpoint to nothing (or to everything).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::schema::{DataSchema, Violation};

/// Sent only by the test route; never listed, never publishable, never subscribable.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// Herald's own events about its delivery system (API.md section 11): in every catalog,
/// published only by Herald, and sent only to webhooks that name them (exactly or as
/// `webhook.*` / `delivery.*`): `*` and "every type" leave them out, so a platform's
/// catch-all endpoint never starts receiving them.
pub const OPERATIONAL_EVENT_TYPES: [&str; 3] = ["webhook.disabled", "webhook.enabled", "delivery.failed"];

pub fn is_operational(name: &str) -> bool {
    OPERATIONAL_EVENT_TYPES.contains(&name)
}

/// Lowercase dot-separated segments of `[a-z0-9_]`, e.g. `transfer.deposit.completed`.
pub fn is_valid_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// One entry of the catalog, as `GET /v1/webhooks/event-types` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeInfo {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// One of [`OPERATIONAL_EVENT_TYPES`].
    pub operational: bool,
    /// A realistic `data` (always a JSON object): what tenants see before the first real
    /// event, and what the test route and `herald trigger` send.
    pub example: Option<Value>,
    /// What `data` must look like; publishing checks it. Compiled once, at load.
    pub schema: Option<DataSchema>,
}

impl EventTypeInfo {
    /// The first segment: `transfer` for `transfer.deposit.completed`.
    pub fn group(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    /// Checks `data` against the type's schema; a type without one takes any object.
    pub fn check(&self, data: &Value) -> Result<(), Violation> {
        self.schema.as_ref().map_or(Ok(()), |schema| schema.check(data))
    }

    /// Whether the type has a schema (so publishing must parse `data` to check it).
    pub fn has_schema(&self) -> bool {
        self.schema.is_some()
    }
}

/// The event types this deployment knows, in a stable order.
#[derive(Debug, Clone)]
pub struct Catalog {
    types: Vec<EventTypeInfo>,
}

const BUILT_IN: &[(&str, &str, &str)] = &[
    ("account.created", "Account created", "A new account was opened"),
    ("account.updated", "Account updated", "Account details changed"),
    ("order.accepted", "Order accepted", "Order accepted by the venue"),
    ("order.filled", "Order filled", "Order fully filled"),
    (
        "order.partially_filled",
        "Order partially filled",
        "Part of an order was filled",
    ),
    (
        "order.canceled",
        "Order canceled",
        "Order canceled before it was fully filled",
    ),
    (
        "order.rejected",
        "Order rejected",
        "Order rejected by the venue or risk checks",
    ),
    (
        "transfer.deposit.initiated",
        "Deposit initiated",
        "A deposit was started",
    ),
    (
        "transfer.deposit.completed",
        "Deposit completed",
        "Deposit funds arrived",
    ),
    (
        "transfer.deposit.failed",
        "Deposit failed",
        "A deposit could not be completed",
    ),
    (
        "transfer.withdrawal.initiated",
        "Withdrawal initiated",
        "A withdrawal was requested",
    ),
    (
        "transfer.withdrawal.completed",
        "Withdrawal completed",
        "Withdrawal funds were sent",
    ),
    (
        "transfer.withdrawal.failed",
        "Withdrawal failed",
        "A withdrawal could not be completed",
    ),
    (
        "document.approved",
        "Document approved",
        "A submitted document was approved",
    ),
    (
        "document.rejected",
        "Document rejected",
        "A submitted document was rejected",
    ),
    (
        "kyc.verification.approved",
        "KYC verification approved",
        "Identity verification passed",
    ),
    (
        "kyc.verification.rejected",
        "KYC verification rejected",
        "Identity verification failed",
    ),
];

/// Herald's own types, after the platform's in every catalog.
const OPERATIONAL: &[(&str, &str, &str)] = &[
    (
        "webhook.disabled",
        "Webhook disabled",
        "Herald disabled a webhook: its endpoint answered 410 Gone, or failed for HERALD_DISABLE_AFTER",
    ),
    (
        "webhook.enabled",
        "Webhook enabled",
        "A disabled webhook was enabled again",
    ),
    (
        "delivery.failed",
        "Delivery failed",
        "A delivery failed after its last retry",
    ),
];

fn info(table: &[(&str, &str, &str)], operational: bool) -> impl Iterator<Item = EventTypeInfo> {
    table
        .iter()
        .map(move |(name, display, description)| EventTypeInfo {
            name: (*name).to_owned(),
            display_name: (*display).to_owned(),
            description: (*description).to_owned(),
            example: Some(built_in_example(name)),
            // No built-in schemas: platforms publish their own shapes for these names, and
            // a schema here would refuse them.
            schema: None,
            operational,
        })
}

/// The seed platform's ids and times, shared by the built-in examples so that an order's
/// events tell one story.
const ACCOUNT_ID: &str = "acc_01jq3v8m2k4n6p8r0s2t4w6y8z";
const CREATED_AT: &str = "2025-03-14T14:30:00.000Z";
const UPDATED_AT: &str = "2025-03-14T14:30:02.418Z";

/// Adds `extra`'s members to the object `base`.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

/// An order of 100 AAPL at a 187.50 limit, at one stage of its life.
fn order(status: &str, filled: u32, average_price: Option<&str>, extra: Value) -> Value {
    with(
        json!({
            "id": "ord_01jq3v9a7c5e3g1j9k7m5n3p1r",
            "account_id": ACCOUNT_ID,
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "time_in_force": "day",
            "quantity": 100,
            "filled_quantity": filled,
            "limit_price": "187.50",
            "average_price": average_price,
            "status": status,
            "created_at": CREATED_AT,
            "updated_at": UPDATED_AT,
        }),
        extra,
    )
}

/// A transfer of 2,500.00 USD by ACH; the amount is a decimal string, never a float.
fn transfer(id: &str, direction: &str, status: &str, extra: Value) -> Value {
    with(
        json!({
            "id": id,
            "account_id": ACCOUNT_ID,
            "direction": direction,
            "amount": "2500.00",
            "currency": "USD",
            "method": "ach",
            "status": status,
            "created_at": CREATED_AT,
            "updated_at": UPDATED_AT,
        }),
        extra,
    )
}

fn account(extra: Value) -> Value {
    with(
        json!({
            "id": ACCOUNT_ID,
            "type": "individual",
            "status": "active",
            "base_currency": "USD",
            "owner": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
            "created_at": CREATED_AT,
            "updated_at": UPDATED_AT,
        }),
        extra,
    )
}

fn document(status: &str, extra: Value) -> Value {
    with(
        json!({
            "id": "doc_01jq3vb4d6f8h0k2m4p6r8t0v2",
            "account_id": ACCOUNT_ID,
            "type": "proof_of_address",
            "file_name": "utility-bill-2025-02.pdf",
            "status": status,
            "submitted_at": CREATED_AT,
            "reviewed_at": UPDATED_AT,
        }),
        extra,
    )
}

fn kyc(status: &str, extra: Value) -> Value {
    with(
        json!({
            "id": "kyc_01jq3vc8e0g2j4m6p8s0v2x4z6",
            "account_id": ACCOUNT_ID,
            "level": "standard",
            "status": status,
            "checks": ["identity_document", "selfie", "address", "sanctions"],
            "started_at": CREATED_AT,
            "completed_at": UPDATED_AT,
        }),
        extra,
    )
}

/// The built-in example for a built-in type (`{}` for a name not built in).
fn built_in_example(name: &str) -> Value {
    const DEPOSIT: &str = "tfr_01jq3vd2f4h6k8n0q2s4w6y8a0";
    const WITHDRAWAL: &str = "tfr_01jq3ve6g8j0m2p4r6t8w0y2b4";
    match name {
        "account.created" => account(json!({})),
        "account.updated" => account(json!({"changed": ["owner.email"]})),
        "order.accepted" => order("accepted", 0, None, json!({})),
        "order.filled" => order("filled", 100, Some("187.42"), json!({"filled_at": UPDATED_AT})),
        "order.partially_filled" => order("partially_filled", 40, Some("187.45"), json!({})),
        "order.canceled" => order(
            "canceled",
            40,
            Some("187.45"),
            json!({"canceled_at": UPDATED_AT, "cancel_reason": "requested_by_customer"}),
        ),
        "order.rejected" => order(
            "rejected",
            0,
            None,
            json!({"reject_reason": "insufficient_buying_power"}),
        ),
        "transfer.deposit.initiated" => transfer(DEPOSIT, "deposit", "pending", json!({})),
        "transfer.deposit.completed" => transfer(
            DEPOSIT,
            "deposit",
            "completed",
            json!({"completed_at": UPDATED_AT}),
        ),
        "transfer.deposit.failed" => transfer(
            DEPOSIT,
            "deposit",
            "failed",
            json!({"failure_reason": "insufficient_funds"}),
        ),
        "transfer.withdrawal.initiated" => transfer(WITHDRAWAL, "withdrawal", "pending", json!({})),
        "transfer.withdrawal.completed" => transfer(
            WITHDRAWAL,
            "withdrawal",
            "completed",
            json!({"completed_at": UPDATED_AT}),
        ),
        "transfer.withdrawal.failed" => transfer(
            WITHDRAWAL,
            "withdrawal",
            "failed",
            json!({"failure_reason": "bank_account_closed"}),
        ),
        "document.approved" => document("approved", json!({})),
        "document.rejected" => document("rejected", json!({"rejection_reason": "document_expired"})),
        "kyc.verification.approved" => kyc("approved", json!({})),
        "kyc.verification.rejected" => kyc("rejected", json!({"rejection_reasons": ["document_unreadable"]})),
        "webhook.disabled" => json!({
            "webhook_id": "wh_01jq3vf0h2k4n6q8s0v2x4z6c8",
            "org_id": "org_01jq3v7k1j3m5p7r9t1w3y5a7c",
            "url": "https://hooks.tenant.example/herald",
            "reason": "gone",
            "disabled_at": UPDATED_AT,
        }),
        "webhook.enabled" => json!({
            "webhook_id": "wh_01jq3vf0h2k4n6q8s0v2x4z6c8",
            "org_id": "org_01jq3v7k1j3m5p7r9t1w3y5a7c",
            "url": "https://hooks.tenant.example/herald",
            "enabled_at": UPDATED_AT,
        }),
        "delivery.failed" => json!({
            "delivery_id": "dlv_01jq3vg4j6m8p0r2t4w6y8a0d2",
            "event_id": "evt_01jq3vh8k0n2q4s6v8x0z2b4e6",
            "event_type": "order.filled",
            "webhook_id": "wh_01jq3vf0h2k4n6q8s0v2x4z6c8",
            "org_id": "org_01jq3v7k1j3m5p7r9t1w3y5a7c",
            "attempts": 6,
            "last_error": "http_status",
            "last_response_status": 503,
        }),
        _ => json!({}),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the catalog file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the catalog file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

/// The TOML form of `HERALD_CATALOG`. `example` and `schema` are JSON, written either as a
/// string of JSON or as an inline table:
///
/// ```toml
/// [[event_types]]
/// type = "order.filled"
/// name = "Order filled"             # optional
/// description = "Order fully filled" # optional
/// example = '{"id": "ord_1", "quantity": 100}'
/// schema = { type = "object", required = ["id"] }
/// ```
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    event_types: Vec<CatalogFileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFileEntry {
    #[serde(rename = "type")]
    name: String,
    #[serde(default, rename = "name")]
    display: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    example: Option<Value>,
    #[serde(default)]
    schema: Option<Value>,
}

/// A TOML value meant as JSON: a string is JSON text, anything else is taken as it is.
fn json_of(value: Value) -> Result<Value, String> {
    match value {
        Value::String(text) => serde_json::from_str(&text).map_err(|e| format!("is not valid JSON: {e}")),
        other => Ok(other),
    }
}

impl CatalogFileEntry {
    /// Checks the entry (the name is checked by the caller) into a catalog entry; the error
    /// says what is wrong, for a message that names the type.
    fn into_info(self) -> Result<EventTypeInfo, String> {
        let schema = self
            .schema
            .map(|raw| {
                let raw = json_of(raw).map_err(|e| format!("its schema {e}"))?;
                DataSchema::compile(raw).map_err(|e| format!("its schema: {e}"))
            })
            .transpose()?;
        let example = self
            .example
            .map(|raw| json_of(raw).map_err(|e| format!("its example {e}")))
            .transpose()?;
        if let Some(example) = &example {
            if !example.is_object() {
                return Err("its example is not a JSON object (an example is a whole `data`)".to_owned());
            }
            if let Some(schema) = &schema {
                schema.check(example).map_err(|v| {
                    format!(
                        "its example fails its own schema at `{}`: {}",
                        v.path_under("example"),
                        v.message
                    )
                })?;
            }
        }
        let display_name = self.display.unwrap_or_else(|| humanize(&self.name));
        Ok(EventTypeInfo {
            description: self.description.unwrap_or_else(|| display_name.clone()),
            display_name,
            name: self.name,
            example,
            schema,
            operational: false,
        })
    }
}

impl Catalog {
    pub fn built_in() -> Self {
        Self {
            types: info(BUILT_IN, false).chain(info(OPERATIONAL, true)).collect(),
        }
    }

    /// Loads a catalog file that replaces the built-in one. Every schema is compiled here,
    /// once; a problem is reported naming the type.
    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| CatalogError::Invalid { path: shown, message })
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = BTreeSet::new();
        let mut types = Vec::with_capacity(file.event_types.len());
        for entry in file.event_types {
            let name = entry.name.clone();
            if !is_valid_type_name(&name) {
                return Err(format!(
                    "`{name}` is not a valid event type (lowercase dot-separated segments of a-z, 0-9 and _)"
                ));
            }
            if name == TEST_EVENT_TYPE {
                return Err(format!("`{name}` is reserved: the test route sends it"));
            }
            if OPERATIONAL_EVENT_TYPES.contains(&name.as_str()) {
                return Err(format!("`{name}` is reserved: Herald publishes it itself"));
            }
            if !seen.insert(name.clone()) {
                return Err(format!("`{name}` is listed twice"));
            }
            types.push(
                entry
                    .into_info()
                    .map_err(|problem| format!("`{name}`: {problem}"))?,
            );
        }
        if types.is_empty() {
            return Err("it lists no event types".to_owned());
        }
        types.extend(info(OPERATIONAL, true));
        Ok(Self { types })
    }

    pub fn types(&self) -> &[EventTypeInfo] {
        &self.types
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn get(&self, name: &str) -> Option<&EventTypeInfo> {
        self.types.iter().find(|t| t.name == name)
    }
}

/// `transfer.deposit.completed` → `Transfer deposit completed`.
fn humanize(name: &str) -> String {
    let spaced = name.replace(['.', '_'], " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

/// One subscription entry of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every type, now and future.
    All,
    /// `order.*`: the stored prefix is `order.`.
    Prefix(String),
    Exact(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("`{0}` is not a valid event type or pattern (use `order.filled`, `order.*` or `*`)")]
    Malformed(String),
    #[error("`{0}` matches no event type in the catalog (see GET /v1/webhooks/event-types)")]
    Unknown(String),
}

impl EventPattern {
    /// Parses and checks the pattern against the catalog.
    pub fn parse(s: &str, catalog: &Catalog) -> Result<Self, PatternError> {
        let pattern = if s == "*" {
            Self::All
        } else if let Some(prefix) = s.strip_suffix(".*") {
            if !is_valid_type_name(prefix) {
                return Err(PatternError::Malformed(s.to_owned()));
            }
            Self::Prefix(format!("{prefix}."))
        } else if is_valid_type_name(s) {
            Self::Exact(s.to_owned())
        } else {
            return Err(PatternError::Malformed(s.to_owned()));
        };
        if catalog.types().iter().any(|t| pattern.matches(&t.name)) {
            Ok(pattern)
        } else {
            Err(PatternError::Unknown(s.to_owned()))
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => !is_operational(event_type),
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            Self::Exact(name) => name == event_type,
        }
    }

    /// A stored text form, checked when it was stored (so not against the catalog again: a
    /// type since removed from it still matches nothing new).
    pub fn from_stored(text: &str) -> Option<Self> {
        if text == "*" {
            Some(Self::All)
        } else if let Some(prefix) = text.strip_suffix(".*") {
            is_valid_type_name(prefix).then(|| Self::Prefix(format!("{prefix}.")))
        } else {
            is_valid_type_name(text).then(|| Self::Exact(text.to_owned()))
        }
    }

    /// The text form, as the webhook object shows it.
    pub fn as_text(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Prefix(prefix) => format!("{prefix}*"),
            Self::Exact(name) => name.clone(),
        }
    }
}

/// What a webhook subscribes to, parsed once from the stored text forms (which were checked
/// against the catalog when stored): `None` is every type, now and future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription(Option<Vec<EventPattern>>);

impl Subscription {
    /// From the stored JSON array of text forms (`None`: every type); `None` when the
    /// stored value is not such an array.
    pub fn from_stored(json: Option<&str>) -> Option<Self> {
        let Some(json) = json else {
            return Some(Self(None));
        };
        let texts: Vec<String> = serde_json::from_str(json).ok()?;
        let patterns = texts
            .iter()
            .map(|t| EventPattern::from_stored(t))
            .collect::<Option<_>>()?;
        Some(Self(Some(patterns)))
    }

    /// Does it select `event_type`?
    pub fn matches(&self, event_type: &str) -> bool {
        match &self.0 {
            None => !is_operational(event_type),
            Some(patterns) => patterns.iter().any(|p| p.matches(event_type)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_on_dot_boundaries_at_any_depth() {
        let catalog = Catalog::built_in();
        let transfer = EventPattern::parse("transfer.*", &catalog).expect("valid");
        assert!(transfer.matches("transfer.deposit.completed"));
        assert!(!transfer.matches("transfers.x"));
        let order = EventPattern::parse("order.*", &catalog).expect("valid");
        assert!(order.matches("order.filled"));
        assert!(!order.matches("order"));
        assert!(
            EventPattern::parse("*", &catalog)
                .expect("valid")
                .matches("kyc.verification.approved")
        );
    }

    #[test]
    fn patterns_matching_nothing_in_the_catalog_are_refused() {
        let catalog = Catalog::built_in();
        assert_eq!(
            EventPattern::parse("order.fill", &catalog),
            Err(PatternError::Unknown("order.fill".into()))
        );
        assert_eq!(
            EventPattern::parse("webhook.test", &catalog),
            Err(PatternError::Unknown("webhook.test".into()))
        );
        for bad in [
            "order.",
            "Order.filled",
            "order..filled",
            "order*",
            "*.filled",
            "",
        ] {
            assert!(
                matches!(
                    EventPattern::parse(bad, &catalog),
                    Err(PatternError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_text_forms_select_the_same_types() {
        let list = vec!["order.*".to_owned(), "kyc.verification.approved".to_owned()];
        let json = serde_json::to_string(&list).expect("json");
        let subscription = Subscription::from_stored(Some(&json)).expect("stored forms parse");
        assert!(subscription.matches("order.filled"));
        assert!(subscription.matches("kyc.verification.approved"));
        assert!(!subscription.matches("kyc.verification.rejected"));
        let every = Subscription::from_stored(None).expect("null is every type");
        assert!(every.matches("anything.at.all"));
        assert_eq!(Subscription::from_stored(Some("not json")), None);
        assert_eq!(Subscription::from_stored(Some(r#"["bad pattern!"]"#)), None);
    }

    #[test]
    fn the_built_in_catalog_has_groups_and_descriptions() {
        let catalog = Catalog::built_in();
        let filled = catalog
            .types()
            .iter()
            .find(|t| t.name == "order.filled")
            .expect("listed");
        assert_eq!(filled.group(), "order");
        assert_eq!(filled.display_name, "Order filled");
        assert_eq!(filled.description, "Order fully filled");
        assert!(!catalog.contains(TEST_EVENT_TYPE));
        assert_eq!(catalog.types().iter().filter(|t| !t.operational).count(), 17);
    }

    #[test]
    fn operational_types_are_in_every_catalog_but_only_named_subscriptions_get_them() {
        let catalog = Catalog::built_in();
        for name in OPERATIONAL_EVENT_TYPES {
            let info = catalog.types().iter().find(|t| t.name == name).expect("listed");
            assert!(info.operational, "{name}");
            let every = Subscription::from_stored(None).expect("every type");
            assert!(!every.matches(name), "{name}");
            let star = Subscription::from_stored(Some(r#"["*"]"#)).expect("star");
            assert!(!star.matches(name), "{name}");
            let exact = Subscription::from_stored(Some(&format!(r#"["{name}"]"#))).expect("exact");
            assert!(exact.matches(name), "{name}");
        }
        let webhook = EventPattern::parse("webhook.*", &catalog).expect("webhook.* names operational types");
        assert!(webhook.matches("webhook.disabled") && webhook.matches("webhook.enabled"));
        let delivery = EventPattern::parse("delivery.*", &catalog).expect("delivery.* too");
        assert!(delivery.matches("delivery.failed"));
        assert!(
            Subscription::from_stored(None)
                .expect("every type")
                .matches("order.filled")
        );
    }

    #[test]
    fn every_built_in_type_has_an_object_example_in_the_seed_platforms_shape() {
        let catalog = Catalog::built_in();
        for t in catalog.types() {
            let example = t.example.as_ref().expect("every built-in type has an example");
            assert!(example.is_object(), "{}: {example}", t.name);
            let id = if t.operational { "webhook_id" } else { "id" };
            assert!(example.get(id).is_some(), "{} has an {id}", t.name);
            assert!(t.schema.is_none(), "{}: built-in types take any shape", t.name);
        }
        let filled = catalog
            .get("order.filled")
            .and_then(|t| t.example.clone())
            .expect("order.filled");
        for field in [
            "id",
            "account_id",
            "symbol",
            "side",
            "quantity",
            "filled_quantity",
            "average_price",
            "status",
            "created_at",
            "updated_at",
        ] {
            assert!(filled.get(field).is_some(), "order.filled has {field}");
        }
        assert_eq!(filled["status"], "filled");
        assert_eq!(filled["filled_quantity"], filled["quantity"]);
        let deposit = catalog
            .get("transfer.deposit.completed")
            .and_then(|t| t.example.clone())
            .expect("deposit");
        assert_eq!(deposit["amount"], "2500.00", "amounts are decimal strings");
        for field in ["id", "account_id", "currency", "direction", "status"] {
            assert!(deposit.get(field).is_some(), "a transfer has {field}");
        }
    }

    const WITH_EXAMPLES_AND_SCHEMAS: &str = r#"
[[event_types]]
type = "invoice.paid"
example = '{"id": "inv_1", "amount": "12.50"}'
schema = '{"type": "object", "required": ["id", "amount"], "properties": {"amount": {"type": "string"}}}'

[[event_types]]
type = "invoice.voided"
description = "An invoice was voided"
example = { id = "inv_2", reason = "duplicate" }
schema = { type = "object", required = ["id"], properties = { reason = { enum = ["duplicate", "fraud"] } } }

[[event_types]]
type = "invoice.sent"
"#;

    #[test]
    fn a_catalog_file_takes_examples_and_schemas_as_json_strings_or_inline_tables() {
        let catalog = Catalog::from_toml(WITH_EXAMPLES_AND_SCHEMAS).expect("valid");
        let paid = catalog.get("invoice.paid").expect("listed");
        assert_eq!(paid.example, Some(json!({"id": "inv_1", "amount": "12.50"})));
        assert_eq!(
            paid.check(&json!({"id": "x", "amount": 12})).map_err(|v| v.path),
            Err("amount".to_owned())
        );
        let voided = catalog.get("invoice.voided").expect("listed");
        assert_eq!(
            voided.example,
            Some(json!({"id": "inv_2", "reason": "duplicate"}))
        );
        assert_eq!(
            voided.schema.as_ref().map(DataSchema::raw),
            Some(
                &json!({"type": "object", "required": ["id"], "properties": {"reason": {"enum": ["duplicate", "fraud"]}}})
            )
        );
        assert!(voided.check(&json!({"id": "x", "reason": "typo"})).is_err());
        let sent = catalog.get("invoice.sent").expect("listed");
        assert_eq!((&sent.example, sent.has_schema()), (&None, false));
        assert!(
            sent.check(&json!({"anything": 1})).is_ok(),
            "no schema: not checked"
        );
    }

    #[test]
    fn a_bad_catalog_entry_is_refused_naming_the_type_and_the_problem() {
        let cases = [
            (
                "type = \"a.b\"\nschema = { type = \"strin\" }",
                "`a.b`: its schema: it is not a valid JSON Schema",
            ),
            (
                "type = \"a.b\"\nschema = '{\"type\": '",
                "`a.b`: its schema is not valid JSON",
            ),
            (
                "type = \"a.b\"\nexample = { n = \"1\" }\nschema = { properties = { n = { type = \"integer\" } } }",
                "`a.b`: its example fails its own schema at `example.n`",
            ),
            (
                "type = \"a.b\"\nexample = '[1, 2]'",
                "`a.b`: its example is not a JSON object",
            ),
            (
                "type = \"a.b\"\n[[event_types]]\ntype = \"a.b\"",
                "`a.b` is listed twice",
            ),
            ("type = \"webhook.test\"", "`webhook.test` is reserved"),
            ("type = \"webhook.disabled\"", "`webhook.disabled` is reserved"),
            ("type = \"webhook.enabled\"", "`webhook.enabled` is reserved"),
            ("type = \"delivery.failed\"", "`delivery.failed` is reserved"),
        ];
        for (entry, expected) in cases {
            let text = format!("[[event_types]]\n{entry}\n");
            let error = Catalog::from_toml(&text).expect_err(entry);
            assert!(error.contains(expected), "{entry}: {error}");
        }
    }
}
