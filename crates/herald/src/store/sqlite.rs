//! The embedded store: SQLite in WAL mode, and a commit is acknowledged only once its WAL
//! frames are on disk, so an acknowledged write survives a power cut.
//!
//! Every write goes through one writer thread that takes all the writes waiting at that
//! moment and commits them in one transaction (group commit). One failing write never
//! undoes its neighbours: a batch runs first without savepoints (a savepoint journals every
//! page a write touches, about a fifth of the writer's work), and when any write in it
//! fails, the batch is rolled back and run again with each write in a savepoint of its own,
//! so the failed one alone is undone. A write is therefore a closure that may run twice,
//! and what it holds in memory (leases, window permits) it returns rather than keeps.
//!
//! The writer commits with `synchronous=NORMAL` (no fsync) and hands the batch's durable
//! writes to a second thread, the syncer, which `fdatasync`s the WAL file and only then
//! answers them. So the writer works on the next batch while the disk syncs the last one,
//! and one fsync covers every batch committed before it began. This is as safe as
//! `synchronous=FULL`: the frames of a commit are in the WAL file before the syncer starts,
//! and SQLite itself syncs the WAL and the database around every checkpoint, before any
//! frame could be overwritten. Checkpoints run on a third thread with a connection of its
//! own, so their syncs do not hold the writer (see `checkpointer_loop`). Reads use a small
//! pool of separate connections, which WAL lets run beside the writer.
//!
//! A write committed but not yet synced is visible to other transactions (a claim may lease
//! a just-published delivery, and a publish hands the deliveries it leased to the engine at
//! the commit) before its publisher is answered. A power cut in that window
//! loses an event that was never acknowledged, after a delivery of it may have gone out:
//! at-least-once as before, the publisher having to retry.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;
use rusqlite::types::Value;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use super::rows::{
    self, API_KEY_COLUMNS, ATTEMPT_COLUMNS, CANDIDATE_COLUMNS, DELIVERY_COLUMNS, DELIVERY_FROM,
    EVENT_COLUMNS, ORG_COLUMNS, SESSION_COLUMNS, WEBHOOK_COLUMNS, event_types_json,
};
use super::*;
use crate::domain::filter::Filter;
use crate::domain::ids::{DeliveryId, EventId, KeyId, OrgId, WebhookId};
use crate::domain::rate_limit::RateLimit;
use crate::domain::time::{Millis, now_ms};

// The backend's parts; each takes what it needs from here with `use super::*`.
use cache::*;
use claim::*;
use open::*;
use publish::*;
use purge::*;
use record::*;
use writer::*;

mod backup;
mod cache;
mod claim;
mod open;
mod publish;
mod purge;
mod record;
mod writer;

/// Reader connections; reads are short, so a few cover the two cores.
const READERS: usize = 4;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => Self::Conflict("a unique value is already taken"),
            // Busy, or the disk cannot take the write (full, failing, read-only, gone): the
            // write was undone, and the same write succeeds once the disk is back.
            Some(
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen,
            ) => Self::Unavailable(e.to_string()),
            _ => Self::Backend(e.to_string()),
        }
    }
}

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("stored {what} is malformed").into(),
    )
}

/// The webhook id in `column`, which must be well formed.
fn webhook_id_at(row: &Row<'_>, column: usize) -> rusqlite::Result<WebhookId> {
    WebhookId::parse(&row.get::<_, String>(column)?).ok_or_else(|| corrupt(column, "webhook id"))
}

impl rows::Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, column: usize) -> rusqlite::Result<String> {
        self.get(column)
    }

    fn text_opt(&self, column: usize) -> rusqlite::Result<Option<String>> {
        self.get(column)
    }

    fn int(&self, column: usize) -> rusqlite::Result<i64> {
        self.get(column)
    }

    fn int_opt(&self, column: usize) -> rusqlite::Result<Option<i64>> {
        self.get(column)
    }

    fn bytes(&self, column: usize) -> rusqlite::Result<Vec<u8>> {
        self.get(column)
    }

    fn bytes_opt(&self, column: usize) -> rusqlite::Result<Option<Vec<u8>>> {
        self.get(column)
    }

    fn flag(&self, column: usize) -> rusqlite::Result<bool> {
        Ok(self.get::<_, i64>(column)? != 0)
    }

    fn corrupt(&self, column: usize, what: &str) -> rusqlite::Error {
        corrupt(column, what)
    }
}

pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
    reads: std::sync::mpsc::Sender<Read>,
    /// Read and filled by the writer's jobs alone.
    cache: Arc<WebhookCache>,
    /// Kept by the writer and the syncer, read by `/readyz`.
    health: Arc<WriteHealth>,
}

/// A read for the reader threads: runs on one of their connections.
type Read = Box<dyn FnOnce(&Connection) + Send>;

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        create_private(&path)?;
        let mut writer = open_connection(&path, true)?;
        migrate(&mut writer)?;
        let cache = WebhookCache::watching(&mut writer)?;
        let (reads, waiting) = std::sync::mpsc::channel::<Read>();
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..READERS {
            let conn = open_connection(&path, false)?;
            let waiting = Arc::clone(&waiting);
            std::thread::Builder::new()
                .name(format!("herald-sqlite-read-{n}"))
                .spawn(move || reader_loop(&conn, &waiting))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        // Unbounded: every write's caller awaits its answer, so the queue holds at most one
        // write per caller in flight.
        let (tx, rx) = std::sync::mpsc::channel();
        let (to_sync, committed) = std::sync::mpsc::channel();
        let database = path.clone();
        let health = Arc::new(WriteHealth::default());
        let syncer_health = Arc::clone(&health);
        std::thread::Builder::new()
            .name("herald-sqlite-sync".into())
            .spawn(move || syncer_loop(&database, committed, &syncer_health))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let checkpointer = open_connection(&path, true)?;
        let (wal_grew, grown) = std::sync::mpsc::sync_channel(1);
        // Replaces SQLite's own automatic checkpoint, which ran on the writer's thread.
        writer.wal_hook(Some(
            move |wal: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
                if frames >= WAL_FRAMES_MAX {
                    // Writes kept coming while the checkpointer copied, so its checkpoints
                    // never finished and the WAL never started over: finish here, between the
                    // writer's transactions, as SQLite would. An error must not reach the
                    // commit (it would report a committed batch as failed).
                    let started = std::time::Instant::now();
                    match wal.checkpoint() {
                        // The checkpointer is at it; the next commit tries again.
                        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
                        Err(e) => tracing::warn!(error = %e, "checkpoint on the writer failed"),
                        Ok(()) => {
                            // Every write waits behind it: worth counting when latency spikes
                            // (under a steady load the WAL rarely starts over, and this runs
                            // after most commits once it is full, a few ms each).
                            metrics::counter!("herald_sqlite_writer_checkpoints_total").increment(1);
                            tracing::debug!(
                                wal.frames = frames,
                                duration_ms = started.elapsed().as_millis() as u64,
                                "the WAL reached its cap; the writer checkpointed it itself"
                            );
                        }
                    }
                } else if frames >= CHECKPOINT_FRAMES {
                    // Full: a checkpoint is already asked for, and will see these frames too.
                    let _ = wal_grew.try_send(());
                }
                Ok(())
            },
        ))?;
        std::thread::Builder::new()
            .name("herald-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(&checkpointer, &grown))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn({
                let health = Arc::clone(&health);
                move || writer_loop(writer, rx, to_sync, &health)
            })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            health,
            cache,
            jobs: tx,
            reads,
        })
    }

    /// The schema version after migrating.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// Runs `f` inside the next group-commit transaction; resolves after the durable commit.
    async fn write<T, F>(&self, mut f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(true, move |conn| f(conn).map(|t| (t, None))).await
    }

    /// Like [`Self::write`], and `f` may leave work to do the moment its commit succeeds.
    async fn write_then<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<(T, Option<OnCommit>), StoreError> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Like [`Self::write`] for bookkeeping whose loss in a power cut only repeats an attempt
    /// (leases, attempt records): it does not wait for an fsync of its own.
    async fn write_bookkeeping<T, F>(&self, mut f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(false, move |conn| f(conn).map(|t| (t, None))).await
    }

    async fn submit<T, F>(&self, durable: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<(T, Option<OnCommit>), StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let write = Box::new(Pending {
            f,
            result: None,
            reply,
        });
        self.jobs
            .send(Job { durable, write })
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on one of the reader threads' connections.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.reads
            .send(Box::new(move |conn: &Connection| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| writer_gone())?;
        answer
            .await
            .map_err(|_| StoreError::Backend("a database read failed".into()))?
    }
}

/// A reader thread: runs reads on its connection, one at a time, until the store is gone.
/// A read that panics is answered as failed (its reply is dropped) and the thread goes on.
fn reader_loop(conn: &Connection, waiting: &Mutex<std::sync::mpsc::Receiver<Read>>) {
    loop {
        let next = match waiting.lock() {
            Ok(waiting) => waiting.recv(),
            Err(_) => return,
        };
        let Ok(read) = next else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(|| read(conn))).is_err() {
            tracing::error!("a database read panicked");
        }
    }
}

fn org_from_row(row: &Row<'_>) -> rusqlite::Result<Org> {
    rows::org(row)
}

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<Webhook> {
    rows::webhook(row)
}

/// `AND {column} = ?` when the scope names an org, with its parameter, and in either case
/// the org must not be erased.
fn scope_clause(scope: &OrgScope, column: &str, params: &mut Vec<Value>) -> String {
    let live = sql::in_live_org(column);
    match scope {
        OrgScope::Org(org) => {
            params.push(Value::Text(org.as_str().to_owned()));
            format!(" AND {column} = ?{live}")
        }
        OrgScope::Any => live,
    }
}

fn get_live_webhook(
    conn: &Connection,
    scope: &OrgScope,
    id: &WebhookId,
) -> Result<Option<Webhook>, StoreError> {
    let mut params = vec![Value::Text(id.as_str().to_owned())];
    let clause = scope_clause(scope, "org_id", &mut params);
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND deleted_at IS NULL{clause}");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), webhook_from_row)
        .optional()?)
}

/// One page of `SELECT cols FROM … WHERE …` ordered by id, newest first, with precise
/// cursors in both directions.
#[expect(
    clippy::too_many_arguments,
    reason = "one generic query builder for every list"
)]
fn page<T>(
    conn: &Connection,
    id_column: &str,
    columns: &str,
    from_where: &str,
    params: &[Value],
    request: &PageRequest,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    id_of: impl Fn(&T) -> &str,
) -> Result<Page<T>, StoreError> {
    let read = request.read();
    let mut bound = params.to_vec();
    let condition = match read.boundary {
        Some((op, id)) => {
            bound.push(Value::Text(id.to_owned()));
            format!(" AND {id_column} {op} ?")
        }
        None => String::new(),
    };
    bound.push(Value::Integer(read.fetch));
    let sql = format!(
        "SELECT {columns} {from_where}{condition} ORDER BY {id_column} {} LIMIT ?",
        read.order
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(bound), map)?
        .collect::<Result<Vec<T>, _>>()?;
    let draft = request.draft(rows, id_of);
    let found = match &draft.probe {
        Some((op, id)) => {
            let sql = format!("SELECT EXISTS(SELECT 1 {from_where} AND {id_column} {op} ?)");
            let mut bound = params.to_vec();
            bound.push(Value::Text(id.clone()));
            conn.prepare_cached(&sql)?
                .query_row(params_from_iter(bound), |r| r.get(0))?
        }
        None => false,
    };
    Ok(draft.finish(found))
}

/// Holds a disabled webhook's pending deliveries until it is enabled again.
/// An erased org's pending deliveries end `canceled` and leave the queue, so nothing of it
/// is sent again; how many.
fn cancel_org_pending(conn: &Connection, org: &str, now: Millis) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(sql::CANCEL_ORG_PENDING)?
        .execute(params![now, org])?;
    conn.prepare_cached(sql::DEQUEUE_ORG)?.execute([org])?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

fn park(conn: &Connection, webhook: &WebhookId) -> Result<(), StoreError> {
    conn.prepare_cached(sql::PARK)?.execute([webhook.as_str()])?;
    Ok(())
}

fn unpark(conn: &Connection, webhook: &WebhookId, now: Millis) -> Result<(), StoreError> {
    conn.prepare_cached(sql::UNPARK)?
        .execute(params![now, webhook.as_str()])?;
    Ok(())
}

fn candidate_from_row(row: &Row<'_>) -> rusqlite::Result<Candidate> {
    rows::candidate(row)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    rows::event(row)
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    rows::delivery(row)
}

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    rows::attempt(row)
}

fn insert_org(conn: &Connection, org: &Org) -> Result<(), StoreError> {
    conn.prepare_cached(sql::INSERT_ORG)?.execute(params![
        org.id.as_str(),
        org.name,
        org.retention_ms,
        org.created_at
    ])?;
    Ok(())
}

fn insert_key(conn: &Connection, key: &ApiKey) -> Result<(), StoreError> {
    conn.prepare_cached(sql::INSERT_API_KEY)?.execute(params![
        key.id.as_str(),
        key.org_id.as_str(),
        key.role.as_str(),
        key.secret_hash,
        key.name,
        key.created_at
    ])?;
    Ok(())
}

impl Store for SqliteStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read(|conn| {
            conn.query_row(sql::PING, [], |_| Ok(()))?;
            Ok(())
        }))
    }

    fn writes_refused(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        // The writer observes the probe's outcome like any other write's.
        let probe = self.write_bookkeeping(|conn| Ok(exec(conn, sql::WRITE_PROBE)?));
        Box::pin(self.health.recheck(probe))
    }

    fn create_org(&self, org: Org) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| insert_org(conn, &org)))
    }

    fn get_org(&self, id: OrgId) -> StoreFuture<'_, Option<Org>> {
        Box::pin(self.read(move |conn| {
            let sql = format!("SELECT {ORG_COLUMNS} {} AND id = ?", sql::LIVE_ORGS);
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
                "id",
                ORG_COLUMNS,
                sql::LIVE_ORGS,
                &[],
                &request,
                org_from_row,
                |o| o.id.as_str(),
            )
        }))
    }

    fn bootstrap(&self, org: Org, key: ApiKey) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let any: bool = conn.query_row(sql::ANY_ORG, [], |r| r.get(0))?;
            if any {
                return Ok(false);
            }
            insert_org(conn, &org)?;
            insert_key(conn, &key)?;
            conn.prepare_cached(sql::MARK_OPERATOR_ORG)?
                .execute([org.id.as_str()])?;
            Ok(true)
        }))
    }

    fn update_org(&self, id: OrgId, changes: OrgChanges) -> StoreFuture<'_, Option<Org>> {
        Box::pin(self.write(move |conn| {
            let sql = format!("SELECT {ORG_COLUMNS} {} AND id = ?", sql::LIVE_ORGS);
            let Some(mut org) = conn
                .prepare_cached(&sql)?
                .query_row([id.as_str()], org_from_row)
                .optional()?
            else {
                return Ok(None);
            };
            changes.clone().apply(&mut org);
            conn.prepare_cached(sql::UPDATE_ORG)?.execute(params![
                org.name,
                org.retention_ms,
                id.as_str()
            ])?;
            Ok(Some(org))
        }))
    }

    fn erase_org(&self, id: OrgId, now: Millis) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let org = id.as_str();
            if conn.prepare_cached(sql::ERASE_ORG)?.execute(params![now, org])? == 0 {
                return Ok(false);
            }
            conn.prepare_cached(sql::REVOKE_ORG_KEYS)?
                .execute(params![now, org])?;
            conn.prepare_cached(sql::DELETE_ORG_SESSIONS)?
                .execute(params![org, org])?;
            cancel_org_pending(conn, org, now)?;
            Ok(true)
        }))
    }

    fn create_api_key(&self, key: ApiKey) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| insert_key(conn, &key)))
    }

    fn get_api_key(&self, id: KeyId) -> StoreFuture<'_, Option<ApiKey>> {
        Box::pin(self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!("SELECT {API_KEY_COLUMNS} {} AND id = ?", sql::LIVE_KEYS))?
                .query_row([id.as_str()], |row| rows::api_key(row))
                .optional()?;
            Ok(row)
        }))
    }

    fn list_api_keys(&self, org: Option<OrgId>, request: PageRequest) -> StoreFuture<'_, Page<ApiKey>> {
        Box::pin(self.read(move |conn| {
            let mut from_where = sql::LIVE_KEYS.to_owned();
            let mut params = Vec::new();
            if let Some(org) = &org {
                from_where.push_str(" AND org_id = ?");
                params.push(Value::Text(org.as_str().to_owned()));
            }
            page(
                conn,
                "id",
                API_KEY_COLUMNS,
                &from_where,
                &params,
                &request,
                |row| rows::api_key(row),
                |k| k.id.as_str(),
            )
        }))
    }

    fn revoke_api_key(&self, id: KeyId, now: Millis) -> StoreFuture<'_, Revoke> {
        Box::pin(self.write(move |conn| {
            let role: Option<String> = conn
                .prepare_cached(sql::LIVE_KEY_ROLE)?
                .query_row([id.as_str()], |r| r.get(0))
                .optional()?;
            let others: i64 = conn
                .prepare_cached(sql::OTHER_LIVE_ADMINS)?
                .query_row([id.as_str()], |r| r.get(0))?;
            let decision = Revoke::decide(role.as_deref().and_then(Role::parse), others);
            if decision == Revoke::Revoked {
                conn.prepare_cached(sql::REVOKE_KEY)?
                    .execute(params![now, id.as_str()])?;
            }
            Ok(decision)
        }))
    }

    fn touch_api_keys(&self, used: Vec<(KeyId, Millis)>) -> StoreFuture<'_, ()> {
        Box::pin(self.write_bookkeeping(move |conn| {
            let mut touch = conn.prepare_cached(sql::TOUCH_KEY)?;
            for (id, at) in &used {
                touch.execute(params![at, id.as_str(), at - KEY_USE_RESOLUTION_MS])?;
            }
            Ok(())
        }))
    }

    fn create_webhook(&self, new: NewWebhook) -> StoreFuture<'_, Webhook> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_WEBHOOK)?.execute(params![
                new.id.as_str(),
                new.org_id.as_str(),
                new.name,
                new.description,
                new.url,
                event_types_json(&new.event_types)?,
                new.secret_last4,
                new.now,
                new.now,
                new.filter.as_ref().map(Filter::to_json_string),
                new.headers_ciphertext,
                new.rate_limit.map(RateLimit::per_second),
                new.ordering.as_str()
            ])?;
            conn.prepare_cached(sql::INSERT_SECRET)?.execute(params![
                new.id.as_str(),
                new.secret_ciphertext,
                new.now
            ])?;
            Ok(new.clone().into_webhook())
        }))
    }

    fn list_webhooks(&self, org: OrgId, request: PageRequest) -> StoreFuture<'_, Page<Webhook>> {
        Box::pin(self.read(move |conn| {
            page(
                conn,
                "id",
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
            let (was, was_ordering) = (webhook.status, webhook.ordering);
            let now = changes.now;
            changes.clone().apply(&mut webhook);
            conn.prepare_cached(
                "UPDATE webhooks SET name = ?1, description = ?2, url = ?3, event_types = ?4, status = ?5, \
                 disabled_reason = ?6, updated_at = ?7, filter = ?9, headers = ?10, rate_limit = ?11, ordering = ?12, \
                 failing_since = CASE WHEN ?5 = 'active' THEN NULL ELSE failing_since END WHERE id = ?8",
            )?
            .execute(params![
                webhook.name,
                webhook.description,
                webhook.url,
                event_types_json(&webhook.event_types)?,
                webhook.status.as_str(),
                webhook.disabled_reason,
                webhook.updated_at,
                webhook.id.as_str(),
                webhook.filter.as_ref().map(Filter::to_json_string),
                webhook.headers_ciphertext,
                webhook.rate_limit.map(RateLimit::per_second),
                webhook.ordering.as_str()
            ])?;
            if let Some(line) = line_change(was_ordering, webhook.ordering) {
                conn.prepare_cached(line)?.execute([webhook.id.as_str()])?;
            }
            match (was, webhook.status) {
                (WebhookStatus::Active, WebhookStatus::Disabled) => park(conn, &webhook.id)?,
                (WebhookStatus::Disabled, WebhookStatus::Active) => {
                    unpark(conn, &webhook.id, now)?;
                    conn.prepare_cached(sql::ANNOUNCE_ENABLED)?.execute(params![
                        new_announcement_id(),
                        now,
                        webhook.id.as_str()
                    ])?;
                }
                _ => {}
            }
            Ok(Some(webhook))
        }))
    }

    fn delete_webhook(&self, scope: OrgScope, id: WebhookId, now: Millis) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |conn| {
            let mut params = vec![Value::Integer(now), Value::Integer(now), Value::Text(id.as_str().to_owned())];
            let clause = scope_clause(&scope, "org_id", &mut params);
            let sql = format!(
                "UPDATE webhooks SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL{clause}"
            );
            let changed = conn.prepare_cached(&sql)?.execute(params_from_iter(params))?;
            if changed > 0 {
                conn.prepare_cached(sql::CANCEL_PENDING)?
                    .execute(params![now, id.as_str()])?;
                conn.prepare_cached(sql::DEQUEUE_WEBHOOK)?
                    .execute([id.as_str()])?;
            }
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
                    conn.prepare_cached(sql::DELETE_SECRETS)?.execute([id.as_str()])?;
                }
                Some(until) => {
                    conn.prepare_cached(sql::EXPIRE_CURRENT_SECRET)?
                        .execute(params![until, id.as_str()])?;
                    conn.prepare_cached(sql::DELETE_EXPIRED_SECRETS)?
                        .execute(params![id.as_str(), now])?;
                }
            }
            conn.prepare_cached(sql::INSERT_SECRET)?.execute(params![
                id.as_str(),
                rotation.ciphertext,
                now
            ])?;
            webhook.secret_last4 = rotation.last4.clone();
            webhook.updated_at = now.max(webhook.updated_at);
            conn.prepare_cached(sql::SET_SECRET_LAST4)?.execute(params![
                webhook.secret_last4,
                webhook.updated_at,
                id.as_str()
            ])?;
            Ok(Some(webhook))
        }))
    }

    fn webhook_secrets(&self, id: WebhookId, now: Millis) -> StoreFuture<'_, Vec<StoredSecret>> {
        Box::pin(self.read(move |conn| {
            let secrets = conn
                .prepare_cached(sql::LIVE_SECRETS)?
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

    fn publish(&self, event: NewEvent) -> StoreFuture<'_, Published> {
        let cache = Arc::clone(&self.cache);
        Box::pin(self.write_then(move |conn| {
            let mut committed = Committed::default();
            let published = publish_in(conn, &event, &cache, &mut committed)?;
            Ok((published, hand_over(event.lease.as_ref(), committed)))
        }))
    }

    fn publish_batch(&self, events: Vec<NewEvent>) -> StoreFuture<'_, Vec<Published>> {
        let cache = Arc::clone(&self.cache);
        Box::pin(self.write_then(move |conn| {
            let mut committed = Committed::default();
            let published = events
                .iter()
                .map(|event| publish_in(conn, event, &cache, &mut committed))
                .collect::<Result<Vec<_>, _>>()?;
            let offer = events.iter().find_map(|event| event.lease.as_ref());
            Ok((published, hand_over(offer, committed)))
        }))
    }

    fn get_event(&self, scope: OrgScope, id: EventId) -> StoreFuture<'_, Option<Event>> {
        Box::pin(self.read(move |conn| {
            let mut params = vec![Value::Text(id.as_str().to_owned())];
            let clause = scope_clause(&scope, "org_id", &mut params);
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?{clause}");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(params), event_from_row)
                .optional()?)
        }))
    }

    fn claim_due(&self, request: ClaimRequest) -> StoreFuture<'_, Claim> {
        let cache = Arc::clone(&self.cache);
        Box::pin(self.write_bookkeeping(move |conn| {
            let controls = cache.controls(conn)?;
            let mut budget = ClaimBudget::of(&request, controls.limited.clone());
            let head = due_head(conn, request.now)?;
            let (read, head_full) = (head.len(), head.len() == ClaimBudget::HEAD);
            let mut chosen = budget.take(controls.unordered(head));
            // A full head may hide more due work; a short one was all of it (a FIFO line's
            // rows behind its head are due work left behind too).
            let more_due = head_full || chosen.len() < read;
            chosen.extend(budget.take(fifo_heads(conn, &controls, request.now)?));
            // Leased before the second step reads, which then no longer sees them as due.
            let mut jobs = lease_claims(conn, &request, chosen, &cache)?;
            if head_full && budget.remaining() > 0 {
                let chosen = budget.take(due_per_webhook(conn, &budget, &controls, request.now)?);
                jobs.extend(lease_claims(conn, &request, chosen, &cache)?);
            }
            Ok(Claim { jobs, more_due })
        }))
    }

    fn next_due_at(&self) -> StoreFuture<'_, Option<Millis>> {
        Box::pin(self.read(|conn| {
            Ok(conn
                .prepare_cached(sql::NEXT_DUE_AT)?
                .query_row([], |row| row.get(0))?)
        }))
    }

    fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreFuture<'_, Vec<WebhookEffect>> {
        Box::pin(self.write_bookkeeping(move |conn| {
            let mut batch = BatchWebhooks::default();
            let effects: Vec<WebhookEffect> = records
                .iter()
                .map(|record| record_one(conn, record, batch.writes_for(record)))
                .collect::<Result<_, _>>()?;
            add_rollup(conn, &records)?;
            Ok(effects)
        }))
    }

    fn queue_stats(&self) -> StoreFuture<'_, QueueStats> {
        Box::pin(self.read(|conn| {
            let (pending, due, oldest): (i64, i64, Option<Millis>) =
                conn.prepare_cached(sql::QUEUE_STATS)?
                    .query_row([now_ms()], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            Ok(QueueStats {
                pending: u64::try_from(pending).unwrap_or(0),
                due: u64::try_from(due).unwrap_or(0),
                oldest_pending_created_at: oldest,
            })
        }))
    }

    fn reserve_turns(&self, webhook: WebhookId, span_us: i64, now_us: i64) -> StoreFuture<'_, i64> {
        Box::pin(self.write_bookkeeping(move |conn| {
            let end: i64 = conn
                .prepare_cached(
                    "INSERT INTO webhook_pacing (webhook_id, next_turn_us) VALUES (?1, ?2 + ?3) \
                     ON CONFLICT (webhook_id) DO UPDATE SET next_turn_us = MAX(next_turn_us, ?2) + ?3 \
                     RETURNING next_turn_us",
                )?
                .query_row(params![webhook.as_str(), now_us, span_us], |row| row.get(0))?;
            Ok(end - span_us)
        }))
    }

    fn list_deliveries(
        &self,
        filter: DeliveryFilter,
        request: PageRequest,
    ) -> StoreFuture<'_, Page<Delivery>> {
        Box::pin(self.read(move |conn| {
            let mut from_where = format!("{DELIVERY_FROM} WHERE 1 = 1");
            let mut params = Vec::new();
            if let Some(org) = &filter.org_id {
                from_where.push_str(" AND d.org_id = ?");
                params.push(Value::Text(org.as_str().to_owned()));
            }
            if let Some(event) = &filter.event_id {
                from_where.push_str(" AND d.event_id = ?");
                params.push(Value::Text(event.clone()));
            }
            if let Some(webhook) = &filter.webhook_id {
                from_where.push_str(" AND d.webhook_id = ?");
                params.push(Value::Text(webhook.clone()));
            }
            if let Some(status) = filter.status {
                from_where.push_str(" AND d.status = ?");
                params.push(Value::Text(status.as_str().to_owned()));
            }
            if let Some(event_type) = &filter.event_type {
                from_where.push_str(" AND d.event_type = ?");
                params.push(Value::Text(event_type.clone()));
            }
            if let Some(after) = filter.created_after {
                from_where.push_str(" AND d.created_at > ?");
                params.push(Value::Integer(after));
            }
            if let Some(before) = filter.created_before {
                from_where.push_str(" AND d.created_at < ?");
                params.push(Value::Integer(before));
            }
            page(
                conn,
                "d.id",
                DELIVERY_COLUMNS,
                &from_where,
                &params,
                &request,
                delivery_from_row,
                |d| d.id.as_str(),
            )
        }))
    }

    fn get_delivery(&self, scope: OrgScope, id: DeliveryId) -> StoreFuture<'_, Option<Delivery>> {
        Box::pin(self.read(move |conn| {
            let mut params = vec![Value::Text(id.as_str().to_owned())];
            let clause = scope_clause(&scope, "d.org_id", &mut params);
            let sql = format!("SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM} WHERE d.id = ?{clause}");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(params), delivery_from_row)
                .optional()?)
        }))
    }

    fn list_attempts(&self, delivery: DeliveryId) -> StoreFuture<'_, Vec<Attempt>> {
        Box::pin(self.read(move |conn| {
            let attempts = conn
                .prepare_cached(
                    &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY attempt_number, started_at"),
                )?
                .query_map([delivery.as_str()], attempt_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(attempts)
        }))
    }

    fn requeue_delivery(&self, scope: OrgScope, id: DeliveryId, now: Millis) -> StoreFuture<'_, Requeue> {
        Box::pin(self.write(move |conn| {
            let mut params = vec![Value::Text(id.as_str().to_owned())];
            let clause = scope_clause(&scope, "d.org_id", &mut params);
            let sql = format!(
                "SELECT d.seq, d.status, w.id, w.status FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?{clause}"
            );
            let found: Option<(i64, String, String, String)> = conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(params), |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()?;
            let Some((seq, status, webhook, webhook_status)) = found else {
                return Ok(Requeue::NotFound);
            };
            if status == "canceled" {
                return Ok(Requeue::Canceled);
            }
            let due = (webhook_status == "active").then_some(now);
            conn.prepare_cached(sql::REQUEUE_DELIVERY)?
                .execute(params![now, seq])?;
            conn.prepare_cached(sql::QUEUE_DELIVERY)?
                .execute(params![seq, due, webhook])?;
            Ok(Requeue::Queued)
        }))
    }

    fn replay_failed(
        &self,
        scope: OrgScope,
        webhook: WebhookId,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> StoreFuture<'_, Option<u64>> {
        Box::pin(self.write(move |conn| {
            let Some(found) = get_live_webhook(conn, &scope, &webhook)? else {
                return Ok(None);
            };
            let due = (found.status == WebhookStatus::Active).then_some(now);
            conn.prepare_cached(sql::QUEUE_FAILED)?.execute(params![
                due,
                webhook.as_str(),
                webhook.as_str(),
                webhook.as_str(),
                since,
                until
            ])?;
            let n = conn.prepare_cached(sql::REPLAY_FAILED)?.execute(params![
                now,
                webhook.as_str(),
                since,
                until
            ])?;
            Ok(Some(u64::try_from(n).unwrap_or(0)))
        }))
    }

    fn claim_idempotency_key(&self, request: IdempotencyRequest) -> StoreFuture<'_, IdempotencyClaim> {
        Box::pin(self.write(move |conn| {
            let existing = conn
                .prepare_cached(&format!(
                    "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE key_id = ? AND key = ?"
                ))?
                .query_row(params![request.key_id.as_str(), request.key], |row| {
                    Ok(IdempotencyRecord {
                        fingerprint: row.get(0)?,
                        status: row.get(1)?,
                        body: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                })
                .optional()?;
            match existing {
                Some(record) if !request.may_take(&record) => Ok(record.into()),
                _ => {
                    conn.prepare_cached(
                        "INSERT INTO idempotency_keys (key_id, key, fingerprint, status, body, created_at) \
                         VALUES (?, ?, ?, NULL, NULL, ?) ON CONFLICT (key_id, key) DO UPDATE SET \
                         fingerprint = excluded.fingerprint, status = NULL, body = NULL, created_at = excluded.created_at",
                    )?
                    .execute(params![request.key_id.as_str(), request.key, request.fingerprint, request.now])?;
                    Ok(IdempotencyClaim::Claimed)
                }
            }
        }))
    }

    fn complete_idempotency_key(
        &self,
        caller: KeyId,
        key: String,
        response: StoredResponse,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::COMPLETE_IDEMPOTENCY_KEY)?
                .execute(params![
                    i64::from(response.status),
                    response.body,
                    caller.as_str(),
                    key
                ])?;
            Ok(())
        }))
    }

    fn release_idempotency_key(&self, caller: KeyId, key: String) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::RELEASE_IDEMPOTENCY_KEY)?
                .execute(params![caller.as_str(), key])?;
            Ok(())
        }))
    }

    fn purge_idempotency_keys(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |conn| {
            let n = conn
                .prepare_cached(sql::PURGE_IDEMPOTENCY_KEYS)?
                .execute([before])?;
            Ok(u64::try_from(n).unwrap_or(0))
        }))
    }

    fn create_session(&self, session: Session) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_SESSION)?.execute(params![
                session.token_hash,
                session.key_id.as_str(),
                session.org_id.as_str(),
                session.created_at,
                session.expires_at
            ])?;
            Ok(())
        }))
    }

    fn get_session(&self, token_hash: Vec<u8>, now: Millis) -> StoreFuture<'_, Option<Session>> {
        Box::pin(self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM dashboard_sessions WHERE token_hash = ? AND expires_at > ?"
                ))?
                .query_row(params![token_hash, now], |row| {
                    rows::session(token_hash.clone(), row)
                })
                .optional()?)
        }))
    }

    fn set_session_org(&self, token_hash: Vec<u8>, org: OrgId) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::SET_SESSION_ORG)?
                .execute(params![org.as_str(), token_hash])?;
            Ok(())
        }))
    }

    fn delete_session(&self, token_hash: Vec<u8>) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::DELETE_SESSION)?
                .execute([token_hash.as_slice()])?;
            Ok(())
        }))
    }

    fn purge_sessions(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |conn| {
            let mut n = conn.prepare_cached(sql::PURGE_SESSIONS)?.execute([before])?;
            n += conn.prepare_cached(sql::PURGE_PORTAL_LINKS)?.execute([before])?;
            Ok(u64::try_from(n).unwrap_or(0))
        }))
    }

    fn create_portal_link(&self, link: PortalLink) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            conn.prepare_cached(sql::INSERT_PORTAL_LINK)?.execute(params![
                link.token_hash,
                link.org_id.as_str(),
                link.read_only,
                link.theme,
                link.created_at,
                link.expires_at
            ])?;
            Ok(())
        }))
    }

    fn get_portal_link(&self, token_hash: Vec<u8>, now: Millis) -> StoreFuture<'_, Option<PortalLink>> {
        Box::pin(self.read(move |conn| {
            Ok(conn
                .prepare_cached(sql::PORTAL_LINK)?
                .query_row(params![token_hash, now], |row| {
                    rows::portal_link(token_hash.clone(), row)
                })
                .optional()?)
        }))
    }

    fn org_lifecycles(&self) -> StoreFuture<'_, Vec<OrgLifecycle>> {
        Box::pin(self.read(|conn| {
            conn.prepare_cached(sql::ORG_LIFECYCLES)?
                .query_map([], |row| rows::org_lifecycle(row))?
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)
        }))
    }

    fn purge_events(&self, step: PurgeStep) -> StoreFuture<'_, Purged> {
        Box::pin(async move {
            // Looked at on a reader first: the writer is taken only when there is work.
            let probe = step.clone();
            let scanned = self.read(move |conn| scan(conn, &probe)).await?;
            if let Some(purged) = nothing_to_delete(&step, &scanned) {
                return Ok(purged);
            }
            // Not waiting for its fsync: a purge lost in a crash is done again.
            self.write_bookkeeping(move |conn| purge_in(conn, &step)).await
        })
    }

    fn cancel_org_deliveries(&self, org: OrgId, now: Millis) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |conn| cancel_org_pending(conn, org.as_str(), now)))
    }

    fn forget_org(&self, org: OrgId) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |conn| {
            for statement in sql::FORGET_ORG {
                conn.prepare_cached(statement)?.execute([org.as_str()])?;
            }
            Ok(())
        }))
    }

    fn announcements(&self, limit: u32) -> StoreFuture<'_, Vec<Announcement>> {
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::ANNOUNCEMENTS)?;
            let rows = statement.query_map([limit], |row| rows::announcement(row))?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
    }

    fn forget_announcement(&self, id: String) -> StoreFuture<'_, ()> {
        Box::pin(self.write_bookkeeping(move |conn| {
            conn.prepare_cached(sql::FORGET_ANNOUNCEMENT)?.execute([&id])?;
            Ok(())
        }))
    }

    fn operator_org(&self) -> StoreFuture<'_, Option<OrgId>> {
        Box::pin(self.read(|conn| {
            let id: Option<String> = conn
                .prepare_cached(sql::OPERATOR_ORG)?
                .query_row([], |row| row.get(0))
                .optional()?;
            Ok(id.as_deref().and_then(OrgId::parse))
        }))
    }

    fn purge_rollups(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(self.write(move |conn| {
            let mut n = 0;
            for statement in sql::PURGE_ROLLUPS {
                n += conn
                    .prepare_cached(statement)?
                    .execute([rollup::minute_of(before)])?;
            }
            Ok(u64::try_from(n).unwrap_or(0))
        }))
    }

    fn attempt_counts(&self, query: StatsQuery) -> StoreFuture<'_, Vec<AttemptCount>> {
        Box::pin(self.read(move |conn| {
            let mut params = vec![
                Value::Integer(query.since),
                Value::Integer(query.bucket_ms.max(1)),
                Value::Text(query.org_id.as_str().to_owned()),
                Value::Integer(rollup::first_minute(query.since)),
            ];
            let table = rollup::Resolution::for_buckets(query.since, query.bucket_ms) as usize;
            let statement = match &query.webhook_id {
                Some(webhook) => {
                    params.push(Value::Text(webhook.as_str().to_owned()));
                    sql::WEBHOOK_ATTEMPT_COUNTS[table]
                }
                None => sql::ATTEMPT_COUNTS[table],
            };
            let rows = conn
                .prepare_cached(statement)?
                .query_map(params_from_iter(params), |row| {
                    Ok(AttemptCount {
                        bucket: row.get(0)?,
                        outcome: AttemptOutcome::from_code(row.get(1)?),
                        latency_class: usize::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        count: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        }))
    }

    fn webhook_health(
        &self,
        org: OrgId,
        since: Millis,
    ) -> StoreFuture<'_, std::collections::HashMap<WebhookId, WebhookHealth>> {
        Box::pin(self.read(move |conn| {
            let webhook_id = |row: &rusqlite::Row<'_>| {
                let webhook: String = row.get(0)?;
                WebhookId::parse(&webhook).ok_or_else(|| corrupt(0, "webhook id"))
            };
            // SQLite fills the bare columns from the row that holds the MAX: the last answer.
            let mut health: std::collections::HashMap<WebhookId, WebhookHealth> = conn
                .prepare_cached(
                    "SELECT m.webhook_id, SUM(m.delivered), SUM(m.failed), MAX(m.last_attempt_at), \
                     m.last_response_status, m.last_error \
                     FROM webhooks w JOIN webhook_minutes m ON m.webhook_id = w.id \
                     WHERE w.org_id = ? AND m.minute >= ? GROUP BY m.webhook_id",
                )?
                .query_map(params![org.as_str(), rollup::first_minute(since)], |row| {
                    Ok((
                        webhook_id(row)?,
                        WebhookHealth {
                            delivered: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                            failed: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                            pending: 0,
                            last_attempt_at: row.get(3)?,
                            last_response_status: row.get(4)?,
                            last_error: rows::error_class(row, 5)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut pending = conn.prepare_cached(sql::PENDING_BY_WEBHOOK)?;
            let mut rows = pending.query([org.as_str()])?;
            while let Some(row) = rows.next()? {
                health.entry(webhook_id(row)?).or_default().pending =
                    u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
            }
            Ok(health)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rusqlite::StatementStatus;

    use super::*;
    use crate::delivery::leases::EngineLeasing;
    use crate::domain::time::now_ms;

    /// The engine's leasing, with a window of 1,024, each webhook capped at `per_webhook`.
    fn leasing(per_webhook: u32) -> Arc<dyn Leasing> {
        let wake = Arc::new(tokio::sync::Notify::new());
        EngineLeasing::new(per_webhook, Arc::new(tokio::sync::Semaphore::new(1024)), wake).0
    }

    /// Two webhooks (one mid-rotation, so it has an expiring secret) with due deliveries.
    async fn store_with_due_work(path: &Path) -> Vec<WebhookId> {
        let (store, org, webhooks) = store_with_webhooks(path).await;
        for _ in 0..6 {
            store.publish(event(&org, now_ms(), None)).await.expect("publish");
        }
        webhooks
    }

    fn event(org: &OrgId, now: Millis, lease: Option<LeaseOffer>) -> NewEvent {
        NewEvent {
            id: EventId::new(),
            org_id: org.clone(),
            event_type: "order.filled".into(),
            payload: "{}".into(),
            source_id: None,
            dedup_after: 0,
            only_webhook: None,
            now,
            lease,
        }
    }

    /// An org with two webhooks subscribed to everything, one mid-rotation (so it has an
    /// expiring secret).
    async fn store_with_webhooks(path: &Path) -> (SqliteStore, OrgId, Vec<WebhookId>) {
        let store = SqliteStore::open(path).await.expect("open");
        let now = now_ms();
        let org = Org {
            id: OrgId::new(),
            name: "acme".into(),
            retention_ms: None,
            created_at: now,
        };
        store.create_org(org.clone()).await.expect("org");
        let mut webhooks = Vec::new();
        for n in 0..2 {
            let id = WebhookId::new();
            store
                .create_webhook(NewWebhook {
                    id: id.clone(),
                    org_id: org.id.clone(),
                    name: None,
                    description: None,
                    url: format!("https://example.com/{n}"),
                    event_types: None,
                    filter: None,
                    headers_ciphertext: None,
                    rate_limit: None,
                    ordering: Default::default(),
                    secret_ciphertext: vec![1, 2, 3],
                    secret_last4: "abcd".into(),
                    now,
                })
                .await
                .expect("webhook");
            webhooks.push(id);
        }
        let rotation = SecretRotation {
            ciphertext: vec![4, 5, 6],
            last4: "efgh".into(),
            previous_expires_at: Some(now + 3_600_000),
            now,
        };
        store
            .rotate_webhook_secret(OrgScope::Any, webhooks[0].clone(), rotation)
            .await
            .expect("rotate");
        (store, org.id, webhooks)
    }

    /// [`store_with_due_work`] in a temp dir (kept alive by the first value), and a writer
    /// connection of our own to it.
    async fn due_work() -> (tempfile::TempDir, Vec<WebhookId>, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("herald.db");
        let webhooks = store_with_due_work(&path).await;
        let conn = open_connection(&path, true).expect("connection");
        (dir, webhooks, conn)
    }

    #[tokio::test]
    async fn hot_statements_are_prepared_once_whatever_their_parameters() {
        let (_dir, webhooks, conn) = due_work().await;
        let start = now_ms() + 10;
        for step in 0..8 {
            let now = start + step;
            let head = due_head(&conn, now).expect("head");
            assert!(!head.is_empty(), "the deliveries are due");
            for webhook in &webhooks {
                fresh_may_pass_due(&conn, webhook.as_str(), now).expect("oldest due");
                assert!(
                    !live_secrets(&secret_rows(&conn, webhook.as_str()).expect("secrets"), now).is_empty()
                );
            }
            let budget = ClaimBudget::new(Vec::new(), 64, 1024, Vec::new());
            due_per_webhook(&conn, &budget, &Controls::default(), now).expect("per webhook");
            let request = ClaimRequest {
                now,
                lease_until: now + 1_000 + step,
                limit: 1,
                leases: leasing(64),
            };
            let (seq, _) = head[0].clone();
            lease_claims(&conn, &request, vec![seq], &WebhookCache::unwatched()).expect("lease");
        }
        for sql in [
            SQL_DUE_HEAD,
            SQL_NEXT_PENDING_WEBHOOK,
            SQL_DUE_OF_WEBHOOK,
            SQL_DUE_WAITING,
            SQL_LEASE_READ,
            sql::LEASE,
            SQL_SIGNING_SECRETS,
        ] {
            let statement = conn.prepare_cached(sql).expect("cached");
            assert_eq!(
                statement.get_status(StatementStatus::RePrepare),
                0,
                "prepared again on a run: {sql}"
            );
        }
    }

    type Reply = oneshot::Receiver<Result<(), StoreError>>;

    /// A bookkeeping job that inserts org `name`, then fails or panics if told to, and
    /// counts its runs.
    fn org_job(name: &str, fail: bool, panic: bool, runs: &Arc<AtomicUsize>) -> (Job, Reply) {
        let (reply, rx) = oneshot::channel();
        let (name, runs) = (name.to_owned(), Arc::clone(runs));
        let f = move |conn: &Connection| {
            runs.fetch_add(1, Ordering::SeqCst);
            let org = Org {
                id: OrgId::new(),
                name: name.clone(),
                retention_ms: None,
                created_at: 1,
            };
            insert_org(conn, &org)?;
            assert!(!panic, "a write that panics after writing");
            if fail {
                return Err(StoreError::Conflict("a write that fails after writing"));
            }
            Ok(((), None))
        };
        let write = Box::new(Pending {
            f,
            result: None,
            reply,
        });
        (
            Job {
                durable: false,
                write,
            },
            rx,
        )
    }

    /// The one text column `sql` selects, row by row.
    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        conn.prepare(sql)
            .expect("select")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("strings")
    }

    fn org_names(conn: &Connection) -> Vec<String> {
        strings(conn, "SELECT name FROM orgs ORDER BY name")
    }

    #[test]
    fn a_failing_write_is_undone_alone_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_connection(&dir.path().join("herald.db"), true).expect("connection");
        migrate(&mut conn).expect("migrate");
        let (syncer, _synced) = std::sync::mpsc::channel();
        let runs = Arc::new(AtomicUsize::new(0));

        let (mut batch, replies): (Vec<Job>, Vec<Reply>) = [("a", false), ("b", false), ("c", false)]
            .iter()
            .map(|(name, fail)| org_job(name, *fail, false, &runs))
            .unzip();
        run_batch(&conn, &mut batch, &syncer, &WriteHealth::default());
        assert_eq!(org_names(&conn), ["a", "b", "c"]);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "a batch that succeeds runs each write once"
        );
        for mut reply in replies {
            assert!(matches!(reply.try_recv(), Ok(Some(Ok(())))));
        }

        let (mut batch, replies): (Vec<Job>, Vec<Reply>) = [
            ("d", false, false),
            ("e", true, false),
            ("f", false, true),
            ("g", false, false),
        ]
        .iter()
        .map(|(name, fail, panic)| org_job(name, *fail, *panic, &runs))
        .unzip();
        run_batch(&conn, &mut batch, &syncer, &WriteHealth::default());
        assert_eq!(
            org_names(&conn),
            ["a", "b", "c", "d", "g"],
            "only the failed writes are undone"
        );
        let outcomes: Vec<bool> = replies
            .into_iter()
            .map(|mut reply| matches!(reply.try_recv(), Ok(Some(Ok(())))))
            .collect();
        assert_eq!(outcomes, [true, false, false, true]);
    }

    #[test]
    fn a_full_database_refuses_a_batch_and_the_writer_takes_it_once_space_is_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_connection(&dir.path().join("herald.db"), true).expect("connection");
        migrate(&mut conn).expect("migrate");
        let (syncer, _synced) = std::sync::mpsc::channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let health = WriteHealth::default();
        // SQLite answers SQLITE_FULL, as on a full disk, once the file would pass this size.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("page count");
        let limit = |pages: i64| {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .expect("max_page_count");
        };
        limit(pages);
        let big = "x".repeat(64 * 1024);

        let (mut batch, replies): (Vec<Job>, Vec<Reply>) =
            (0..3).map(|_| org_job(&big, false, false, &runs)).unzip();
        run_batch(&conn, &mut batch, &syncer, &health);
        for mut reply in replies {
            let answer = reply.try_recv().expect("answered").expect("answered");
            assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
        }
        assert!(org_names(&conn).is_empty(), "nothing of the refused batch stays");
        assert!(
            health.refused().is_some_and(|why| why.contains("full")),
            "{:?}",
            health.refused()
        );

        limit(1_000_000);
        let (mut batch, replies): (Vec<Job>, Vec<Reply>) =
            (0..3).map(|_| org_job(&big, false, false, &runs)).unzip();
        run_batch(&conn, &mut batch, &syncer, &health);
        for mut reply in replies {
            assert!(matches!(reply.try_recv(), Ok(Some(Ok(())))));
        }
        assert_eq!(org_names(&conn).len(), 3);
        assert_eq!(health.refused(), None, "a committed write clears the refusal");
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_into_the_database_file_off_the_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("herald.db");
        let store = SqliteStore::open(&path).await.expect("open");
        let before = std::fs::metadata(&path).expect("database file").len();
        // About two WAL frames per commit, so well past CHECKPOINT_FRAMES.
        let name = "n".repeat(2_000);
        for _ in 0..800 {
            let org = Org {
                id: OrgId::new(),
                name: name.clone(),
                retention_ms: None,
                created_at: 1,
            };
            store.create_org(org).await.expect("org");
        }
        // At least the first checkpoint's share (≈ 500 commits): once a checkpoint finishes,
        // the WAL starts over, and the commits after it stay there until it grows past
        // CHECKPOINT_FRAMES again, so how much more reaches the file depends on timing.
        let copied = 500 * 2_000 / 2;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&path).expect("database file").len() < before + copied {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied back into the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn hot_writes_build_no_temporary_tables() {
        let (_dir, _webhooks, conn) = due_work().await;
        for sql in [
            SQL_INSERT_DELIVERY.to_owned(),
            SQL_LEASE_READ.to_owned(),
            SQL_QUEUE_FRESH.to_owned(),
            sql::LEASE.to_owned(),
            sql::RECORD_STATE.to_owned(),
            sql::DEQUEUE.to_owned(),
            sql::DEQUEUE_LEASED.to_owned(),
            sql::REQUEUE_LEASED.to_owned(),
        ] {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).expect("explain");
            let unbound = vec![Value::Null; explain.parameter_count()];
            let opcodes: Vec<String> = explain
                .query_map(params_from_iter(unbound), |row| row.get(1))
                .expect("program")
                .collect::<Result<_, _>>()
                .expect("opcodes");
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "opens a temporary table on every run: {sql}"
            );
        }
    }

    #[test]
    fn the_rebuilds_keep_every_delivery_its_queue_place_and_attempts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = open_connection(&dir.path().join("herald.db"), true).expect("connection");
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).expect("earlier migration");
        }
        conn.pragma_update(None, "user_version", 6).expect("version");
        let (org, webhook, event) = (OrgId::new(), WebhookId::new(), EventId::new());
        conn.execute(
            "INSERT INTO orgs (id, name, created_at) VALUES (?, 'acme', 1)",
            [org.as_str()],
        )
        .expect("org");
        conn.execute(
            "INSERT INTO webhooks (id, org_id, url, status, secret_last4, created_at, updated_at) \
             VALUES (?, ?, 'https://example.com/', 'active', 'abcd', 1, 1)",
            [webhook.as_str(), org.as_str()],
        )
        .expect("webhook");
        conn.execute(
            "INSERT INTO events (id, org_id, event_type, payload, delivery_count, created_at) \
             VALUES (?, ?, 'order.filled', '{}', 3, 1)",
            [event.as_str(), org.as_str()],
        )
        .expect("event");
        let deliveries: Vec<DeliveryId> = (0..3).map(|_| DeliveryId::new()).collect();
        for (delivery, (status, due)) in
            deliveries
                .iter()
                .zip([("pending", Some(5)), ("delivered", None), ("failed", None)])
        {
            conn.execute(
                "INSERT INTO deliveries (id, event_id, webhook_id, org_id, event_type, status, next_attempt_at, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, 'order.filled', ?, ?, 1, 1)",
                params![delivery.as_str(), event.as_str(), webhook.as_str(), org.as_str(), status, due],
            )
            .expect("delivery");
        }
        let attempt = "INSERT INTO attempts (id, delivery_id, attempt_number, started_at, duration_ms, \
             response_body_truncated) VALUES (?, ?, 1, 1, 1, 0)";
        conn.execute(attempt, [AttemptId::new().as_str(), deliveries[1].as_str()])
            .expect("attempt");
        let before: Vec<(i64, String, String, Option<i64>)> = conn
            .prepare("SELECT rowid, id, status, next_attempt_at FROM deliveries ORDER BY rowid")
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("deliveries");

        assert_eq!(migrate(&mut conn).expect("migrate"), MIGRATIONS.len());

        let after: Vec<(i64, String, String, Option<i64>)> = conn
            .prepare(
                "SELECT d.seq, d.id, d.status, q.due_at FROM deliveries d \
                 LEFT JOIN delivery_queue q ON q.delivery = d.seq ORDER BY d.seq",
            )
            .expect("select")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("deliveries");
        assert_eq!(after, before, "each delivery keeps its key, status and due time");
        let queued: i64 = conn
            .query_row("SELECT COUNT(*) FROM delivery_queue", [], |r| r.get(0))
            .expect("queue");
        assert_eq!(queued, 1, "only the pending delivery is queued");
        let indexes = strings(
            &conn,
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'deliveries' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        );
        assert_eq!(
            indexes,
            [
                "deliveries_by_event",
                "deliveries_by_id",
                "deliveries_by_org",
                "deliveries_by_webhook"
            ]
        );
        let attempts: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM attempts WHERE delivery_id = ?",
                [deliveries[1].as_str()],
                |r| r.get(0),
            )
            .expect("attempts");
        assert_eq!(attempts, 1);
        let keys_on: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("pragma");
        assert_eq!(keys_on, 1, "foreign keys are back on after migrating");
        assert!(
            conn.execute(
                "INSERT INTO api_keys (id, org_id, role, secret_hash, created_at) VALUES (?, ?, 'admin', x'00', 1)",
                [KeyId::new().as_str(), OrgId::new().as_str()]
            )
            .is_err(),
            "a key of no org is refused"
        );
        assert!(
            conn.execute(
                "UPDATE deliveries SET status = 'lost' WHERE id = ?",
                [deliveries[0].as_str()]
            )
            .is_err(),
            "the status is still checked"
        );
    }

    /// How many deliveries a publish of `order.filled` makes now, and the secrets the first
    /// one leased at publish was given.
    async fn publish_now(store: &SqliteStore, org: &OrgId) -> (i64, Vec<Vec<u8>>) {
        let (engine, mut handed) = EngineLeasing::new(
            64,
            Arc::new(tokio::sync::Semaphore::new(64)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let offer = LeaseOffer {
            lease_until: now_ms() + 60_000,
            engine,
        };
        let Published::Created(event) = store
            .publish(event(org, now_ms(), Some(offer)))
            .await
            .expect("publish")
        else {
            panic!("a new event");
        };
        let secrets = handed
            .try_recv()
            .ok()
            .and_then(|jobs| jobs.into_iter().next())
            .map(|job| job.secrets)
            .unwrap_or_default();
        (event.delivery_count, secrets)
    }

    #[tokio::test]
    async fn a_publish_sees_every_webhook_change_made_since_the_last_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, org, webhooks) = store_with_webhooks(&dir.path().join("herald.db")).await;
        assert_eq!(publish_now(&store, &org).await.0, 2);
        let changes = WebhookChanges {
            name: None,
            description: None,
            url: None,
            event_types: Some(Some(vec!["invoice.*".into()])),
            filter: None,
            headers_ciphertext: None,
            rate_limit: None,
            ordering: None,
            status: None,
            now: now_ms(),
        };
        store
            .update_webhook(OrgScope::Any, webhooks[0].clone(), changes)
            .await
            .expect("update");
        let (count, secrets) = publish_now(&store, &org).await;
        assert_eq!(count, 1, "the first webhook no longer subscribes to orders");
        assert_eq!(secrets, vec![vec![1, 2, 3]]);

        let rotation = SecretRotation {
            ciphertext: vec![7, 8, 9],
            last4: "wxyz".into(),
            previous_expires_at: None,
            now: now_ms(),
        };
        store
            .rotate_webhook_secret(OrgScope::Any, webhooks[1].clone(), rotation)
            .await
            .expect("rotate");
        assert_eq!(
            publish_now(&store, &org).await.1,
            vec![vec![7, 8, 9]],
            "deliveries are signed with the new secret alone"
        );

        store
            .delete_webhook(OrgScope::Any, webhooks[1].clone(), now_ms())
            .await
            .expect("delete");
        assert_eq!(
            publish_now(&store, &org).await.0,
            0,
            "nothing subscribes any more"
        );
    }

    #[tokio::test]
    async fn a_publish_leases_no_more_than_each_webhooks_cap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, org, webhooks) = store_with_webhooks(&dir.path().join("herald.db")).await;
        let wake = Arc::new(tokio::sync::Notify::new());
        let (engine, mut handed) =
            EngineLeasing::new(2, Arc::new(tokio::sync::Semaphore::new(64)), Arc::clone(&wake));
        let offer = LeaseOffer {
            lease_until: now_ms() + 60_000,
            engine,
        };
        let mut jobs = Vec::new();
        let mut leased = Vec::new();
        for _ in 0..3 {
            let published = store
                .publish(event(&org, now_ms(), Some(offer.clone())))
                .await
                .expect("publish");
            assert!(matches!(published, Published::Created(_)));
            // Handed over at the commit, before the publish is answered.
            let mut now = Vec::new();
            while let Ok(more) = handed.try_recv() {
                now.extend(more);
            }
            leased.push(now.len());
            jobs.extend(now);
        }
        assert_eq!(
            leased,
            [2, 2, 0],
            "each of the two webhooks leases two, then is full"
        );
        // The third publish's deliveries were stored due: the engine was woken to claim them.
        tokio::time::timeout(std::time::Duration::from_secs(10), wake.notified())
            .await
            .expect("the engine is woken for what was left due");
        let mut held = offer.engine.held();
        held.sort();
        let mut expected: Vec<(String, u32)> = webhooks.iter().map(|w| (w.as_str().to_owned(), 2)).collect();
        expected.sort();
        assert_eq!(held, expected);
        assert_eq!(jobs.len(), 4, "what was leased was handed to the engine");
        drop(jobs);
        assert!(offer.engine.held().is_empty(), "done jobs give their leases back");
    }

    #[tokio::test]
    async fn a_fresh_delivery_is_leased_only_behind_no_due_one() {
        let (_dir, webhooks, conn) = due_work().await;
        let webhook = webhooks[0].as_str();
        let now = now_ms() + 10;
        let may_pass = |now| fresh_may_pass_due(&conn, webhook, now).expect("due waiting");
        assert!(
            !may_pass(now),
            "six older deliveries are due: a new one waits its turn"
        );
        let mine: Vec<i64> = due_head(&conn, now)
            .expect("head")
            .into_iter()
            .filter(|(_, w)| w == webhook)
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(mine.len(), 6);
        let request = ClaimRequest {
            now,
            lease_until: now + 60_000,
            limit: 6,
            leases: leasing(64),
        };
        let jobs = lease_claims(&conn, &request, mine, &WebhookCache::unwatched()).expect("lease");
        assert_eq!(
            request.leases.held(),
            vec![(webhook.to_owned(), 6)],
            "each job claimed holds a lease"
        );
        assert!(
            may_pass(now),
            "nothing due waits any more: a new one may be leased"
        );
        assert!(
            !may_pass(now + 60_000),
            "once the leases run out their deliveries are due again, and a new one waits behind them"
        );
        assert!(
            fresh_may_pass_due(&conn, webhooks[1].as_str(), now - 60_000).expect("due waiting"),
            "the other webhook's deliveries are not due yet at that time"
        );
        drop(jobs);
        assert!(
            request.leases.held().is_empty(),
            "done jobs give their leases back"
        );
    }
}
