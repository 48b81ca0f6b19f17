//! A webhook's payload filter: a small MongoDB-style language matched against an event's
//! `data` at publish time (API.md section 3, "Delivery controls").
//!
//! A filter is parsed once, where it enters (the API, or a stored row when the publish path
//! loads its candidates), into [`Filter`]; matching never meets an invalid filter, so a bad
//! one is a 400 naming its bad part, never an error at publish time.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// The largest filter, in bytes of compact JSON.
pub const MAX_BYTES: usize = 4096;
/// The deepest filter: objects and arrays inside each other, the filter itself counted.
pub const MAX_DEPTH: usize = 16;

/// A parsed filter, and the JSON it was parsed from (what the webhook object shows and the
/// store keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    root: Node,
    json: Value,
}

/// Why a filter was refused: the message names the bad part (`filter.amount: $gt takes a
/// number or a string`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// Every one must match: the keys of one filter object, or `$and`.
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Path(Vec<String>, Vec<Op>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Compare(Ordering, bool, Value),
    Exists(bool),
    Prefix(String),
}

impl Filter {
    /// Parses and checks `json`, the value of a webhook's `filter` field.
    pub fn parse(json: &Value) -> Result<Self, FilterError> {
        let compact = json.to_string();
        if compact.len() > MAX_BYTES {
            return Err(FilterError(format!(
                "filter is {} bytes of JSON; at most {MAX_BYTES}",
                compact.len()
            )));
        }
        if super::json::depth(&compact) > MAX_DEPTH {
            return Err(FilterError(format!(
                "filter is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let root = filter_object(json, "filter")?;
        Ok(Self {
            root,
            json: json.clone(),
        })
    }

    /// Parses a filter as stored (compact JSON written by [`Filter::to_json_string`]).
    pub fn from_stored(text: &str) -> Option<Self> {
        Self::parse(&serde_json::from_str(text).ok()?).ok()
    }

    /// The filter as the caller gave it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Compact JSON, for the store.
    pub fn to_json_string(&self) -> String {
        self.json.to_string()
    }

    /// Whether an event whose `data` is `data` goes to the webhook.
    pub fn matches(&self, data: &Value) -> bool {
        self.root.matches(data)
    }
}

fn invalid(at: &str, what: impl std::fmt::Display) -> FilterError {
    FilterError(format!("{at}: {what}"))
}

/// A filter object: each key a path or `$and` / `$or` / `$not`, all of them to match.
fn filter_object(json: &Value, at: &str) -> Result<Node, FilterError> {
    let Value::Object(map) = json else {
        return Err(invalid(at, "a filter is an object"));
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = format!("{at}.{key}");
        all.push(match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(invalid(&here, format!("{key} takes an array of filters")));
                };
                if items.is_empty() {
                    return Err(invalid(&here, format!("{key} takes at least one filter")));
                }
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| filter_object(item, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?;
                if key == "$and" {
                    Node::All(nodes)
                } else {
                    Node::Any(nodes)
                }
            }
            "$not" => Node::Not(Box::new(filter_object(value, &here)?)),
            _ if key.starts_with('$') => {
                return Err(invalid(
                    &here,
                    format!("unknown operator {key} (a filter's keys are paths, $and, $or or $not)"),
                ));
            }
            _ => Node::Path(path(key, &here)?, conditions(value, &here)?),
        });
    }
    Ok(Node::All(all))
}

fn path(key: &str, at: &str) -> Result<Vec<String>, FilterError> {
    let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(invalid(at, "a path is dot-separated names, none of them empty"));
    }
    Ok(segments)
}

/// A path's value: a literal (JSON equality), or an object of operators, all to match.
fn conditions(value: &Value, at: &str) -> Result<Vec<Op>, FilterError> {
    let Value::Object(map) = value else {
        return Ok(vec![Op::Eq(value.clone())]);
    };
    if !map.keys().any(|k| k.starts_with('$')) {
        return Ok(vec![Op::Eq(value.clone())]);
    }
    map.iter()
        .map(|(name, operand)| operator(name, operand, at))
        .collect()
}

fn operator(name: &str, operand: &Value, at: &str) -> Result<Op, FilterError> {
    let here = format!("{at}.{name}");
    let list = |operand: &Value| match operand {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(invalid(&here, format!("{name} takes an array"))),
    };
    let comparable = |operand: &Value| match operand {
        Value::Number(_) | Value::String(_) => Ok(operand.clone()),
        _ => Err(invalid(&here, format!("{name} takes a number or a string"))),
    };
    Ok(match name {
        "$eq" => Op::Eq(operand.clone()),
        "$ne" => Op::Ne(operand.clone()),
        "$in" => Op::In(list(operand)?),
        "$nin" => Op::Nin(list(operand)?),
        "$gt" => Op::Compare(Ordering::Greater, false, comparable(operand)?),
        "$gte" => Op::Compare(Ordering::Greater, true, comparable(operand)?),
        "$lt" => Op::Compare(Ordering::Less, false, comparable(operand)?),
        "$lte" => Op::Compare(Ordering::Less, true, comparable(operand)?),
        "$exists" => match operand {
            Value::Bool(b) => Op::Exists(*b),
            _ => return Err(invalid(&here, "$exists takes true or false")),
        },
        "$prefix" => match operand {
            Value::String(s) => Op::Prefix(s.clone()),
            _ => return Err(invalid(&here, "$prefix takes a string")),
        },
        _ if name.starts_with('$') => {
            return Err(invalid(
                &here,
                format!(
                    "unknown operator {name} (known: $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists, $prefix)"
                ),
            ));
        }
        _ => {
            return Err(invalid(
                &here,
                "an object of operators cannot also hold plain keys",
            ));
        }
    })
}

impl Node {
    fn matches(&self, data: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.matches(data)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(data)),
            Node::Not(node) => !node.matches(data),
            Node::Path(path, ops) => {
                let found = lookup(data, path);
                ops.iter().all(|op| op.matches(found))
            }
        }
    }
}

/// The value at `path`; `None` when a step is missing or goes through a non-object.
fn lookup<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(data, |value, segment| {
        value
            .as_object()
            .and_then(|map: &Map<String, Value>| map.get(segment))
    })
}

impl Op {
    /// A missing path matches only `$exists: false`, `$ne` and `$nin`.
    fn matches(&self, found: Option<&Value>) -> bool {
        match (self, found) {
            (Op::Exists(wanted), found) => *wanted == found.is_some(),
            (Op::Ne(_) | Op::Nin(_), None) => true,
            (_, None) => false,
            (Op::Eq(expected), Some(v)) => json_eq(v, expected),
            (Op::Ne(expected), Some(v)) => !json_eq(v, expected),
            (Op::In(list), Some(v)) => list.iter().any(|e| json_eq(v, e)),
            (Op::Nin(list), Some(v)) => !list.iter().any(|e| json_eq(v, e)),
            (Op::Compare(side, or_equal, bound), Some(v)) => match compare(v, bound) {
                Some(Ordering::Equal) => *or_equal,
                Some(order) => order == *side,
                None => false,
            },
            (Op::Prefix(prefix), Some(v)) => v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())),
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// Two numbers or two strings (by code point); anything else does not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            // Integers exactly (an i64 or u64 beyond 2^53 would lose digits as a float).
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Some(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Some(x.cmp(&y));
            }
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn matches(filter: Value, data: Value) -> bool {
        Filter::parse(&filter).expect("valid filter").matches(&data)
    }

    fn refused(filter: Value) -> String {
        Filter::parse(&filter).expect_err("refused").to_string()
    }

    #[test]
    fn a_literal_is_json_equality_with_numbers_by_value() {
        let data = json!({"symbol": "AAPL", "qty": 10, "tags": ["a", 1], "price": {"amount": 1.5}});
        assert!(matches(json!({"symbol": "AAPL"}), data.clone()));
        assert!(!matches(json!({"symbol": "aapl"}), data.clone()));
        assert!(matches(json!({"qty": 10.0}), data.clone()));
        assert!(matches(json!({"tags": ["a", 1.0]}), data.clone()));
        assert!(!matches(json!({"tags": ["a"]}), data.clone()));
        assert!(matches(json!({"price": {"amount": 1.5}}), data.clone()));
        assert!(matches(json!({"symbol": "AAPL", "qty": 10}), data.clone()));
        assert!(!matches(json!({"symbol": "AAPL", "qty": 11}), data));
        assert!(matches(json!({}), json!({"anything": 1})));
    }

    #[test]
    fn dotted_paths_reach_into_objects_and_stop_at_anything_else() {
        let data = json!({"account": {"tier": "gold", "id": "acc_1"}, "note": "x"});
        assert!(matches(json!({"account.tier": "gold"}), data.clone()));
        assert!(!matches(json!({"account.tier": "silver"}), data.clone()));
        // Through a string: missing.
        assert!(!matches(json!({"note.length": {"$exists": true}}), data.clone()));
        assert!(matches(json!({"note.length": {"$exists": false}}), data.clone()));
        assert!(matches(json!({"account.missing": {"$exists": false}}), data));
    }

    #[test]
    fn a_missing_path_matches_only_exists_false_ne_nin_and_a_negation() {
        let data = json!({"present": null});
        assert!(matches(json!({"absent": {"$exists": false}}), data.clone()));
        assert!(matches(json!({"absent": {"$ne": 1}}), data.clone()));
        assert!(matches(json!({"absent": {"$nin": [1, 2]}}), data.clone()));
        assert!(matches(json!({"$not": {"absent": 1}}), data.clone()));
        for op in [
            json!({"$eq": null}),
            json!(null),
            json!({"$in": [null]}),
            json!({"$gt": 0}),
            json!({"$lte": "z"}),
            json!({"$prefix": ""}),
            json!({"$exists": true}),
        ] {
            assert!(!matches(json!({"absent": op.clone()}), data.clone()), "{op}");
        }
        // A literal null matches a present null.
        assert!(matches(json!({"present": null}), data.clone()));
        assert!(matches(json!({"present": {"$exists": true}}), data));
    }

    #[test]
    fn each_operator() {
        let data = json!({"qty": 10, "side": "buy", "symbol": "BTC-USD", "price": "101.5"});
        let cases = [
            (json!({"qty": {"$eq": 10}}), true),
            (json!({"qty": {"$ne": 10}}), false),
            (json!({"side": {"$in": ["buy", "sell"]}}), true),
            (json!({"side": {"$in": []}}), false),
            (json!({"side": {"$nin": ["sell"]}}), true),
            (json!({"qty": {"$gt": 9}}), true),
            (json!({"qty": {"$gt": 10}}), false),
            (json!({"qty": {"$gte": 10}}), true),
            (json!({"qty": {"$lt": 10.5}}), true),
            (json!({"qty": {"$lte": 9.99}}), false),
            (json!({"qty": {"$gt": 5, "$lt": 20}}), true),
            (json!({"qty": {"$gt": 5, "$lt": 8}}), false),
            // Strings by code point; a number never matches a string.
            (json!({"symbol": {"$gt": "BTC"}}), true),
            (json!({"symbol": {"$lt": "btc"}}), true),
            (json!({"price": {"$gt": 100}}), false),
            (json!({"qty": {"$gt": "1"}}), false),
            (json!({"symbol": {"$prefix": "BTC-"}}), true),
            (json!({"symbol": {"$prefix": "ETH"}}), false),
            (json!({"qty": {"$prefix": "1"}}), false),
            (json!({"qty": {"$exists": true}}), true),
        ];
        for (filter, expected) in cases {
            assert_eq!(matches(filter.clone(), data.clone()), expected, "{filter}");
        }
    }

    #[test]
    fn and_or_not_combine() {
        let data = json!({"side": "buy", "qty": 10});
        assert!(matches(
            json!({"$or": [{"side": "sell"}, {"qty": {"$gte": 10}}]}),
            data.clone()
        ));
        assert!(!matches(
            json!({"$or": [{"side": "sell"}, {"qty": {"$gt": 10}}]}),
            data.clone()
        ));
        assert!(matches(
            json!({"$and": [{"side": "buy"}, {"qty": 10}]}),
            data.clone()
        ));
        assert!(!matches(
            json!({"$and": [{"side": "buy"}, {"qty": 11}]}),
            data.clone()
        ));
        assert!(matches(json!({"$not": {"side": "sell"}}), data.clone()));
        assert!(!matches(
            json!({"$not": {"$or": [{"side": "buy"}]}}),
            data.clone()
        ));
        assert!(matches(json!({"side": "buy", "$not": {"qty": {"$lt": 5}}}), data));
    }

    #[test]
    fn integers_compare_exactly_beyond_float_precision() {
        let big = json!({"n": 9_007_199_254_740_993_u64});
        assert!(matches(
            json!({"n": {"$gt": 9_007_199_254_740_992_u64}}),
            big.clone()
        ));
        assert!(!matches(json!({"n": 9_007_199_254_740_992_u64}), big));
    }

    #[test]
    fn invalid_filters_name_their_bad_part() {
        assert_eq!(refused(json!([])), "filter: a filter is an object");
        assert_eq!(
            refused(json!({"a": {"$regex": "x"}})).split(" (").next(),
            Some("filter.a.$regex: unknown operator $regex")
        );
        assert_eq!(
            refused(json!({"a": {"$in": 1}})),
            "filter.a.$in: $in takes an array"
        );
        assert_eq!(
            refused(json!({"a": {"$nin": "x"}})),
            "filter.a.$nin: $nin takes an array"
        );
        assert_eq!(
            refused(json!({"a": {"$gt": {"x": 1}}})),
            "filter.a.$gt: $gt takes a number or a string"
        );
        assert_eq!(
            refused(json!({"a": {"$lte": true}})),
            "filter.a.$lte: $lte takes a number or a string"
        );
        assert_eq!(
            refused(json!({"a": {"$exists": 1}})),
            "filter.a.$exists: $exists takes true or false"
        );
        assert_eq!(
            refused(json!({"a": {"$prefix": 1}})),
            "filter.a.$prefix: $prefix takes a string"
        );
        assert_eq!(
            refused(json!({"$or": {"a": 1}})),
            "filter.$or: $or takes an array of filters"
        );
        assert_eq!(
            refused(json!({"$and": []})),
            "filter.$and: $and takes at least one filter"
        );
        assert_eq!(
            refused(json!({"$or": [{"a": 1}, 2]})),
            "filter.$or[1]: a filter is an object"
        );
        assert_eq!(
            refused(json!({"$not": [1]})),
            "filter.$not: a filter is an object"
        );
        assert!(refused(json!({"$where": "1"})).starts_with("filter.$where: unknown operator $where"));
        assert!(refused(json!({"a..b": 1})).starts_with("filter.a..b: a path is"));
        assert!(refused(json!({"a": {"$eq": 1, "b": 2}})).starts_with("filter.a.b: an object of operators"));
    }

    #[test]
    fn a_filter_is_at_most_4_kib_and_16_levels() {
        let long = json!({"a": {"$in": vec!["x".repeat(100); 40]}});
        assert!(refused(long).contains("at most 4096"));
        let mut deep = json!({"a": 1});
        for _ in 0..15 {
            deep = json!({"$not": deep});
        }
        assert!(Filter::parse(&deep).is_ok(), "16 levels");
        let deeper = json!({"$not": deep});
        assert!(refused(deeper).contains("deeper than 16"));
    }

    #[test]
    fn a_stored_filter_reads_back_as_given() {
        let filter = Filter::parse(&json!({"symbol": {"$in": ["AAPL"]}, "qty": {"$gt": 1}})).expect("valid");
        let back = Filter::from_stored(&filter.to_json_string()).expect("stored");
        assert_eq!(back, filter);
        assert_eq!(
            back.json(),
            &json!({"symbol": {"$in": ["AAPL"]}, "qty": {"$gt": 1}})
        );
    }
}
