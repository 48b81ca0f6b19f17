//! Cursor pagination, shared by every list. A cursor is the id of the last item seen,
//! base64url-encoded so clients treat it as opaque; ids sort by creation time, so a cursor
//! keeps its place while new objects are created ahead of it.

use base64::Engine as _;
use serde::Serialize;

use super::error::ApiError;
use crate::store::{Page, PageRequest, Position};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The opaque cursor for continuing after (or before) `id`.
pub fn encode(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode(cursor: &str, param: &'static str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "invalid_cursor",
            param,
            format!("`{param}` is not a cursor this API returned"),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    let well_formed = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if well_formed { Ok(id) } else { Err(invalid()) }
}

/// Builds a page request from the `limit`, `cursor` and `before` query parameters.
pub fn page_request(
    limit: Option<&str>,
    cursor: Option<&str>,
    before: Option<&str>,
) -> Result<PageRequest, ApiError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_limit",
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let position = match (cursor.filter(|c| !c.is_empty()), before.filter(|c| !c.is_empty())) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_cursor",
                "before",
                "give either cursor (older items) or before (newer items), not both",
            ));
        }
        (Some(c), None) => Position::After(decode(c, "cursor")?),
        (None, Some(b)) => Position::Before(decode(b, "before")?),
        (None, None) => Position::First,
    };
    Ok(PageRequest { limit, position })
}

/// The contract's list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListOut<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    /// More items exist in the direction of travel.
    pub has_more: bool,
    /// Pass as `cursor` for older items.
    pub next_cursor: Option<String>,
    /// Pass as `before` for newer items.
    pub prev_cursor: Option<String>,
}

impl<T> ListOut<T> {
    pub fn from_page<R>(page: Page<R>, map: impl FnMut(R) -> T) -> Self {
        Self {
            object: "list",
            data: page.items.into_iter().map(map).collect(),
            has_more: page.has_more,
            next_cursor: page.next_after.as_deref().map(encode),
            prev_cursor: page.prev_before.as_deref().map(encode),
        }
    }

    /// Like [`ListOut::from_page`] with a conversion that can fail.
    pub fn try_from_page<R, E>(page: Page<R>, map: impl FnMut(R) -> Result<T, E>) -> Result<Self, E> {
        let data = page.items.into_iter().map(map).collect::<Result<Vec<T>, E>>()?;
        Ok(Self {
            object: "list",
            data,
            has_more: page.has_more,
            next_cursor: page.next_after.as_deref().map(encode),
            prev_cursor: page.prev_before.as_deref().map(encode),
        })
    }

    /// A complete, single-page list.
    pub fn all(data: Vec<T>) -> Self {
        Self {
            object: "list",
            data,
            has_more: false,
            next_cursor: None,
            prev_cursor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_400_naming_the_param() {
        let c = encode("wh_01jd5k3m6x7y8z9a0b1c2d3e4f");
        let req = page_request(Some("5"), Some(&c), None).expect("valid");
        assert_eq!(
            req.position,
            Position::After("wh_01jd5k3m6x7y8z9a0b1c2d3e4f".into())
        );
        assert_eq!(req.limit, 5);
        let err = page_request(None, Some("!!"), None).expect_err("garbage");
        assert_eq!(err.param.as_deref(), Some("cursor"));
        for bad in ["0", "101", "x", "-1"] {
            let err = page_request(Some(bad), None, None).expect_err("bad limit");
            assert_eq!(err.param.as_deref(), Some("limit"));
        }
    }
}
