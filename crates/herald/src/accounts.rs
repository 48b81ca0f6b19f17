//! Orgs and API keys: made the same way by the CLI, the first start of `serve` and the admin
//! API, so a key printed by one works in all the others.

use base64::Engine as _;
use serde::Serialize;

use crate::domain::duration;
use crate::domain::ids::{KeyId, OrgId};
use crate::domain::time::{Millis, format_ms, now_ms};
use crate::secrets::{self, SecretsError};
use crate::store::{ApiKey, Org, OrgChanges, Revoke, Role, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("no org `{0}`")]
    UnknownOrg(String),
    #[error("org names must be 1 to 200 characters")]
    InvalidName,
    #[error("key names must be 1 to 200 characters")]
    InvalidKeyName,
    #[error("a retention is a duration of at least 1s, such as 90s, 12h or 7d")]
    InvalidRetention,
    #[error("no API key `{0}`")]
    UnknownKey(String),
    #[error("`{0}` is the last active admin key: create another admin key before revoking it")]
    LastAdminKey(String),
}

/// A key as listed: never its secret or its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyOut {
    pub id: KeyId,
    /// Always `api_key`.
    pub object: &'static str,
    pub org_id: OrgId,
    /// `admin`, `tenant` or `investor`.
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: String,
    /// Omitted until the key is first used; may lag by up to a minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            object: "api_key",
            org_id: k.org_id,
            role: k.role.as_str(),
            name: k.name,
            created_at: format_ms(k.created_at),
            last_used_at: k.last_used_at.map(format_ms),
        }
    }
}

/// A key as shown once, at creation: the only time its secret exists outside the caller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub id: KeyId,
    /// `key_id:secret`, for `Authorization: Bearer`.
    pub key: String,
    /// `base64(key_id:secret)`, for `Authorization: Basic`.
    pub basic_auth: String,
    pub role: &'static str,
    pub org_id: OrgId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: String,
}

/// Names of orgs and keys: trimmed, 1 to 200 characters.
fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= 200).then(|| name.to_owned())
}

/// A retention as written in a request (`"7d"`): at least a second, in milliseconds.
pub fn parse_retention(raw: &str) -> Result<i64, AccountError> {
    duration::parse_duration(raw)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms >= 1_000)
        .ok_or(AccountError::InvalidRetention)
}

/// A stored retention as shown (`"7d"`).
pub fn show_retention(ms: i64) -> String {
    duration::format_ms(u64::try_from(ms).unwrap_or(0))
}

fn new_org(name: &str) -> Result<Org, AccountError> {
    Ok(Org {
        id: OrgId::new(),
        name: valid_name(name).ok_or(AccountError::InvalidName)?,
        retention_ms: None,
        created_at: now_ms(),
    })
}

fn new_key(org_id: OrgId, role: Role, name: Option<String>) -> Result<(ApiKey, CreatedKey), AccountError> {
    let id = KeyId::new();
    let secret = secrets::new_token()?;
    let key = format!("{id}:{secret}");
    let stored = ApiKey {
        id: id.clone(),
        org_id: org_id.clone(),
        role,
        secret_hash: secrets::hash_token(&secret),
        name: name.clone(),
        created_at: now_ms(),
        last_used_at: None,
    };
    let created_at = format_ms(stored.created_at);
    let shown = CreatedKey {
        id,
        basic_auth: base64::engine::general_purpose::STANDARD.encode(&key),
        key,
        role: role.as_str(),
        org_id,
        name,
        created_at,
    };
    Ok((stored, shown))
}

pub async fn create_org(store: &dyn Store, name: &str) -> Result<Org, AccountError> {
    let org = new_org(name)?;
    store.create_org(org.clone()).await?;
    Ok(org)
}

/// A new key for a live org; `name` is optional.
pub async fn create_key(
    store: &dyn Store,
    org_id: &str,
    role: Role,
    name: Option<&str>,
) -> Result<CreatedKey, AccountError> {
    let name = name
        .map(|n| valid_name(n).ok_or(AccountError::InvalidKeyName))
        .transpose()?;
    let unknown = || AccountError::UnknownOrg(org_id.to_owned());
    let org_id = OrgId::parse(org_id).ok_or_else(unknown)?;
    store.get_org(org_id.clone()).await?.ok_or_else(unknown)?;
    let (stored, shown) = new_key(org_id, role, name)?;
    store.create_api_key(stored).await?;
    Ok(shown)
}

/// On an empty database: creates org `default` and an admin key, and returns the key so it
/// can be printed once. `None` when any org exists already.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<CreatedKey>, AccountError> {
    let org = new_org("default")?;
    let (stored, shown) = new_key(org.id.clone(), Role::Admin, None)?;
    Ok(store.bootstrap(org, stored).await?.then_some(shown))
}

/// Revokes a key, refusing the last active admin key: the same rule for the API, the CLI and
/// the dashboard.
pub async fn revoke_key(store: &dyn Store, raw: &str, now: Millis) -> Result<KeyId, AccountError> {
    let id = KeyId::parse(raw).ok_or_else(|| AccountError::UnknownKey(raw.to_owned()))?;
    match store.revoke_api_key(id.clone(), now).await? {
        Revoke::Revoked => Ok(id),
        Revoke::NotFound => Err(AccountError::UnknownKey(raw.to_owned())),
        Revoke::LastAdminKey => Err(AccountError::LastAdminKey(raw.to_owned())),
    }
}

/// A change to an org as asked for: `retention` absent, `null` (the default) or a duration.
pub struct OrgPatch<'a> {
    pub name: Option<&'a str>,
    pub retention: Option<Option<&'a str>>,
}

impl OrgPatch<'_> {
    pub fn parse(self) -> Result<OrgChanges, AccountError> {
        Ok(OrgChanges {
            name: self
                .name
                .map(|n| valid_name(n).ok_or(AccountError::InvalidName))
                .transpose()?,
            retention_ms: self
                .retention
                .map(|r| r.map(parse_retention).transpose())
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_is_at_least_a_second_and_shown_in_its_largest_exact_unit() {
        assert_eq!(parse_retention("7d").ok(), Some(604_800_000));
        assert_eq!(parse_retention("1s").ok(), Some(1_000));
        assert_eq!(parse_retention("1500ms").ok(), Some(1_500));
        for bad in ["0s", "999ms", "-1s", "abc", "", "7"] {
            assert!(
                matches!(parse_retention(bad), Err(AccountError::InvalidRetention)),
                "{bad}"
            );
        }
        assert_eq!(show_retention(172_800_000), "2d");
        assert_eq!(show_retention(90_000), "90s");
    }

    #[test]
    fn names_are_trimmed_and_between_1_and_200_characters() {
        assert_eq!(valid_name("  ci  ").as_deref(), Some("ci"));
        assert_eq!(valid_name(&"é".repeat(200)).map(|n| n.chars().count()), Some(200));
        assert!(valid_name(&"x".repeat(201)).is_none());
        assert!(valid_name("   ").is_none());
    }
}
