//! Opening the embedded database: its file made private, its connections' settings, and the
//! schema migrations.

use super::*;

pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_delivery.sql"),
    include_str!("../../../migrations/sqlite/0003_leases.sql"),
    include_str!("../../../migrations/sqlite/0004_dashboard.sql"),
    include_str!("../../../migrations/sqlite/0005_claim_indexes.sql"),
    include_str!("../../../migrations/sqlite/0006_leases_counted_in_memory.sql"),
    include_str!("../../../migrations/sqlite/0007_status_check_without_temp_table.sql"),
    include_str!("../../../migrations/sqlite/0008_idempotency_per_api_key.sql"),
    include_str!("../../../migrations/sqlite/0009_lean_deliveries.sql"),
    include_str!("../../../migrations/sqlite/0010_keys_and_org_lifecycle.sql"),
    include_str!("../../../migrations/sqlite/0011_events_by_org.sql"),
    include_str!("../../../migrations/sqlite/0012_attempt_rollups.sql"),
    include_str!("../../../migrations/sqlite/0013_webhook_filters.sql"),
    include_str!("../../../migrations/sqlite/0014_webhook_headers.sql"),
    include_str!("../../../migrations/sqlite/0015_webhook_rate_limits.sql"),
    include_str!("../../../migrations/sqlite/0016_fifo_ordering.sql"),
    include_str!("../../../migrations/sqlite/0017_operational_events.sql"),
    include_str!("../../../migrations/sqlite/0018_portal_links.sql"),
];

/// Creates the database file, and its directory, readable by Herald's user alone (`0600`,
/// `0700`), as `master.key` is: the file holds every tenant's payloads. SQLite gives the WAL
/// and shared-memory files the database file's mode. An existing file is left as it is.
pub(super) fn create_private(path: &Path) -> Result<(), StoreError> {
    let failed = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(|e| failed(parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        file.mode(0o600);
    }
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed(path, e)),
    }
}

pub(super) fn open_connection(path: &Path, writer: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A savepoint (and any statement that may need undoing alone) keeps a statement journal:
    // on disk that is a temp file created and fsynced per transaction, in memory a buffer.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Commits are made durable by the syncer thread (see the module docs).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    } else {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Applies the embedded migrations that have not run yet; returns the schema version.
/// Safe to run from several processes at once: each step takes the write lock first.
pub(super) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    // SQLite cannot alter a constraint in place, so a migration may rebuild a table: drop it
    // while other tables' keys point at it, and rename the rebuilt one into its place. Keys
    // are off for that (the pragma is ignored inside a transaction) and each migration checks
    // them all before it commits, as SQLite's documented procedure does.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let applied = apply_migrations(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    applied?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database schema (version {version}) is newer than this Herald ({}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    Ok(version)
}

pub(super) fn apply_migrations(conn: &mut Connection) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if usize::try_from(version).unwrap_or(0) > index {
            continue;
        }
        tx.execute_batch(sql)?;
        if tx.prepare("PRAGMA foreign_key_check")?.exists([])? {
            return Err(StoreError::Backend(format!(
                "migration {} would leave rows whose foreign keys point nowhere; nothing was changed",
                index + 1
            )));
        }
        tx.pragma_update(None, "user_version", i64::try_from(index + 1).unwrap_or(i64::MAX))?;
        tx.commit()?;
    }
    Ok(())
}
