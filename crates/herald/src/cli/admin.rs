//! `herald migrate`, `herald orgs create`, `herald keys create`.

use anyhow::Context as _;

use crate::accounts::{self, CreatedKey};
use crate::config::Config;
use crate::domain::time::format_ms;
use crate::store::Role;

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
    let store = crate::open_store(&config).await?;
    let org = accounts::create_org(store.as_ref(), name).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"id": org.id, "object": "org", "name": org.name, "created_at": format_ms(org.created_at)})
        );
    } else {
        println!("created org {} ({})", org.name, org.id);
    }
    Ok(())
}

pub async fn create_key(config: Config, org: &str, role: Role, json: bool) -> anyhow::Result<()> {
    let store = crate::open_store(&config).await?;
    let key = accounts::create_key(store.as_ref(), org, role).await?;
    if json {
        println!("{}", serde_json::to_string(&key)?);
    } else {
        print_key(&key);
    }
    Ok(())
}

/// The human form; the secret appears here once and nowhere else.
pub fn print_key(key: &CreatedKey) {
    println!(
        "API key ({} of org {}); it is shown only once:",
        key.role, key.org_id
    );
    println!("  key:        {}", key.key);
    println!("  basic_auth: {}", key.basic_auth);
    println!(
        "  try:        curl -H 'Authorization: Bearer {}' http://HOST/v1/webhooks",
        key.key
    );
}
