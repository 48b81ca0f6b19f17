//! JSON Schemas for event data: compiled once when the catalog is loaded, checked on every
//! publish of their type.
//!
//! `boon` compiles and validates (draft 2020-12 unless a schema's `$schema` names another
//! draft). It is the lean choice: no HTTP client, a handful of small dependencies. A schema
//! may only refer to itself: every `$ref` to another document is refused at load, so a
//! catalog never reaches for a file or the network. `format` is asserted (`date-time`,
//! `email`, `uuid`, …): a schema that says `"format": "date-time"` means it.

use std::fmt;
use std::sync::Arc;

use boon::{
    CompileError, Compiler, Draft, ErrorKind, InstanceToken, SchemaIndex, Schemas, UrlLoader, ValidationError,
};
use serde_json::Value;

/// A compiled schema for one event type's `data`, with the JSON it came from (for the catalog
/// route). Cloning shares the compiled form.
#[derive(Clone)]
pub struct DataSchema {
    raw: Value,
    compiled: Arc<Schemas>,
    index: SchemaIndex,
}

impl fmt::Debug for DataSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DataSchema").field(&self.raw).finish()
    }
}

impl PartialEq for DataSchema {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

/// Where `data` failed its schema, and what the schema wanted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The failing place inside `data`, in dot form (`amount`, `items.0.price`); empty for
    /// `data` itself.
    pub path: String,
    /// What the schema wanted, e.g. `want string, but got number`.
    pub message: String,
}

impl Violation {
    /// The path under a root name: `data` + `amount` → `data.amount`.
    pub fn path_under(&self, root: &str) -> String {
        if self.path.is_empty() {
            root.to_owned()
        } else {
            format!("{root}.{}", self.path)
        }
    }
}

/// Refuses every document a schema refers to outside itself.
struct NoExternalRefs;

impl UrlLoader for NoExternalRefs {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("`{url}` is outside the schema: a catalog schema may only refer to itself").into())
    }
}

impl DataSchema {
    /// Compiles `raw`; the error says why it is not a usable schema.
    pub fn compile(raw: Value) -> Result<Self, String> {
        // The schema's own address, only for resolving its internal references.
        const LOCATION: &str = "urn:herald:event-data-schema";
        let mut compiler = Compiler::new();
        compiler.set_default_draft(Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler.use_loader(Box::new(NoExternalRefs));
        let mut compiled = Schemas::new();
        compiler
            .add_resource(LOCATION, raw.clone())
            .map_err(|e| describe_compile_error(&e))?;
        let index = compiler
            .compile(LOCATION, &mut compiled)
            .map_err(|e| describe_compile_error(&e))?;
        Ok(Self {
            raw,
            compiled: Arc::new(compiled),
            index,
        })
    }

    /// The schema as written.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Checks `data` against the schema; the first failure found is reported.
    pub fn check(&self, data: &Value) -> Result<(), Violation> {
        self.compiled
            .validate(data, self.index)
            .map_err(|e| violation(&e))
    }
}

/// The error that says what was wanted: wrappers (the schema, a `$ref`, a group) are
/// descended into; the first real failure below them is the one reported.
fn innermost<'a, 's, 'v>(mut error: &'a ValidationError<'s, 'v>) -> &'a ValidationError<'s, 'v> {
    while matches!(
        error.kind,
        ErrorKind::Group | ErrorKind::Schema { .. } | ErrorKind::Reference { .. }
    ) {
        match error.causes.first() {
            Some(cause) => error = cause,
            None => break,
        }
    }
    error
}

fn violation(error: &ValidationError<'_, '_>) -> Violation {
    let error = innermost(error);
    let mut segments: Vec<String> = error
        .instance_location
        .tokens
        .iter()
        .map(|token| match token {
            InstanceToken::Prop(name) => name.to_string(),
            InstanceToken::Item(index) => index.to_string(),
        })
        .collect();
    // A missing or unexpected property is named in the path, where the caller looks for it.
    let message = match &error.kind {
        ErrorKind::Required { want } if !want.is_empty() => {
            segments.push(want[0].to_owned());
            "is required".to_owned()
        }
        ErrorKind::AdditionalProperties { got } if !got.is_empty() => {
            segments.push(got[0].to_string());
            "is not allowed (the schema lists every property it takes)".to_owned()
        }
        kind => kind.to_string(),
    };
    Violation {
        path: segments.join("."),
        message,
    }
}

fn describe_compile_error(error: &CompileError) -> String {
    match error {
        CompileError::ValidationError { src, .. } => {
            let wrong = innermost(src);
            format!(
                "it is not a valid JSON Schema: at `{}`: {}",
                wrong.instance_location, wrong.kind
            )
        }
        other => format!("it is not a usable JSON Schema: {other:#}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> DataSchema {
        DataSchema::compile(json!({
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}}
                }}
            }
        }))
        .expect("a valid schema")
    }

    #[test]
    fn a_wrong_type_is_reported_at_its_dot_path_with_what_was_wanted() {
        let failed = schema()
            .check(&json!({"amount": 12}))
            .expect_err("12 is not a string");
        assert_eq!(failed.path, "amount");
        assert_eq!(failed.path_under("data"), "data.amount");
        assert!(failed.message.contains("want string"), "{}", failed.message);
    }

    #[test]
    fn array_items_are_named_by_their_index_as_a_plain_segment() {
        let failed = schema()
            .check(&json!({"amount": "1.00", "items": [{"price": 1}, {"price": "x"}]}))
            .expect_err("x is not a number");
        assert_eq!(failed.path_under("data"), "data.items.1.price");
    }

    #[test]
    fn a_missing_required_property_is_named_in_the_path() {
        let failed = schema().check(&json!({})).expect_err("amount is required");
        assert_eq!(failed.path_under("data"), "data.amount");
        assert_eq!(failed.message, "is required");
    }

    #[test]
    fn matching_data_passes() {
        assert_eq!(schema().check(&json!({"amount": "25.00", "items": []})), Ok(()));
    }

    #[test]
    fn formats_are_asserted() {
        let dated =
            DataSchema::compile(json!({"properties": {"at": {"format": "date-time"}}})).expect("valid");
        assert!(dated.check(&json!({"at": "2025-03-14T14:30:00Z"})).is_ok());
        let failed = dated
            .check(&json!({"at": "yesterday"}))
            .expect_err("not a date-time");
        assert_eq!(failed.path, "at");
    }

    #[test]
    fn invalid_schemas_and_external_references_are_refused_at_compile() {
        let typo = DataSchema::compile(json!({"type": "strin"})).expect_err("no such type");
        assert!(typo.contains("not a valid JSON Schema"), "{typo}");
        assert!(typo.contains("/type"), "{typo}");
        let remote =
            DataSchema::compile(json!({"$ref": "https://example.com/order.json"})).expect_err("no fetching");
        assert!(remote.contains("https://example.com/order.json"), "{remote}");
        let file = DataSchema::compile(json!({"$ref": "file:///etc/passwd"})).expect_err("no files");
        assert!(file.contains("only refer to itself"), "{file}");
    }

    #[test]
    fn internal_references_resolve() {
        let with_defs = DataSchema::compile(json!({
            "$defs": {"money": {"type": "string"}},
            "properties": {"amount": {"$ref": "#/$defs/money"}}
        }))
        .expect("valid");
        let failed = with_defs.check(&json!({"amount": 1})).expect_err("not a string");
        assert_eq!(failed.path, "amount");
    }
}
