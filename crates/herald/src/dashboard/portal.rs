//! The tenant portal's doors: opening a link (`/portal/{token}`), the page an ended one
//! shows, and its theme's stylesheet. Everything behind the door is the dashboard itself,
//! scoped by [`Viewer::may`] (see `session`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::session::{self, Viewer};
use super::{Result, views};
use crate::api::AppState;
use crate::domain::time::now_ms;

/// How long a portal cookie outlives its link: see [`open`].
const COOKIE_GRACE_SECONDS: i64 = 3600;

/// Where a portal lands.
pub const HOME: &str = "/dashboard/webhooks";

/// Opens a link: sets its cookie and goes to the portal's first page; an expired, forged or
/// erased-org link shows [`ended_page`] and sets nothing.
pub async fn open(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response> {
    let Some(grant) = crate::portal::open(state.store(), &token).await? else {
        return Ok((StatusCode::UNAUTHORIZED, ended_page()).into_response());
    };
    // The session ends at the link's `expires_at`, checked on every request. The cookie stays
    // an hour longer so that a page asked for after that says the link expired (a page the
    // embedding site may frame) instead of sending the customer to the API-key sign-in.
    let max_age = (grant.expires_at - now_ms()).max(0) / 1000 + COOKIE_GRACE_SECONDS;
    let framed = !state.config().portal_frame_ancestors.is_empty();
    let secure = session::came_over_https(&state, &headers);
    let cookie = session::portal_cookie(&token, max_age, framed, secure);
    Ok((
        [
            (header::SET_COOKIE, cookie),
            // The link's token must not leak from here on in a Referer.
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        Redirect::to(HOME),
    )
        .into_response())
}

/// What an expired, unknown or revoked link shows, framed or not.
pub fn ended_page() -> Markup {
    views::bare_portal(
        "Link expired",
        html! {
            h1 { "This link has expired" }
            p role="alert" {
                "This webhook console link is no longer valid: links last a short while and then stop working. "
                "Go back to the application that sent you here and open the webhook settings again for a new link."
            }
        },
    )
}

/// The portal theme's accent colour as a stylesheet: the pages allow no inline style.
pub async fn theme_css(viewer: Viewer) -> Response {
    let color = viewer
        .theme()
        .and_then(|theme| theme.accent_color.clone())
        .unwrap_or_default();
    // Checked as #rrggbb when the link was made: nothing else can reach this text.
    let body = if color.is_empty() {
        String::new()
    } else {
        format!(":root {{ --accent: {color}; --accent-text: #ffffff; }}\n")
    };
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
