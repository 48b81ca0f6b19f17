//! Tenant portal links (API.md section 12): minted by `POST /v1/portal-sessions`, opened by a
//! browser at `/portal/{token}`. Minting and opening live here, apart from both the API and
//! the dashboard, which each use one half.
//!
//! A link is also its browser session: opening it puts the token in a cookie that lasts as
//! long as the link, so there is nothing more to store or expire. Only the token's SHA-256 is
//! stored.

use std::time::Duration;

use crate::domain::ids::OrgId;
use crate::domain::theme::Theme;
use crate::domain::time::{Millis, now_ms};
use crate::secrets::{self, SecretsError};
use crate::store::{PortalLink, Store, StoreError};

/// Where links open, under `HERALD_PUBLIC_URL`.
pub const PATH: &str = "/portal";

/// How long a link may live, in seconds: at least a minute, at most a day.
pub const LIFETIME_SECONDS: std::ops::RangeInclusive<u64> = 60..=86_400;
/// When the caller does not say.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// What a link lets its browser do, as asked for when it was minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub org_id: OrgId,
    pub read_only: bool,
    pub theme: Theme,
    pub expires_at: Millis,
}

/// A minted link: the token goes to the caller once, in `url`.
#[derive(Debug, Clone)]
pub struct Minted {
    pub url: String,
    pub expires_at: Millis,
}

/// Stores a new link for `grant.org_id` and returns its URL under `public_url`.
pub async fn mint(store: &dyn Store, public_url: &url::Url, grant: Grant) -> Result<Minted, PortalError> {
    let token = secrets::new_token()?;
    let theme = (!grant.theme.is_empty())
        .then(|| serde_json::to_string(&grant.theme))
        .transpose()
        .map_err(|e| StoreError::Backend(format!("encoding a theme: {e}")))?;
    store
        .create_portal_link(PortalLink {
            token_hash: secrets::hash_token(&token),
            org_id: grant.org_id,
            read_only: grant.read_only,
            theme,
            created_at: now_ms(),
            expires_at: grant.expires_at,
        })
        .await?;
    let base = public_url.as_str().trim_end_matches('/');
    Ok(Minted {
        url: format!("{base}{PATH}/{token}"),
        expires_at: grant.expires_at,
    })
}

/// The grant of a link that still opens: not expired, not forged, its org not erased.
pub async fn open(store: &dyn Store, token: &str) -> Result<Option<Grant>, StoreError> {
    // Anything that is not a token's length of URL-safe characters cannot be one, and costs
    // no lookup.
    if token.len() != secrets::TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(None);
    }
    let link = store
        .get_portal_link(secrets::hash_token(token), now_ms())
        .await?;
    Ok(link.map(|link| Grant {
        org_id: link.org_id,
        read_only: link.read_only,
        theme: Theme::from_stored(link.theme.as_deref()),
        expires_at: link.expires_at,
    }))
}
