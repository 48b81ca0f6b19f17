//! Dashboard sign-in. An API key is exchanged once for a random session token kept in an
//! HttpOnly, SameSite=Strict cookie; the store keeps only the token's SHA-256, so a copy of
//! the database signs no one in. Every form carries a CSRF token derived from the session
//! token: a page on another site can neither read nor compute it. POSTs that say they come
//! from another site are refused before that check.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::DashError;
use super::when;
use crate::api::AppState;
use crate::api::auth::{self, Caller};
use crate::api::error::ApiError;
use crate::domain::theme::Theme;
use crate::domain::time::now_ms;
use crate::store::{Org, OrgScope, Role, Session};
use crate::{portal, secrets};

/// The session cookie's name.
pub const COOKIE: &str = "herald_session";
/// A portal link's session cookie: apart from the dashboard's, which it takes precedence
/// over while it lasts.
pub const PORTAL_COOKIE: &str = "herald_portal";
/// A session ends twelve hours after sign-in, whatever happens in between.
const LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Forms are small; anything bigger is not ours.
const FORM_LIMIT: usize = 64 * 1024;

/// How a viewer got in, which decides what they may see and do.
#[derive(Debug, Clone)]
pub enum Access {
    /// Signed in with an API key: its org (an admin may switch), the admin pages by role.
    Key(Caller),
    /// A tenant portal link (API.md section 12): its org alone, its webhooks and deliveries,
    /// no keys, no other org; a read-only link changes nothing.
    Portal { read_only: bool, theme: Theme },
}

/// Who is looking at the dashboard, and at which org.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub access: Access,
    /// The org the pages show: the key's own (an admin may switch), or the portal link's.
    pub org: Org,
    /// The token every form of this session must send back.
    pub csrf: String,
    token_hash: Vec<u8>,
}

/// What a viewer asks to do; [`Viewer::may`] is the one place that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Any change: every form posted.
    Change,
    /// API keys, and switching org: the key holders' pages.
    ManageAccess,
}

impl Viewer {
    /// By-id lookups see the shown org only, for admins too: what is on screen is one org.
    pub fn scope(&self) -> OrgScope {
        OrgScope::Org(self.org.id.clone())
    }

    pub fn is_admin(&self) -> bool {
        matches!(&self.access, Access::Key(caller) if caller.role == Role::Admin)
    }

    pub fn is_portal(&self) -> bool {
        matches!(self.access, Access::Portal { .. })
    }

    /// Whether this viewer may do `action`: 403, as a page, when not.
    pub fn may(&self, action: Action) -> Result<(), DashError> {
        match (&self.access, action) {
            (Access::Portal { read_only: true, .. }, Action::Change) => Err(ApiError::forbidden(
                "This portal link is read-only: it shows everything and changes nothing.",
            )
            .into()),
            (Access::Portal { .. }, Action::ManageAccess) => {
                Err(ApiError::forbidden("The portal shows this org's webhooks and deliveries only.").into())
            }
            _ => Ok(()),
        }
    }

    /// Whether the pages offer changes (buttons, forms) at all.
    pub fn can_change(&self) -> bool {
        self.may(Action::Change).is_ok()
    }

    /// The portal's theme; `None` on the dashboard.
    pub fn theme(&self) -> Option<&Theme> {
        match &self.access {
            Access::Portal { theme, .. } => Some(theme),
            Access::Key(_) => None,
        }
    }

    /// What the header says the viewer is: the key's role, or the portal.
    pub fn role_label(&self) -> &'static str {
        match &self.access {
            Access::Key(caller) => caller.role.as_str(),
            Access::Portal { read_only: true, .. } => "read-only",
            Access::Portal { .. } => "portal",
        }
    }

    /// Who did it, for the logs: the key, or the portal of the org.
    pub fn actor(&self) -> String {
        match &self.access {
            Access::Key(caller) => caller.key_id.to_string(),
            Access::Portal { .. } => format!("portal:{}", self.org.id),
        }
    }

    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }
}

/// The CSRF token of the session whose cookie is `token`: what its forms carry.
pub fn csrf_for(token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"herald dashboard csrf\0");
    digest.update(token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The session token from the request's cookies, if any.
fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// Whether the request comes from a browser holding a portal link's cookie: its pages then
/// follow the portal's framing rule, and an ended session shows the portal's page.
pub fn has_portal_cookie(headers: &HeaderMap) -> bool {
    cookie(headers, PORTAL_COOKIE).is_some()
}

/// The `Set-Cookie` that opens a portal: the link's token, for as long as the link lives.
/// Embedding needs a cookie the browser sends inside a cross-site iframe: `SameSite=None`,
/// which must be `Secure`, and `Partitioned` so that it lives in the embedding site's jar
/// only (browsers that block third-party cookies still keep it). Otherwise `Lax`: the link
/// arrives by a cross-site navigation, which a `Strict` cookie would miss on its redirect.
pub fn portal_cookie(token: &str, max_age_seconds: i64, framed: bool, secure: bool) -> String {
    let attributes = if framed {
        "SameSite=None; Secure; Partitioned"
    } else if secure {
        "SameSite=Lax; Secure"
    } else {
        "SameSite=Lax"
    };
    format!("{PORTAL_COOKIE}={token}; Path=/dashboard; HttpOnly; Max-Age={max_age_seconds}; {attributes}")
}

/// The `Set-Cookie` that forgets a portal session (same attributes, or the browser keeps it).
pub fn cleared_portal_cookie(framed: bool) -> String {
    portal_cookie("", 0, framed, false)
}

/// The `Set-Cookie` that starts a session. `Secure` when the request came over HTTPS through
/// a proxy that says so; plain `http://localhost` must keep working for `herald serve --dev`.
fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` that ends one.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the session cookie must be `Secure`: users reach Herald over HTTPS
/// (`HERALD_PUBLIC_URL` says so), or this request came through a TLS-terminating proxy that
/// says so (`X-Forwarded-Proto: https`, or `Forwarded: proto=https`).
pub fn came_over_https(state: &AppState, headers: &HeaderMap) -> bool {
    if state.config().public_url.scheme() == "https" {
        return true;
    }
    let forwarded_proto = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("https")));
    let forwarded = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("proto") && value.trim_matches('"').eq_ignore_ascii_case("https")
        });
    forwarded_proto || forwarded
}

/// Signs in with a key typed as `key_id:secret`; returns the `Set-Cookie` value.
/// A failed sign-in counts against `address` like a refused API key (see `api::brake`).
pub async fn sign_in(
    state: &AppState,
    typed: &str,
    secure: bool,
    address: Option<IpAddr>,
) -> Result<String, DashError> {
    let typed = typed.trim();
    let refused = |message: &str| match auth::brake(state, address, ApiError::unauthorized(message)) {
        e if e.status == StatusCode::TOO_MANY_REQUESTS => DashError::Api(e),
        _ => DashError::sign_in(message),
    };
    let (id, secret) = typed
        .split_once(':')
        .ok_or_else(|| refused("That is not an API key: it looks like key_…:…"))?;
    let caller = auth::verify_key(state, id, secret)
        .await
        .map_err(|_| refused("Invalid API key: check it and try again."))?;
    if caller.role == Role::Investor {
        return Err(DashError::sign_in(
            "Investor keys cannot use the dashboard: they may read reports, not manage webhooks. \
             Sign in with a tenant or admin key.",
        ));
    }
    let token = secrets::new_token()?;
    let now = now_ms();
    state
        .store()
        .create_session(Session {
            token_hash: secrets::hash_token(&token),
            key_id: caller.key_id.clone(),
            org_id: caller.org_id.clone(),
            created_at: now,
            expires_at: now + LIFETIME_MS,
        })
        .await?;
    tracing::info!(key.id = %caller.key_id, "dashboard sign-in");
    Ok(session_cookie(&token, secure))
}

pub async fn sign_out(state: &AppState, viewer: &Viewer) -> Result<(), DashError> {
    state.store().delete_session(viewer.token_hash.clone()).await?;
    Ok(())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, DashError> {
        if let Some(viewer) = parts.extensions.get::<Viewer>() {
            return Ok(viewer.clone());
        }
        if let Some(token) = cookie(&parts.headers, PORTAL_COOKIE) {
            let viewer = portal_viewer(state, &token).await?;
            parts.extensions.insert(viewer.clone());
            return Ok(viewer);
        }
        let token = session_token(&parts.headers).ok_or(DashError::NotSignedIn)?;
        let session = state
            .store()
            .get_session(secrets::hash_token(&token), now_ms())
            .await?
            .ok_or(DashError::NotSignedIn)?;
        // The key may have been removed since: then the session ends with it.
        let key = auth::load_key(state, session.key_id.clone())
            .await?
            .ok_or(DashError::NotSignedIn)?;
        if key.role == Role::Investor {
            return Err(DashError::NotSignedIn);
        }
        let org_id = if key.role == Role::Admin {
            session.org_id
        } else {
            key.org_id.clone()
        };
        let org = state
            .store()
            .get_org(org_id)
            .await?
            .ok_or(DashError::NotSignedIn)?;
        let viewer = Viewer {
            access: Access::Key(Caller {
                key_id: key.id,
                org_id: key.org_id,
                role: key.role,
            }),
            org,
            csrf: csrf_for(&token),
            token_hash: session.token_hash,
        };
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

/// The viewer of a portal link's cookie; an expired or unknown link, or an erased org, ends
/// it with the portal's own page.
async fn portal_viewer(state: &AppState, token: &str) -> Result<Viewer, DashError> {
    let grant = portal::open(state.store(), token)
        .await?
        .ok_or(DashError::PortalEnded)?;
    let org = state
        .store()
        .get_org(grant.org_id)
        .await?
        .ok_or(DashError::PortalEnded)?;
    Ok(Viewer {
        access: Access::Portal {
            read_only: grant.read_only,
            theme: grant.theme,
        },
        org,
        csrf: csrf_for(token),
        token_hash: secrets::hash_token(token),
    })
}

impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, DashError> {
        match <Self as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(viewer) => Ok(Some(viewer)),
            Err(DashError::NotSignedIn) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A submitted `application/x-www-form-urlencoded` form (or a query string), as pairs:
/// checkboxes repeat a name, which typed deserializers do not take.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A typed time, read as the tables show times (UTC; see `when`), as the span it covers.
    pub fn time(&self, name: &str) -> Result<Option<when::Span>, DashError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        when::parse(raw).map(Some).ok_or_else(|| {
            DashError::bad_request(&format!(
                "`{raw}` is not a time like 2026-11-23 09:41:03 ({}, in UTC, as the tables show times).",
                when::FORMAT
            ))
        })
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A page's query string, read as leniently as a form: filters and cursors are optional and
/// each page checks the ones it uses.
impl<S: Send + Sync> FromRequestParts<S> for Fields {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or_default().as_bytes()))
    }
}

/// Refuses a request the browser marks as coming from another site.
fn same_origin(headers: &HeaderMap) -> Result<(), DashError> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site")
    {
        return Err(DashError::Csrf);
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) if origin != "null" => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin_host.eq_ignore_ascii_case(host) {
                Ok(())
            } else {
                Err(DashError::Csrf)
            }
        }
        (Some(_), _) => Err(DashError::Csrf),
        (None, _) => Ok(()),
    }
}

async fn read_form(state: &AppState, req: Request) -> Result<(Parts, Fields), DashError> {
    let (parts, body) = req.into_parts();
    same_origin(&parts.headers)?;
    let deadline = state.config().body_timeout;
    let bytes = tokio::time::timeout(deadline, axum::body::to_bytes(body, FORM_LIMIT))
        .await
        .map_err(|_| ApiError::request_timeout(deadline))?
        .map_err(|_| DashError::bad_request("The form could not be read (is it larger than 64 KiB?)."))?;
    Ok((parts, Fields::parse(&bytes)))
}

/// The sign-in form: no session yet, so only the origin is checked.
pub struct PublicForm(pub Fields);

impl FromRequest<AppState> for PublicForm {
    type Rejection = DashError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, DashError> {
        let (_, fields) = read_form(state, req).await?;
        Ok(Self(fields))
    }
}

/// A form posted by a signed-in viewer, with its CSRF token checked.
pub struct CheckedForm(pub Viewer, pub Fields);

impl FromRequest<AppState> for CheckedForm {
    type Rejection = DashError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, DashError> {
        let (mut parts, fields) = read_form(state, req).await?;
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let sent = fields.get("csrf").unwrap_or_default();
        // Refused before anything of the form is looked at.
        viewer.may(Action::Change)?;
        if !bool::from(sent.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
            tracing::warn!(by = %viewer.actor(), "dashboard form refused: CSRF token missing or wrong");
            return Err(DashError::Csrf);
        }
        Ok(Self(viewer, fields))
    }
}

impl Viewer {
    /// The org's newest 100 webhooks: enough for pickers and labels on one screen.
    pub async fn newest_webhooks(&self, state: &AppState) -> Result<Vec<crate::store::Webhook>, DashError> {
        let page = state
            .store()
            .list_webhooks(
                self.org.id.clone(),
                crate::store::PageRequest {
                    limit: 100,
                    position: crate::store::Position::First,
                },
            )
            .await?;
        Ok(page.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let cookie = session_cookie("abc", false);
        assert!(cookie.starts_with("herald_session=abc;"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(session_cookie("abc", true).ends_with("; Secure"));
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_do_not_reveal_it() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert!(!csrf_for("secret-token").contains("secret-token"));
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; herald_session=tok; b=2".parse().expect("header"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().expect("header"));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, "https://evil.example".parse().expect("header"));
        assert!(same_origin(&headers).is_err());
    }
}
