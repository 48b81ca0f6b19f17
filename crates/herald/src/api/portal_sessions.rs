//! `POST /v1/portal-sessions`: a short-lived link that opens the tenant portal, the org's own
//! webhook console, in a browser (API.md section 12). The link is made in [`crate::portal`];
//! this is its API edge.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, ErrorBody, Result};
use super::extract::OptionalJson;
use crate::domain::theme::Theme;
use crate::domain::time::{format_ms, now_ms};
use crate::portal::{self, Grant};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_portal_session))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionIn {
    /// How long the link (and the browser session it opens) lasts: 60 to 86,400 s; default 900.
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
    /// Shows everything and refuses every change; default false.
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub theme: Option<ThemeIn>,
    /// Admin keys only: the org the portal shows.
    #[serde(default)]
    pub org_id: Option<String>,
}

/// The platform's look for the portal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThemeIn {
    /// Shown as the portal's title, at most 100 characters.
    #[serde(default)]
    pub title: Option<String>,
    /// `#rrggbb`.
    #[serde(default)]
    pub accent_color: Option<String>,
    /// An `https://` image URL.
    #[serde(default)]
    pub logo_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalSessionOut {
    /// Always `portal_session`.
    pub object: &'static str,
    /// Open it in a browser (or an iframe) before `expires_at`: `<HERALD_PUBLIC_URL>/portal/<token>`.
    pub url: String,
    pub expires_at: String,
    pub read_only: bool,
}

/// Mint a link to the tenant portal of an org: a tenant key for its own org, an admin key for
/// any (`org_id`). The link carries an unguessable token; opening it signs the browser in to
/// that org alone until `expires_at`.
#[utoipa::path(post, path = "/v1/portal-sessions", operation_id = "create_portal_session", tag = "portal",
    request_body = PortalSessionIn,
    responses(
        (status = 201, description = "The link, shown only here", body = PortalSessionOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn create_portal_session(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    OptionalJson(input): OptionalJson<PortalSessionIn>,
) -> Result<(StatusCode, Json<PortalSessionOut>)> {
    let input = input.unwrap_or_default();
    let org_id = caller.org_for(&state, input.org_id.as_deref()).await?;
    let lifetime = match input.expires_in_seconds {
        None => portal::DEFAULT_LIFETIME,
        Some(seconds) if portal::LIFETIME_SECONDS.contains(&seconds) => Duration::from_secs(seconds),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "expires_in_seconds",
                format!(
                    "expires_in_seconds must be from {} to {}",
                    portal::LIFETIME_SECONDS.start(),
                    portal::LIFETIME_SECONDS.end()
                ),
            ));
        }
    };
    let theme = match input.theme {
        None => Theme::default(),
        Some(t) => Theme::new(t.title, t.accent_color, t.logo_url)?,
    };
    let read_only = input.read_only.unwrap_or(false);
    let expires_at = now_ms() + i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    let minted = portal::mint(
        state.store(),
        &state.config().public_url,
        Grant {
            org_id,
            read_only,
            theme,
            expires_at,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PortalSessionOut {
            object: "portal_session",
            url: minted.url,
            expires_at: format_ms(minted.expires_at),
            read_only,
        }),
    ))
}
