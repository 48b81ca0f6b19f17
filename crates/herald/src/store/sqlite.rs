//! The embedded store: SQLite in WAL mode with `synchronous=FULL`, so a commit that was
//! acknowledged survives a power cut.
//!
//! Durable commits cost an fsync each, so every write goes through one writer thread that
//! takes all the writes waiting at that moment and commits them in one transaction (group
//! commit): under load many requests share one fsync, and each write still runs in its own
//! savepoint, so one failing write never undoes its neighbours. Reads use a small pool of
//! separate connections, which WAL lets run beside the writer.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::*;
use crate::domain::ids::{KeyId, OrgId, WebhookId};
use crate::domain::time::Millis;

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_init.sql")];

/// How many queued writes one transaction may take.
const MAX_BATCH: usize = 512;
/// Reader connections; reads are short, so a few cover the two cores.
const READERS: usize = 4;

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

impl Clone for StoreError {
    fn clone(&self) -> Self {
        match self {
            Self::Conflict(what) => Self::Conflict(what),
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Backend(m) => Self::Backend(m.clone()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => Self::Conflict("a unique value is already taken"),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Unavailable(e.to_string()),
            _ => Self::Backend(e.to_string()),
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("stored {what} is malformed").into(),
    )
}

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReadPool>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

fn open_connection(path: &Path, writer: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    } else {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Applies the embedded migrations that have not run yet; returns the schema version.
/// Safe to run from several processes at once: each step takes the write lock first.
fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if usize::try_from(version).unwrap_or(0) > index {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(index + 1).unwrap_or(i64::MAX))?;
        tx.commit()?;
    }
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

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs every queued job in one transaction, each in its own savepoint, then tells each
/// caller the outcome only after the commit is durable.
fn run_batch(conn: &Connection, batch: &mut Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "cannot start a write transaction");
        // Dropping the jobs drops their reply channels: each caller sees "unavailable".
        batch.clear();
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            tracing::error!(error = %e, "cannot open a savepoint");
            continue;
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok((true, done)) => completions.push(done),
            Ok((false, done)) => {
                let _ = exec(conn, "ROLLBACK TO job");
                completions.push(done);
            }
            Err(_) => {
                tracing::error!("a database write panicked; it was rolled back");
                let _ = exec(conn, "ROLLBACK TO job");
            }
        }
        let _ = exec(conn, "RELEASE job");
    }
    let committed = exec(conn, "COMMIT").map_err(StoreError::from);
    if let Err(e) = &committed {
        tracing::error!(error = %e, "commit failed; the batch was rolled back");
        let _ = exec(conn, "ROLLBACK");
    }
    for done in completions {
        done(committed.clone());
    }
}

fn writer_loop(conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch);
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut writer = open_connection(&path, true)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path, false))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            jobs: tx,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(readers),
                permits: Semaphore::new(READERS),
            }),
        })
    }

    /// The schema version after migrating.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// Runs `f` inside the next group-commit transaction; resolves after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let done: Completion = Box::new(move |committed| {
                let _ = tx.send(committed.and(result));
            });
            (ok, done)
        });
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        let _permit = pool.permits.acquire().await.map_err(|_| writer_gone())?;
        let pooled = pool.idle.lock().map_err(|_| writer_gone())?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&pool.path, false)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        if let Ok(mut idle) = pool.idle.lock() {
            idle.push(conn);
        }
        result
    }
}

const ORG_COLUMNS: &str = "id, name, created_at";

fn org_from_row(row: &Row<'_>) -> rusqlite::Result<Org> {
    let id: String = row.get(0)?;
    Ok(Org {
        id: OrgId::parse(&id).ok_or_else(|| corrupt(0, "org id"))?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

const WEBHOOK_COLUMNS: &str = "id, org_id, name, description, url, status, disabled_reason, \
     event_types, secret_last4, last_triggered_at, created_at, updated_at";

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<Webhook> {
    let id: String = row.get(0)?;
    let org_id: String = row.get(1)?;
    let status: String = row.get(5)?;
    let event_types: Option<String> = row.get(7)?;
    Ok(Webhook {
        id: WebhookId::parse(&id).ok_or_else(|| corrupt(0, "webhook id"))?,
        org_id: OrgId::parse(&org_id).ok_or_else(|| corrupt(1, "org id"))?,
        name: row.get(2)?,
        description: row.get(3)?,
        url: row.get(4)?,
        status: WebhookStatus::parse(&status).ok_or_else(|| corrupt(5, "status"))?,
        disabled_reason: row.get(6)?,
        event_types: event_types
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt(7, "event types")))
            .transpose()?,
        secret_last4: row.get(8)?,
        last_triggered_at: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

fn event_types_json(types: &Option<Vec<String>>) -> Result<Option<String>, StoreError> {
    types
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

/// `AND org_id = ?` when the scope names an org, with its parameter.
fn scope_clause(scope: &OrgScope, params: &mut Vec<Value>) -> &'static str {
    match scope {
        OrgScope::Org(org) => {
            params.push(Value::Text(org.as_str().to_owned()));
            " AND org_id = ?"
        }
        OrgScope::Any => "",
    }
}

fn get_live_webhook(
    conn: &Connection,
    scope: &OrgScope,
    id: &WebhookId,
) -> Result<Option<Webhook>, StoreError> {
    let mut params = vec![Value::Text(id.as_str().to_owned())];
    let clause = scope_clause(scope, &mut params);
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND deleted_at IS NULL{clause}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), webhook_from_row)
        .optional()?)
}

/// One page of `SELECT cols FROM … WHERE …` ordered by id, newest first, with precise
/// cursors in both directions.
fn page<T>(
    conn: &Connection,
    columns: &str,
    from_where: &str,
    params: &[Value],
    request: &PageRequest,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    id_of: impl Fn(&T) -> &str,
) -> Result<Page<T>, StoreError> {
    let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
    let (condition, order, boundary) = match &request.position {
        Position::First => ("", "DESC", None),
        Position::After(id) => (" AND id < ?", "DESC", Some(id)),
        Position::Before(id) => (" AND id > ?", "ASC", Some(id)),
    };
    let sql = format!("SELECT {columns} {from_where}{condition} ORDER BY id {order} LIMIT ?");
    let mut bound = params.to_vec();
    if let Some(id) = boundary {
        bound.push(Value::Text(id.clone()));
    }
    bound.push(Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1),
    ));
    let mut items = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(bound), map)?
        .collect::<Result<Vec<T>, _>>()?;
    let has_more = items.len() > limit;
    items.truncate(limit);
    if matches!(request.position, Position::Before(_)) {
        items.reverse();
    }
    let exists = |condition: &str, id: &str| -> Result<bool, StoreError> {
        let sql = format!("SELECT EXISTS(SELECT 1 {from_where}{condition})");
        let mut bound = params.to_vec();
        bound.push(Value::Text(id.to_owned()));
        Ok(conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(bound), |r| r.get(0))?)
    };
    let newest = items.first().map(&id_of);
    let oldest = items.last().map(&id_of);
    let (older_exist, newer_exist) = match &request.position {
        Position::First => (has_more, false),
        Position::After(_) => (
            has_more,
            newest
                .map(|id| exists(" AND id > ?", id))
                .transpose()?
                .unwrap_or(false),
        ),
        Position::Before(_) => (
            oldest
                .map(|id| exists(" AND id < ?", id))
                .transpose()?
                .unwrap_or(false),
            has_more,
        ),
    };
    Ok(Page {
        next_after: oldest.filter(|_| older_exist).map(str::to_owned),
        prev_before: newest.filter(|_| newer_exist).map(str::to_owned),
        has_more,
        items,
    })
}

fn insert_org(conn: &Connection, org: &Org) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)")?
        .execute(params![org.id.as_str(), org.name, org.created_at])?;
    Ok(())
}

fn insert_key(conn: &Connection, key: &ApiKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO api_keys (id, org_id, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        key.id.as_str(),
        key.org_id.as_str(),
        key.role.as_str(),
        key.secret_hash,
        key.created_at
    ])?;
    Ok(())
}

impl Store for SqliteStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        }))
    }

    fn create_org(&self, org: Org) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| insert_org(conn, &org)))
    }

    fn get_org(&self, id: OrgId) -> StoreFuture<'_, Option<Org>> {
        Box::pin(self.read(move |conn| {
            let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id.as_str()], org_from_row)
                .optional()?)
        }))
    }

    fn list_orgs(&self, request: PageRequest) -> StoreFuture<'_, Page<Org>> {
        Box::pin(self.read(move |conn| {
            page(
                conn,
                ORG_COLUMNS,
                "FROM orgs WHERE 1 = 1",
                &[],
                &request,
                org_from_row,
                |o| o.id.as_str(),
            )
        }))
    }

    fn bootstrap(&self, org: Org, key: ApiKey) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let any: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM orgs)", [], |r| r.get(0))?;
            if any {
                return Ok(false);
            }
            insert_org(conn, &org)?;
            insert_key(conn, &key)?;
            Ok(true)
        }))
    }

    fn create_api_key(&self, key: ApiKey) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| insert_key(conn, &key)))
    }

    fn get_api_key(&self, id: KeyId) -> StoreFuture<'_, Option<ApiKey>> {
        Box::pin(self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT org_id, role, secret_hash, created_at FROM api_keys WHERE id = ?")?
                .query_row([id.as_str()], |row| {
                    let org_id: String = row.get(0)?;
                    let role: String = row.get(1)?;
                    Ok(ApiKey {
                        id: id.clone(),
                        org_id: OrgId::parse(&org_id).ok_or_else(|| corrupt(0, "org id"))?,
                        role: Role::parse(&role).ok_or_else(|| corrupt(1, "role"))?,
                        secret_hash: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                })
                .optional()?;
            Ok(row)
        }))
    }

    fn create_webhook(&self, new: NewWebhook) -> StoreFuture<'_, Webhook> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO webhooks (id, org_id, name, description, url, status, event_types, \
                 secret_last4, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
            )?
            .execute(params![
                new.id.as_str(),
                new.org_id.as_str(),
                new.name,
                new.description,
                new.url,
                event_types_json(&new.event_types)?,
                new.secret_last4,
                new.now,
                new.now
            ])?;
            conn.prepare_cached(
                "INSERT INTO webhook_secrets (webhook_id, ciphertext, created_at) VALUES (?, ?, ?)",
            )?
            .execute(params![new.id.as_str(), new.secret_ciphertext, new.now])?;
            Ok(Webhook {
                id: new.id,
                org_id: new.org_id,
                name: new.name,
                description: new.description,
                url: new.url,
                status: WebhookStatus::Active,
                disabled_reason: None,
                event_types: new.event_types,
                secret_last4: new.secret_last4,
                last_triggered_at: None,
                created_at: new.now,
                updated_at: new.now,
            })
        }))
    }

    fn list_webhooks(&self, org: OrgId, request: PageRequest) -> StoreFuture<'_, Page<Webhook>> {
        Box::pin(self.read(move |conn| {
            page(
                conn,
                WEBHOOK_COLUMNS,
                "FROM webhooks WHERE org_id = ? AND deleted_at IS NULL",
                &[Value::Text(org.as_str().to_owned())],
                &request,
                webhook_from_row,
                |w| w.id.as_str(),
            )
        }))
    }

    fn get_webhook(&self, scope: OrgScope, id: WebhookId) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(self.read(move |conn| get_live_webhook(conn, &scope, &id)))
    }

    fn update_webhook(
        &self,
        scope: OrgScope,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(self.write(move |conn| {
            let Some(mut webhook) = get_live_webhook(conn, &scope, &id)? else {
                return Ok(None);
            };
            if let Some(name) = changes.name {
                webhook.name = name;
            }
            if let Some(description) = changes.description {
                webhook.description = description;
            }
            if let Some(url) = changes.url {
                webhook.url = url;
            }
            if let Some(event_types) = changes.event_types {
                webhook.event_types = event_types;
            }
            if let Some((status, reason)) = changes.status {
                webhook.status = status;
                webhook.disabled_reason = match status {
                    WebhookStatus::Active => None,
                    WebhookStatus::Disabled => reason,
                };
            }
            webhook.updated_at = changes.now.max(webhook.updated_at);
            conn.prepare_cached(
                "UPDATE webhooks SET name = ?, description = ?, url = ?, event_types = ?, status = ?, \
                 disabled_reason = ?, updated_at = ? WHERE id = ?",
            )?
            .execute(params![
                webhook.name,
                webhook.description,
                webhook.url,
                event_types_json(&webhook.event_types)?,
                webhook.status.as_str(),
                webhook.disabled_reason,
                webhook.updated_at,
                webhook.id.as_str()
            ])?;
            Ok(Some(webhook))
        }))
    }

    fn delete_webhook(&self, scope: OrgScope, id: WebhookId, now: Millis) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let mut params = vec![Value::Integer(now), Value::Integer(now), Value::Text(id.as_str().to_owned())];
            let clause = scope_clause(&scope, &mut params);
            let sql = format!(
                "UPDATE webhooks SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL{clause}"
            );
            let changed = conn.prepare_cached(&sql)?.execute(params_from_iter(params))?;
            Ok(changed > 0)
        }))
    }

    fn rotate_webhook_secret(
        &self,
        scope: OrgScope,
        id: WebhookId,
        rotation: SecretRotation,
    ) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(self.write(move |conn| {
            let Some(mut webhook) = get_live_webhook(conn, &scope, &id)? else {
                return Ok(None);
            };
            let now = rotation.now;
            match rotation.previous_expires_at {
                // No overlap: every older secret stops now (the "it leaked" case).
                None => {
                    conn.prepare_cached("DELETE FROM webhook_secrets WHERE webhook_id = ?")?
                        .execute([id.as_str()])?;
                }
                Some(until) => {
                    conn.prepare_cached(
                        "UPDATE webhook_secrets SET expires_at = ? WHERE webhook_id = ? AND expires_at IS NULL",
                    )?
                    .execute(params![until, id.as_str()])?;
                    conn.prepare_cached(
                        "DELETE FROM webhook_secrets WHERE webhook_id = ? AND expires_at <= ?",
                    )?
                    .execute(params![id.as_str(), now])?;
                }
            }
            conn.prepare_cached(
                "INSERT INTO webhook_secrets (webhook_id, ciphertext, created_at) VALUES (?, ?, ?)",
            )?
            .execute(params![id.as_str(), rotation.ciphertext, now])?;
            webhook.secret_last4 = rotation.last4;
            webhook.updated_at = now.max(webhook.updated_at);
            conn.prepare_cached("UPDATE webhooks SET secret_last4 = ?, updated_at = ? WHERE id = ?")?
                .execute(params![webhook.secret_last4, webhook.updated_at, id.as_str()])?;
            Ok(Some(webhook))
        }))
    }

    fn webhook_secrets(&self, id: WebhookId, now: Millis) -> StoreFuture<'_, Vec<StoredSecret>> {
        Box::pin(self.read(move |conn| {
            let secrets = conn
                .prepare_cached(
                    "SELECT ciphertext, expires_at FROM webhook_secrets \
                     WHERE webhook_id = ? AND (expires_at IS NULL OR expires_at > ?) \
                     ORDER BY expires_at IS NOT NULL, seq DESC",
                )?
                .query_map(params![id.as_str(), now], |row| {
                    Ok(StoredSecret {
                        ciphertext: row.get(0)?,
                        expires_at: row.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(secrets)
        }))
    }

    fn claim_idempotency_key(&self, request: IdempotencyRequest) -> StoreFuture<'_, IdempotencyClaim> {
        Box::pin(self.write(move |conn| {
            let existing = conn
                .prepare_cached(
                    "SELECT fingerprint, status, body, created_at FROM idempotency_keys WHERE org_id = ? AND key = ?",
                )?
                .query_row(params![request.org_id.as_str(), request.key], |row| {
                    let status: Option<i64> = row.get(1)?;
                    let body: Option<Vec<u8>> = row.get(2)?;
                    let created_at: Millis = row.get(3)?;
                    Ok((row.get::<_, Vec<u8>>(0)?, status, body, created_at))
                })
                .optional()?;
            let reusable = match &existing {
                None => true,
                Some((_, status, _, created_at)) => {
                    *created_at < request.expired_before
                        || (status.is_none() && *created_at < request.abandoned_before)
                }
            };
            if reusable {
                conn.prepare_cached(
                    "INSERT INTO idempotency_keys (org_id, key, fingerprint, status, body, created_at) \
                     VALUES (?, ?, ?, NULL, NULL, ?) ON CONFLICT (org_id, key) DO UPDATE SET \
                     fingerprint = excluded.fingerprint, status = NULL, body = NULL, created_at = excluded.created_at",
                )?
                .execute(params![request.org_id.as_str(), request.key, request.fingerprint, request.now])?;
                return Ok(IdempotencyClaim::Claimed);
            }
            let (fingerprint, status, body, _) = existing.ok_or(StoreError::Conflict("idempotency key"))?;
            Ok(IdempotencyClaim::Existing {
                fingerprint,
                response: status.map(|status| StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    body: body.unwrap_or_default(),
                }),
            })
        }))
    }

    fn complete_idempotency_key(
        &self,
        org: OrgId,
        key: String,
        response: StoredResponse,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE idempotency_keys SET status = ?, body = ? WHERE org_id = ? AND key = ?",
            )?
            .execute(params![
                i64::from(response.status),
                response.body,
                org.as_str(),
                key
            ])?;
            Ok(())
        }))
    }

    fn release_idempotency_key(&self, org: OrgId, key: String) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM idempotency_keys WHERE org_id = ? AND key = ? AND status IS NULL",
            )?
            .execute(params![org.as_str(), key])?;
            Ok(())
        }))
    }

    fn purge_idempotency_keys(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?")?
                .execute([before])?;
            Ok(u64::try_from(n).unwrap_or(0))
        }))
    }
}
