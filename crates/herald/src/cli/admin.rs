//! `herald migrate`, `herald orgs create|list`, `herald keys create`.

use std::sync::Arc;

use anyhow::Context as _;

use crate::accounts::{self, CreatedKey};
use crate::config::{Config, DatabaseUrl};
use crate::domain::time::format_ms;
use crate::store::{Org, PageRequest, Position, Role, Store};

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

fn org_json(org: &Org) -> serde_json::Value {
    serde_json::json!({"id": org.id, "object": "org", "name": org.name, "created_at": format_ms(org.created_at)})
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
        println!("{}", org_json(&org));
    } else {
        println!("created org {} ({})", org.name, org.id);
    }
    Ok(())
}

pub async fn list_orgs(config: Config, json: bool) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let mut orgs = Vec::new();
    let mut position = Position::First;
    loop {
        let page = store.list_orgs(PageRequest { limit: 100, position }).await?;
        orgs.extend(page.items);
        match page.next_after {
            Some(after) if page.has_more => position = Position::After(after),
            _ => break,
        }
    }
    if json {
        let list: Vec<_> = orgs.iter().map(org_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for org in &orgs {
            println!("{}  {}  {}", org.id, format_ms(org.created_at), org.name);
        }
    }
    Ok(())
}

pub async fn create_key(config: Config, org: &str, role: Role, json: bool) -> anyhow::Result<()> {
    let store = open_existing(&config).await?;
    let key = accounts::create_key(store.as_ref(), org, role).await?;
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
