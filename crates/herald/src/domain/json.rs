//! Limits on JSON that Herald stores and sends on: receivers' parsers (and ours, when a
//! payload is read back) recurse, so a `data` nested thousands of levels deep would be
//! accepted here and fail on every receiver.

/// The deepest `data` accepted: objects and arrays inside each other, `data` itself counted.
pub const MAX_DEPTH: usize = 64;

/// The deepest nesting of objects and arrays in `json`, which must be valid JSON (it is
/// scanned, not parsed). A loop over the bytes, not a recursion, so any input is safe.
pub fn depth(json: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_objects_and_arrays_but_not_brackets_in_strings() {
        assert_eq!(depth("{}"), 1);
        assert_eq!(depth(r#"{"a":[1,{"b":2}],"c":{}}"#), 3);
        assert_eq!(depth(r#"{"a":"{[{[\"{"}"#), 1);
        assert_eq!(depth(r#"{"a":"\\","b":[[]]}"#), 3);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(depth(&deep), 100_000);
    }
}
