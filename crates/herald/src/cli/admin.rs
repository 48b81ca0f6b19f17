//! `herald migrate`, `herald orgs create|list`, `herald keys create|list|revoke`.

use std::sync::Arc;

use anyhow::Context as _;

use crate::accounts::{self, CreatedKey, KeyOut};
use crate::api::orgs::OrgOut;
use crate::config::{Config, DatabaseUrl};
use crate::domain::ids::OrgId;
use crate::domain::time::{format_ms, now_ms};
use crate::store::{Org, Page, PageRequest, Position, Role, Store, StoreError};

/// The database `herald serve` uses. An admin command run from another directory must not
/// create a fresh, empty database there and report success on it: the running server would
/// never see what it made.
async fn open_existing(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let DatabaseUrl::Sqlite(path) = &config.database_url
        && !path.exists()
    {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        anyhow::bail!(
            "no database at {} (HERALD_DATABASE_URL is sqlite://{}): run this where `herald serve` \
             runs, or set HERALD_DATABASE_URL (or --database-url) to its database",
            shown.display(),
            path.display()
        );
    }
    Ok(crate::open_store(config).await?)
}

/// The org object, as the API shows it.
fn org_json(org: &Org) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(OrgOut::from(org.clone()))?)
}

/// Every item of a list, page after page.
async fn all<T, F, Fut>(mut read: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut position = Position::First;
    loop {
        let page = read(PageRequest { limit: 100, position }).await?;
        items.extend(page.items);
        match page.next_after {
            Some(after) if page.has_more => position = Position::After(after),
            _ => return Ok(items),
        }
    }
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    crate::open_store(&config).await.context("migration failed")?;
    let version = match config.database_url {
        crate::config::DatabaseUrl::Sqlite(_) => crate::store::sqlite::SqliteStore::schema_version(),
        crate::config::DatabaseUrl::Postgres(_) => crate::store::postgres::PostgresStore::schema_version(),
    };
    println!("database is at schema version {version}");
    Ok(())
}

pub async fn create_org(config: Config, name: &str, json: bool) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let org = accounts::create_org(store.as_ref(), name).await?;
    if json {
        println!("{}", org_json(&org)?);
    } else {
        println!("created org {} ({})", org.name, org.id);
    }
    Ok(())
}

pub async fn list_orgs(config: Config, json: bool) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let orgs = all(|page| store.list_orgs(page)).await?;
    if json {
        let list = orgs.iter().map(org_json).collect::<anyhow::Result<Vec<_>>>()?;
        println!("{}", serde_json::Value::Array(list));
    } else {
        for org in &orgs {
            println!("{}  {}  {}", org.id, format_ms(org.created_at), org.name);
        }
    }
    Ok(())
}

pub async fn create_key(
    config: Config,
    org: &str,
    role: Role,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let key = accounts::create_key(store.as_ref(), org, role, name).await?;
    if json {
        println!("{}", serde_json::to_string(&key)?);
    } else {
        print_key(&key, config.public_url.as_str());
    }
    Ok(())
}

/// The human form; the secret appears here once and nowhere else. `base` is where Herald is
/// reached, so the example command works as printed.
pub fn print_key(key: &CreatedKey, base: &str) {
    println!(
        "API key ({} of org {}); it is shown only once:",
        key.role, key.org_id
    );
    println!("  key:        {}", key.key);
    println!("  basic_auth: {}", key.basic_auth);
    println!(
        "  try:        curl -H 'Authorization: Bearer {}' {}/v1/webhooks",
        key.key,
        base.trim_end_matches('/')
    );
}

pub async fn list_keys(config: Config, org: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let org = match org {
        Some(raw) => {
            let unknown = || anyhow::anyhow!("no org `{raw}` (see `herald orgs list`)");
            let id = OrgId::parse(raw).ok_or_else(unknown)?;
            store.get_org(id.clone()).await?.ok_or_else(unknown)?;
            Some(id)
        }
        None => None,
    };
    let keys = all(|page| store.list_api_keys(org.clone(), page)).await?;
    let keys: Vec<KeyOut> = keys.into_iter().map(KeyOut::from).collect();
    if json {
        println!("{}", serde_json::to_string(&keys)?);
    } else {
        for key in &keys {
            println!(
                "{}  {}  {:<8}  {}  last used {}  {}",
                key.id,
                key.org_id,
                key.role,
                key.created_at,
                key.last_used_at.as_deref().unwrap_or("never"),
                key.name.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub async fn revoke_key(config: Config, key_id: &str) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let id = accounts::revoke_key(store.as_ref(), key_id, now_ms()).await?;
    println!("revoked {id}; every node refuses it within a second");
    Ok(())
}
