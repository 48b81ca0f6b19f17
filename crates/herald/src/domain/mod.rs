//! Types parsed once at the edge. A value of one of these types is valid by construction, so
//! the layers below never re-check ids, event types, patterns or URLs.

pub mod duration;
pub mod error_class;
pub mod event_types;
pub mod filter;
pub mod headers;
pub mod ids;
pub mod json;
pub mod net;
pub mod ordering;
pub mod rate_limit;
pub mod schema;
pub mod theme;
pub mod time;
pub mod webhook_url;
