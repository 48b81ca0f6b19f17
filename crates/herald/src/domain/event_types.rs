//! Event types, the catalog they come from, and the subscription patterns webhooks use.
//!
//! A pattern is an exact type (`order.filled`), a wildcard on a dot boundary (`order.*`, which
//! also matches `order.x.y`), or `*`. Every pattern must match at least one catalog type: a
//! typo must never silently subscribe an endpoint to nothing (or to everything).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeInfo {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// One of [`OPERATIONAL_EVENT_TYPES`].
    pub operational: bool,
}

impl EventTypeInfo {
    /// The first segment: `transfer` for `transfer.deposit.completed`.
    pub fn group(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
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
            operational,
        })
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the catalog file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the catalog file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

/// The TOML form of `HERALD_CATALOG`:
///
/// ```toml
/// [[event_types]]
/// type = "order.filled"
/// name = "Order filled"             # optional
/// description = "Order fully filled" # optional
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
}

impl Catalog {
    pub fn built_in() -> Self {
        Self {
            types: info(BUILT_IN, false).chain(info(OPERATIONAL, true)).collect(),
        }
    }

    /// Loads a catalog file that replaces the built-in one.
    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: shown.clone(),
            source,
        })?;
        let invalid = |message: String| CatalogError::Invalid {
            path: shown.clone(),
            message,
        };
        let file: CatalogFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut seen = BTreeSet::new();
        let mut types = Vec::with_capacity(file.event_types.len());
        for entry in file.event_types {
            if !is_valid_type_name(&entry.name) {
                return Err(invalid(format!(
                    "`{}` is not a valid event type (lowercase dot-separated segments of a-z, 0-9 and _)",
                    entry.name
                )));
            }
            if entry.name == TEST_EVENT_TYPE || is_operational(&entry.name) {
                return Err(invalid(format!(
                    "`{}` is reserved: Herald publishes it itself",
                    entry.name
                )));
            }
            if !seen.insert(entry.name.clone()) {
                return Err(invalid(format!("`{}` is listed twice", entry.name)));
            }
            let display_name = entry.display.unwrap_or_else(|| humanize(&entry.name));
            types.push(EventTypeInfo {
                description: entry.description.unwrap_or_else(|| display_name.clone()),
                display_name,
                name: entry.name,
                operational: false,
            });
        }
        if types.is_empty() {
            return Err(invalid("it lists no event types".to_owned()));
        }
        types.extend(info(OPERATIONAL, true));
        Ok(Self { types })
    }

    pub fn types(&self) -> &[EventTypeInfo] {
        &self.types
    }

    pub fn contains(&self, name: &str) -> bool {
        self.types.iter().any(|t| t.name == name)
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
}
