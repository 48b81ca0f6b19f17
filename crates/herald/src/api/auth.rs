//! Who is calling: `Authorization: Basic base64(key_id:secret)` or `Bearer key_id:secret`,
//! checked against the stored SHA-256 in constant time, then the role rules of the contract.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use base64::Engine as _;

use super::AppState;
use super::error::ApiError;
use crate::domain::ids::{KeyId, OrgId};
use crate::domain::time::{Millis, now_ms};
use crate::secrets;
use crate::store::{ApiKey, KEY_USE_RESOLUTION_MS, OrgScope, Role};

/// An authenticated API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub role: Role,
}

/// `key_id:secret` from either accepted scheme.
fn credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("missing Authorization header (Basic or Bearer with key_id:secret)")
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let pair = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| ApiError::unauthorized("malformed Basic credentials"))?;
        String::from_utf8(decoded).map_err(|_| ApiError::unauthorized("malformed Basic credentials"))?
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else {
        return Err(ApiError::unauthorized("use Basic or Bearer authorization"));
    };
    let (id, secret) = pair
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("credentials must be key_id:secret"))?;
    Ok((id.to_owned(), secret.to_owned()))
}

/// Stored key rows, so a busy client does not cost a database read per request. An entry
/// lives at most [`KEY_CACHE_TTL`]: a key revoked on any node (the contract allows a second)
/// is refused by every other node within that, and the revoking node forgets it at once.
/// Only live keys are cached: a flood of made-up ids cannot grow it (and it is bounded
/// anyway).
pub struct KeyCache {
    entries: Mutex<HashMap<KeyId, (Instant, ApiKey)>>,
}

/// Half the contract's second, leaving the rest for the database read that follows.
const KEY_CACHE_TTL: Duration = Duration::from_millis(500);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, id: &KeyId) -> Option<ApiKey> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(_, key)| key.clone())
    }

    fn put(&self, key: ApiKey) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEY_CACHE_MAX {
                entries.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
                if entries.len() >= KEY_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(key.id.clone(), (Instant::now(), key));
        }
    }

    /// Drops revoked keys at once on this node.
    pub fn forget(&self, ids: &[KeyId]) {
        if let Ok(mut entries) = self.entries.lock() {
            for id in ids {
                entries.remove(id);
            }
        }
    }

    /// Drops every key of an erased org.
    pub fn forget_org(&self, org: &OrgId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, key)| key.org_id != *org);
        }
    }
}

/// When keys were used, kept in memory and written in the background (see
/// [`flush_key_use`]), so a request never waits for a write. A key is queued at most once
/// per [`KEY_USE_RESOLUTION_MS`] on a node: `last_used_at` may lag by up to a minute.
#[derive(Default)]
pub struct KeyUsage {
    inner: Mutex<Usage>,
}

#[derive(Default)]
struct Usage {
    /// When each recently used key was last queued.
    queued: HashMap<KeyId, Millis>,
    pending: Vec<(KeyId, Millis)>,
}

impl KeyUsage {
    pub fn used(&self, id: &KeyId, now: Millis) {
        let Ok(mut usage) = self.inner.lock() else {
            return;
        };
        if usage
            .queued
            .get(id)
            .is_some_and(|at| now - at < KEY_USE_RESOLUTION_MS)
        {
            return;
        }
        usage.queued.insert(id.clone(), now);
        usage.pending.push((id.clone(), now));
    }

    /// What to write now; forgets keys queued long enough ago to be queued again.
    fn take(&self, now: Millis) -> Vec<(KeyId, Millis)> {
        let Ok(mut usage) = self.inner.lock() else {
            return Vec::new();
        };
        usage.queued.retain(|_, at| now - *at < KEY_USE_RESOLUTION_MS);
        std::mem::take(&mut usage.pending)
    }
}

/// How often queued key uses are written.
const KEY_USE_FLUSH: Duration = Duration::from_secs(1);

/// Writes queued key uses every [`KEY_USE_FLUSH`] until `stop`, then once more.
pub async fn flush_key_use(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(KEY_USE_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let used = state.key_usage().take(now_ms());
        if !used.is_empty()
            && let Err(e) = state.store().touch_api_keys(used).await
        {
            tracing::warn!(error = %e, "could not record when API keys were last used");
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new()
    }
}

/// A stored key by id, through the cache.
pub async fn load_key(state: &AppState, key_id: KeyId) -> Result<Option<ApiKey>, ApiError> {
    if let Some(key) = state.key_cache().get(&key_id) {
        return Ok(Some(key));
    }
    let key = state.store().get_api_key(key_id).await?;
    if let Some(key) = &key {
        state.key_cache().put(key.clone());
    }
    Ok(key)
}

/// Authenticates the request's key. The same "invalid API key" answer covers an unknown id
/// and a wrong secret, so the response never says which key ids exist.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let (id, secret) = credentials(headers)?;
    verify_key(state, &id, &secret).await
}

/// Checks a key given as `key_id` and `secret` (the dashboard's sign-in form uses this too).
pub async fn verify_key(state: &AppState, id: &str, secret: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthorized("invalid API key");
    let key_id = KeyId::parse(id).ok_or_else(invalid)?;
    let key = load_key(state, key_id).await?.ok_or_else(invalid)?;
    if !secrets::api_key_matches(secret, &key.secret_hash) {
        return Err(invalid());
    }
    state.key_usage().used(&key.id, now_ms());
    Ok(Caller {
        key_id: key.id,
        org_id: key.org_id,
        role: key.role,
    })
}

/// The address the request came from (set on every request by `connections`).
pub fn client_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// Counts a refused credential against the client's address: a 401 becomes a 429 once that
/// address has failed too often (see [`super::brake`]). Requests that sent no credentials at
/// all are not counted: they are mistakes, not guesses.
pub fn brake(state: &AppState, address: Option<IpAddr>, error: ApiError) -> ApiError {
    if error.status != StatusCode::UNAUTHORIZED {
        return error;
    }
    match address.and_then(|address| state.brake().failed(address)) {
        Some(wait) => ApiError::too_many_failures(wait),
        None => error,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The idempotency layer may have authenticated this request already.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = match authenticate(state, &parts.headers).await {
            Ok(caller) => caller,
            Err(e) if !parts.headers.contains_key(header::AUTHORIZATION) => return Err(e),
            Err(e) => return Err(brake(state, client_address(&parts.extensions), e)),
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// A caller allowed on tenant routes (`/v1/webhooks…`): admins and tenants, never investors.
pub struct TenantCaller(pub Caller);

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role == Role::Investor {
            return Err(ApiError::forbidden(
                "investor keys cannot manage webhooks; use a tenant or admin key",
            ));
        }
        Ok(Self(caller))
    }
}

/// A caller allowed on admin routes (orgs, keys).
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            return Err(ApiError::forbidden("only admin keys may do this"));
        }
        Ok(Self(caller))
    }
}

impl Caller {
    /// The org a tenant route acts on: the key's own, or for admins the `org_id` they name.
    pub async fn org_for(&self, state: &AppState, requested: Option<&str>) -> Result<OrgId, ApiError> {
        let Some(raw) = requested else {
            return Ok(self.org_id.clone());
        };
        if self.role != Role::Admin {
            return if raw == self.org_id.as_str() {
                Ok(self.org_id.clone())
            } else {
                Err(ApiError::forbidden("only admin keys may act for another org").with_param("org_id"))
            };
        }
        let unknown = || ApiError::invalid("unknown_org", "org_id", format!("no org `{raw}`"));
        let org_id = OrgId::parse(raw).ok_or_else(unknown)?;
        state.store().get_org(org_id.clone()).await?.ok_or_else(unknown)?;
        Ok(org_id)
    }

    /// Which orgs a by-id lookup may see: admins see every org unless they name one.
    pub fn scope(&self, requested: Option<&str>) -> Result<OrgScope, ApiError> {
        match (self.role, requested) {
            (Role::Admin, None) => Ok(OrgScope::Any),
            (Role::Admin, Some(raw)) => OrgId::parse(raw)
                .map(OrgScope::Org)
                .ok_or_else(|| ApiError::invalid("unknown_org", "org_id", format!("no org `{raw}`"))),
            (_, None) => Ok(OrgScope::Org(self.org_id.clone())),
            (_, Some(raw)) if raw == self.org_id.as_str() => Ok(OrgScope::Org(self.org_id.clone())),
            (_, Some(_)) => {
                Err(ApiError::forbidden("only admin keys may act for another org").with_param("org_id"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_use_is_queued_at_most_once_a_minute() {
        let usage = KeyUsage::default();
        let key = KeyId::new();
        usage.used(&key, 1_000);
        usage.used(&key, 2_000);
        assert_eq!(usage.take(2_000), vec![(key.clone(), 1_000)]);
        usage.used(&key, 30_000);
        assert!(usage.take(30_000).is_empty(), "within the minute");
        usage.used(&key, 61_000);
        assert_eq!(usage.take(61_000), vec![(key, 61_000)]);
    }
}
