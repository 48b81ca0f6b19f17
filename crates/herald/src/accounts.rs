//! Orgs and API keys: made the same way by the CLI, the first start of `serve` and the admin
//! API, so a key printed by one works in all the others.

use base64::Engine as _;
use serde::Serialize;

use crate::domain::ids::{KeyId, OrgId};
use crate::domain::time::now_ms;
use crate::secrets::{self, SecretsError};
use crate::store::{ApiKey, Org, Role, Store, StoreError};

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
}

fn new_org(name: &str) -> Result<Org, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AccountError::InvalidName);
    }
    Ok(Org {
        id: OrgId::new(),
        name: name.to_owned(),
        created_at: now_ms(),
    })
}

fn new_key(org_id: OrgId, role: Role) -> Result<(ApiKey, CreatedKey), AccountError> {
    let id = KeyId::new();
    let secret = secrets::new_api_key_secret()?;
    let key = format!("{id}:{secret}");
    let stored = ApiKey {
        id: id.clone(),
        org_id: org_id.clone(),
        role,
        secret_hash: secrets::hash_api_key_secret(&secret),
        created_at: now_ms(),
    };
    let shown = CreatedKey {
        id,
        basic_auth: base64::engine::general_purpose::STANDARD.encode(&key),
        key,
        role: role.as_str(),
        org_id,
    };
    Ok((stored, shown))
}

pub async fn create_org(store: &dyn Store, name: &str) -> Result<Org, AccountError> {
    let org = new_org(name)?;
    store.create_org(org.clone()).await?;
    Ok(org)
}

pub async fn create_key(store: &dyn Store, org_id: &str, role: Role) -> Result<CreatedKey, AccountError> {
    let unknown = || AccountError::UnknownOrg(org_id.to_owned());
    let org_id = OrgId::parse(org_id).ok_or_else(unknown)?;
    store.get_org(org_id.clone()).await?.ok_or_else(unknown)?;
    let (stored, shown) = new_key(org_id, role)?;
    store.create_api_key(stored).await?;
    Ok(shown)
}

/// On an empty database: creates org `default` and an admin key, and returns the key so it
/// can be printed once. `None` when any org exists already.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<CreatedKey>, AccountError> {
    let org = new_org("default")?;
    let (stored, shown) = new_key(org.id.clone(), Role::Admin)?;
    Ok(store.bootstrap(org, stored).await?.then_some(shown))
}
