//! The PostgreSQL store, for several Herald nodes sharing one database.
//!
//! Each write is one transaction on a pooled connection, except the two hot ones: publishes
//! are grouped into multi-row batches by two writers of their own ([`publish`]), and the
//! engine's attempt records arrive in batches already ([`record`]). Due deliveries are
//! leased with `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's rows, and every
//! write that makes work due is followed by `NOTIFY herald_due` so the other nodes wake at
//! once (their slow poll is only the fallback).
//! The notification is sent after the commit, not inside it: see [`Announcer`].

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::rows::{
    self, API_KEY_COLUMNS, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, DELIVERY_FROM, EVENT_COLUMNS, ORG_COLUMNS,
    SESSION_COLUMNS, WEBHOOK_COLUMNS, event_types_json,
};
use super::*;
use crate::domain::filter::Filter;
use crate::domain::ids::{DeliveryId, EventId, KeyId, OrgId, WebhookId};
use crate::domain::time::{Millis, now_ms};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_dashboard.sql"),
    include_str!("../../migrations/postgres/0003_claim_indexes.sql"),
    include_str!("../../migrations/postgres/0004_hot_path_without_foreign_keys.sql"),
    include_str!("../../migrations/postgres/0005_leases_counted_in_memory.sql"),
    include_str!("../../migrations/postgres/0006_idempotency_per_api_key.sql"),
    include_str!("../../migrations/postgres/0007_lean_deliveries.sql"),
    include_str!("../../migrations/postgres/0008_keys_and_org_lifecycle.sql"),
    include_str!("../../migrations/postgres/0009_events_by_org.sql"),
    include_str!("../../migrations/postgres/0010_attempt_rollups.sql"),
    include_str!("../../migrations/postgres/0011_webhook_filters.sql"),
    include_str!("../../migrations/postgres/0012_webhook_headers.sql"),
    include_str!("../../migrations/postgres/0013_webhook_rate_limits.sql"),
    include_str!("../../migrations/postgres/0014_fifo_ordering.sql"),
    include_str!("../../migrations/postgres/0015_operational_events.sql"),
    include_str!("../../migrations/postgres/0016_portal_links.sql"),
];
/// A retry makes an ended delivery pending again, which retention must then keep. The purge
/// locks the events it looks at (`FOR UPDATE … SKIP LOCKED`) before it reads whether any of
/// their deliveries is pending, so a retry takes a share lock on the delivery's event first:
/// a purge that got there first finishes and the retry finds nothing (404), and a purge that
/// comes later skips the event. Without it, a retry committed between the purge's look and
/// its delete lost its delivery and left a queue row pointing nowhere. `delivery_id`.
const PURGE_GUARD_ONE: &str =
    "SELECT 1 FROM events WHERE id = (SELECT event_id FROM deliveries WHERE id = $1) FOR SHARE";
/// The same for a replay of failed deliveries: `webhook_id`, `since`, `until`.
const PURGE_GUARD_FAILED: &str = "SELECT 1 FROM events WHERE id IN (SELECT event_id FROM deliveries \
     WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3) FOR SHARE";
/// Serialises migrations and the first-start bootstrap across nodes.
const LOCK_MIGRATE: i64 = 0x6865_7261_6c64_0001;
const LOCK_BOOTSTRAP: i64 = 0x6865_7261_6c64_0002;
/// Serialises key revocations, so two nodes cannot each revoke one of the last two admin keys.
const LOCK_REVOKE: i64 = 0x6865_7261_6c64_0003;
const CHANNEL: &str = "herald_due";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // The server's own message: sqlx's rendering adds the line of PostgreSQL's C
                // source that raised it ("at line 768"), which means nothing to a user.
                let message = format!("PostgreSQL: {}", db.message());
                if code == "23505" {
                    Self::Conflict("a unique value is already taken")
                } else if code.starts_with("08")
                    || code.starts_with("57")
                    || code.starts_with("53")
                    || code == "58030"
                    || code == "25006"
                    || code == "40001"
                    || code == "40P01"
                {
                    // Connection trouble, shutdown, statement timeout, insufficient resources
                    // (a full disk, too many connections), an I/O error, a server that only
                    // reads, a serialization failure or a deadlock: each passes, and the same
                    // write succeeds afterwards.
                    Self::Unavailable(message)
                } else {
                    Self::Backend(message)
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            _ => Self::Backend(e.to_string()),
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} is malformed"))
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub statement_timeout: Duration,
}

mod publish;
mod purge;
mod record;

pub struct PostgresStore {
    pool: PgPool,
    announcer: Announcer,
    publisher: publish::Publisher,
    /// Kept by the hot writes (publishes, attempt records), read by `/readyz`.
    health: WriteHealth,
    /// The webhooks with delivery controls as claims see them, and when they were read.
    /// Read by every claim they were one more round trip each (about 8 % of the one-webhook
    /// throughput); now a change made on this node is seen by its next claim and one made on
    /// another within [`CONTROLS_TTL`]. A stale view breaks neither a limit nor an order:
    /// turns come from the database, and the unordered claim steps leave FIFO rows out by
    /// their `position`, in SQL.
    controls: std::sync::Mutex<Option<(std::time::Instant, Arc<Controls>)>>,
}

/// How old the claims' view of the webhooks' delivery controls may be.
const CONTROLS_TTL: Duration = Duration::from_millis(250);

impl PostgresStore {
    /// The webhooks with delivery controls, read again once [`CONTROLS_TTL`] old.
    async fn controls(&self, tx: &mut sqlx::PgConnection) -> Result<Arc<Controls>, StoreError> {
        let kept = || {
            self.controls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((at, controls)) = kept().as_ref()
            && at.elapsed() < CONTROLS_TTL
        {
            return Ok(Arc::clone(controls));
        }
        let rows = sqlx::query(shared_sql!(CONTROLLED))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let controls = Arc::new(Controls::from_rows(rows)?);
        *kept() = Some((std::time::Instant::now(), Arc::clone(&controls)));
        Ok(controls)
    }

    /// A webhook changed here: the next claim reads the controls again.
    fn forget_controls(&self) {
        *self
            .controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Connects and applies the embedded migrations (one node at a time).
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid HERALD_DATABASE_URL: {e}")))?
            .application_name("herald")
            .options([(
                "statement_timeout",
                settings.statement_timeout.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let announcer = Announcer::spawn(pool.connect_options().as_ref().clone());
        let publisher = publish::Publisher::spawn(pool.clone(), announcer.clone());
        let store = Self {
            pool,
            announcer,
            publisher,
            controls: std::sync::Mutex::new(None),
            health: WriteHealth::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        xact_lock(&mut tx, LOCK_MIGRATE).await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('herald_schema') IS NOT NULL")
            .fetch_one(&mut *tx)
            .await?;
        if !exists {
            sqlx::query("CREATE TABLE herald_schema (version BIGINT NOT NULL)")
                .execute(&mut *tx)
                .await?;
        }
        let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM herald_schema")
            .fetch_one(&mut *tx)
            .await?;
        let version = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "the database schema (version {version}) is newer than this Herald ({}); upgrade Herald",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO herald_schema (version) VALUES ($1)")
                .bind(i64::try_from(index + 1).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(MIGRATIONS.len())
    }

    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }
}

/// A transaction whose commit does not wait for the WAL flush, for writes a crash may lose
/// (a lease, an attempt's record, a wakeup); set in the `BEGIN`'s round trip, not one more.
async fn begin_unflushed(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    Ok(pool
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await?)
}

/// Sends `NOTIFY herald_due` after the commits that made work due, from one task, and wakes
/// this node's own engine directly.
///
/// A `NOTIFY` inside a transaction takes a database-wide lock from its pre-commit until its
/// commit is flushed, so every publishing transaction waited in line for the others' fsyncs:
/// `Lock:object` was the top wait in `pg_stat_activity` and publishes capped near 1,000/s.
/// Sent afterwards, a burst of commits shares one notification. It goes out on a connection of
/// its own whose commits do not wait for the disk (a lost notification costs a listener at
/// most its slow poll), so it is one round trip, not a transaction of three; and it carries
/// this node's token, so this node's listener does not wake its engine a second time.
#[derive(Clone)]
struct Announcer {
    poke: futures_channel::mpsc::UnboundedSender<()>,
    /// This node's engine, once [`Store::forward_wakeups`] has given it.
    local: Arc<std::sync::OnceLock<Wake>>,
    /// The payload of this node's notifications.
    token: Arc<str>,
}

impl Announcer {
    fn spawn(options: PgConnectOptions) -> Self {
        let (poke, mut pokes) = futures_channel::mpsc::unbounded();
        let token: Arc<str> = format!("{:016x}", claim_token()).into();
        let options = options.options([("synchronous_commit", "off")]);
        let payload = Arc::clone(&token);
        tokio::spawn(async move {
            let mut connection: Option<PgConnection> = None;
            while pokes.recv().await.is_ok() {
                // The pokes that came meanwhile share this notification.
                while pokes.try_recv().is_ok() {}
                if let Err(e) = Self::send(&options, &mut connection, &payload).await {
                    // Dropped: the next notification connects again.
                    connection = None;
                    tracing::warn!(error = %e, "cannot NOTIFY other nodes of due deliveries");
                }
            }
        });
        Self {
            poke,
            local: Arc::default(),
            token,
        }
    }

    /// Called once the transaction that made deliveries due has committed.
    fn due(&self) {
        if let Some(wake) = self.local.get() {
            wake();
        }
        let _ = self.poke.unbounded_send(());
    }

    /// Whether a notification came from this node (and so was already acted on).
    fn is_own(&self, payload: &str) -> bool {
        payload == &*self.token
    }

    async fn send(
        options: &PgConnectOptions,
        connection: &mut Option<PgConnection>,
        token: &str,
    ) -> Result<(), StoreError> {
        let connection = match connection {
            Some(open) => open,
            None => connection.insert(<PgConnection as sqlx::Connection>::connect_with(options).await?),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(token)
            .execute(connection)
            .await?;
        Ok(())
    }
}

/// A value bound into a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
}

fn push(builder: &mut QueryBuilder<Postgres>, arg: Arg) {
    match arg {
        Arg::Text(s) => builder.push_bind(s),
        Arg::Int(i) => builder.push_bind(i),
    };
}

/// `WHERE …` conditions of a list: a fixed `FROM … WHERE` and `(sql, value)` pairs.
struct Listing {
    from_where: &'static str,
    conditions: Vec<(&'static str, Arg)>,
}

impl Listing {
    fn clone_conditions(&self) -> Vec<(&'static str, Arg)> {
        self.conditions
            .iter()
            .map(|(sql, arg)| {
                let arg = match arg {
                    Arg::Text(s) => Arg::Text(s.clone()),
                    Arg::Int(i) => Arg::Int(*i),
                };
                (*sql, arg)
            })
            .collect()
    }

    fn builder(&self, head: &str, extra: Option<(&str, &str)>) -> QueryBuilder<Postgres> {
        let mut b = QueryBuilder::new(format!("{head} {}", self.from_where));
        for (sql, arg) in self.clone_conditions() {
            b.push(sql);
            push(&mut b, arg);
        }
        if let Some((condition, id)) = extra {
            b.push(condition);
            b.push_bind(id.to_owned());
        }
        b
    }
}

/// One page, newest first, with cursors in both directions (the rules are `PageRequest`'s).
async fn page<T>(
    pool: &PgPool,
    id_column: &str,
    columns: &str,
    listing: Listing,
    request: &PageRequest,
    map: impl Fn(&PgRow) -> Result<T, StoreError>,
    id_of: impl Fn(&T) -> &str,
) -> Result<Page<T>, StoreError> {
    let read = request.read();
    let condition = read
        .boundary
        .map(|(op, id)| (format!(" AND {id_column} {op} "), id));
    let mut b = listing.builder(
        &format!("SELECT {columns}"),
        condition.as_ref().map(|(c, id)| (c.as_str(), *id)),
    );
    b.push(format!(" ORDER BY {id_column} {} LIMIT ", read.order));
    b.push_bind(read.fetch);
    let rows = b.build().fetch_all(pool).await?;
    let items = rows.iter().map(&map).collect::<Result<Vec<T>, _>>()?;
    let draft = request.draft(items, id_of);
    let found = match &draft.probe {
        Some((op, id)) => {
            let condition = format!(" AND {id_column} {op} ");
            let mut b = listing.builder("SELECT EXISTS(SELECT 1", Some((condition.as_str(), id.as_str())));
            b.push(")");
            b.build_query_scalar().fetch_one(pool).await?
        }
        None => false,
    };
    Ok(draft.finish(found))
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(StoreError::from)
}

impl rows::Columns for PgRow {
    type Error = StoreError;

    fn text(&self, column: usize) -> Result<String, StoreError> {
        get(self, column)
    }

    fn text_opt(&self, column: usize) -> Result<Option<String>, StoreError> {
        get(self, column)
    }

    fn int(&self, column: usize) -> Result<i64, StoreError> {
        get(self, column)
    }

    fn int_opt(&self, column: usize) -> Result<Option<i64>, StoreError> {
        get(self, column)
    }

    fn bytes(&self, column: usize) -> Result<Vec<u8>, StoreError> {
        get(self, column)
    }

    fn bytes_opt(&self, column: usize) -> Result<Option<Vec<u8>>, StoreError> {
        get(self, column)
    }

    fn flag(&self, column: usize) -> Result<bool, StoreError> {
        get(self, column)
    }

    fn corrupt(&self, _column: usize, what: &str) -> StoreError {
        corrupt(what)
    }
}

/// `(id, webhook_id)` rows of due deliveries, as a claim reads them.
fn due_rows(rows: &[PgRow]) -> Result<Vec<(i64, String)>, StoreError> {
    rows.iter().map(|row| Ok((get(row, 0)?, get(row, 1)?))).collect()
}

fn org_from_row(row: &PgRow) -> Result<Org, StoreError> {
    rows::org(row)
}

fn webhook_from_row(row: &PgRow) -> Result<Webhook, StoreError> {
    rows::webhook(row)
}

fn event_from_row(row: &PgRow) -> Result<Event, StoreError> {
    rows::event(row)
}

fn delivery_from_row(row: &PgRow) -> Result<Delivery, StoreError> {
    rows::delivery(row)
}

fn attempt_from_row(row: &PgRow) -> Result<Attempt, StoreError> {
    rows::attempt(row)
}

/// `AND org_id = $n` for a scope that names an org, and in either case the org must not be
/// erased.
fn push_scope(b: &mut QueryBuilder<Postgres>, scope: &OrgScope, column: &str) {
    if let OrgScope::Org(org) = scope {
        b.push(format!(" AND {column} = "));
        b.push_bind(org.as_str().to_owned());
    }
    b.push(sql::in_live_org(column));
}

async fn live_webhook(
    conn: &mut PgConnection,
    scope: &OrgScope,
    id: &WebhookId,
    lock: bool,
) -> Result<Option<Webhook>, StoreError> {
    let mut b = QueryBuilder::new(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_at IS NULL AND id = "
    ));
    b.push_bind(id.as_str().to_owned());
    push_scope(&mut b, scope, "org_id");
    if lock {
        b.push(" FOR UPDATE");
    }
    b.build()
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(webhook_from_row)
        .transpose()
}

/// A statement of `store::sql`, numbered for PostgreSQL once per process.
macro_rules! shared_sql {
    ($name:ident) => {{
        static NUMBERED: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| crate::store::sql::numbered(crate::store::sql::$name));
        AssertSqlSafe(NUMBERED.as_str())
    }};
}
pub(crate) use shared_sql;

/// The live signing secrets of webhook `s.webhook_id`, as one array, the current one first
/// (no expiry, then the newest); `$now` is the parameter holding the time. Shared by a claim
/// and a publish that leases.
macro_rules! live_secrets {
    ($now:literal) => {
        concat!(
            "array_agg(s.ciphertext ORDER BY s.expires_at IS NOT NULL, s.seq DESC) \
             FILTER (WHERE s.expires_at IS NULL OR s.expires_at > ",
            $now,
            ")"
        )
    };
}
pub(crate) use live_secrets;

/// Holds the advisory lock `lock` until the transaction ends.
async fn xact_lock(conn: &mut PgConnection, lock: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(conn)
        .await?;
    Ok(())
}

/// An erased org's pending deliveries end `canceled` and leave the queue, so nothing of it
/// is sent again; how many.
async fn cancel_org_pending(conn: &mut PgConnection, org: &str, now: Millis) -> Result<u64, StoreError> {
    lock_queue(&mut *conn, org, true).await?;
    let n = sqlx::query(shared_sql!(CANCEL_ORG_PENDING))
        .bind(now)
        .bind(org)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query(shared_sql!(DEQUEUE_ORG))
        .bind(org)
        .execute(conn)
        .await?;
    Ok(n)
}

/// Locks a webhook's queue rows (or an org's, with `of_org`) in the order a batch of attempt
/// records locks its own: by delivery. A change to all of them (park, cancel) and a batch of
/// records then wait for each other instead of deadlocking, as they did when the change took
/// the rows in its index's order and the records in theirs (seen when a webhook was deleted
/// while its last attempts were being recorded).
async fn lock_queue(conn: &mut PgConnection, id: &str, of_org: bool) -> Result<(), StoreError> {
    let sql = if of_org {
        "SELECT 1 FROM delivery_queue WHERE webhook_id IN (SELECT id FROM webhooks WHERE org_id = $1) \
         ORDER BY delivery FOR UPDATE"
    } else {
        "SELECT 1 FROM delivery_queue WHERE webhook_id = $1 ORDER BY delivery FOR UPDATE"
    };
    sqlx::query(sql).bind(id).execute(conn).await?;
    Ok(())
}

async fn park(conn: &mut PgConnection, webhook: &WebhookId) -> Result<(), StoreError> {
    lock_queue(&mut *conn, webhook.as_str(), false).await?;
    sqlx::query(shared_sql!(PARK))
        .bind(webhook.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

async fn unpark(conn: &mut PgConnection, webhook: &WebhookId, now: Millis) -> Result<(), StoreError> {
    sqlx::query(shared_sql!(UNPARK))
        .bind(now)
        .bind(webhook.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_org(conn: &mut PgConnection, org: &Org) -> Result<(), StoreError> {
    sqlx::query(shared_sql!(INSERT_ORG))
        .bind(org.id.as_str())
        .bind(&org.name)
        .bind(org.retention_ms)
        .bind(org.created_at)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_key(conn: &mut PgConnection, key: &ApiKey) -> Result<(), StoreError> {
    sqlx::query(shared_sql!(INSERT_API_KEY))
        .bind(key.id.as_str())
        .bind(key.org_id.as_str())
        .bind(key.role.as_str())
        .bind(&key.secret_hash)
        .bind(&key.name)
        .bind(key.created_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Each FIFO webhook's head where it is due and no other node holds it: the first of its line
/// (`delivery_queue_fifo`), read unlocked (locking in that read would skip a head another
/// node holds and take the next in line), then locked if still due. A line with no head may
/// have deliveries that a publish stored as the webhook turned FIFO, with no place yet: they
/// take one (a few index probes when there are none).
async fn fifo_heads(
    tx: &mut sqlx::PgConnection,
    controls: &Controls,
    now: Millis,
) -> Result<Vec<(i64, String)>, StoreError> {
    let fifo: Vec<&str> = controls.fifo.iter().map(String::as_str).collect();
    let heads = sqlx::query(
        "SELECT w.id, q.delivery, q.due_at FROM unnest($1::text[]) AS w(id) \
         LEFT JOIN LATERAL (SELECT delivery, due_at FROM delivery_queue \
           WHERE webhook_id = w.id AND position IS NOT NULL ORDER BY position, delivery LIMIT 1) q ON true",
    )
    .bind(&fifo)
    .fetch_all(&mut *tx)
    .await?;
    let (mut due, mut unlined) = (Vec::new(), Vec::new());
    for row in &heads {
        let webhook: String = get(row, 0)?;
        match (get::<Option<i64>>(row, 1)?, get::<Option<Millis>>(row, 2)?) {
            (Some(delivery), Some(at)) if at <= now => due.push(delivery),
            (None, _) => unlined.push(webhook),
            _ => {}
        }
    }
    if !unlined.is_empty() {
        sqlx::query(
            "UPDATE delivery_queue SET position = delivery WHERE webhook_id = ANY($1) AND position IS NULL",
        )
        .bind(&unlined)
        .execute(&mut *tx)
        .await?;
    }
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let locked = sqlx::query(
        "SELECT delivery, webhook_id FROM delivery_queue WHERE delivery = ANY($1) AND due_at <= $2 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(&due)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    due_rows(&locked)
}

impl Store for PostgresStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(PING)).execute(&self.pool).await?;
            Ok(())
        })
    }

    fn writes_refused(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(self.health.recheck(async move {
            let probed = sqlx::query(shared_sql!(WRITE_PROBE))
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(StoreError::from);
            self.health.observe(&probed);
            probed
        }))
    }

    fn create_org(&self, org: Org) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            insert_org(&mut conn, &org).await
        })
    }

    fn get_org(&self, id: OrgId) -> StoreFuture<'_, Option<Org>> {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {ORG_COLUMNS} {} AND id = $1",
                sql::LIVE_ORGS
            )))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(org_from_row)
            .transpose()
        })
    }

    fn list_orgs(&self, request: PageRequest) -> StoreFuture<'_, Page<Org>> {
        Box::pin(async move {
            let listing = Listing {
                from_where: sql::LIVE_ORGS,
                conditions: Vec::new(),
            };
            page(
                &self.pool,
                "id",
                ORG_COLUMNS,
                listing,
                &request,
                org_from_row,
                |o| o.id.as_str(),
            )
            .await
        })
    }

    fn bootstrap(&self, org: Org, key: ApiKey) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            xact_lock(&mut tx, LOCK_BOOTSTRAP).await?;
            let any: bool = sqlx::query_scalar(shared_sql!(ANY_ORG))
                .fetch_one(&mut *tx)
                .await?;
            if any {
                return Ok(false);
            }
            insert_org(&mut tx, &org).await?;
            insert_key(&mut tx, &key).await?;
            sqlx::query(shared_sql!(MARK_OPERATOR_ORG))
                .bind(org.id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn create_api_key(&self, key: ApiKey) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            insert_key(&mut conn, &key).await
        })
    }

    fn get_api_key(&self, id: KeyId) -> StoreFuture<'_, Option<ApiKey>> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {API_KEY_COLUMNS} {} AND id = $1",
                sql::LIVE_KEYS
            )))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| rows::api_key(&row)).transpose()
        })
    }

    fn list_api_keys(&self, org: Option<OrgId>, request: PageRequest) -> StoreFuture<'_, Page<ApiKey>> {
        Box::pin(async move {
            let conditions = org
                .map(|org| (" AND org_id = ", Arg::Text(org.as_str().to_owned())))
                .into_iter()
                .collect();
            let listing = Listing {
                from_where: sql::LIVE_KEYS,
                conditions,
            };
            page(
                &self.pool,
                "id",
                API_KEY_COLUMNS,
                listing,
                &request,
                rows::api_key,
                |k| k.id.as_str(),
            )
            .await
        })
    }

    fn revoke_api_key(&self, id: KeyId, now: Millis) -> StoreFuture<'_, Revoke> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            xact_lock(&mut tx, LOCK_REVOKE).await?;
            let role: Option<String> = sqlx::query_scalar(shared_sql!(LIVE_KEY_ROLE))
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let others: i64 = sqlx::query_scalar(shared_sql!(OTHER_LIVE_ADMINS))
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let decision = Revoke::decide(role.as_deref().and_then(Role::parse), others);
            if decision == Revoke::Revoked {
                sqlx::query(shared_sql!(REVOKE_KEY))
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok(decision)
        })
    }

    fn touch_api_keys(&self, used: Vec<(KeyId, Millis)>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            for (id, at) in &used {
                sqlx::query(shared_sql!(TOUCH_KEY))
                    .bind(at)
                    .bind(id.as_str())
                    .bind(at - KEY_USE_RESOLUTION_MS)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    }

    fn update_org(&self, id: OrgId, changes: OrgChanges) -> StoreFuture<'_, Option<Org>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(row) = sqlx::query(AssertSqlSafe(format!(
                "SELECT {ORG_COLUMNS} {} AND id = $1 FOR UPDATE",
                sql::LIVE_ORGS
            )))
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            else {
                return Ok(None);
            };
            let mut org = org_from_row(&row)?;
            changes.apply(&mut org);
            sqlx::query(shared_sql!(UPDATE_ORG))
                .bind(&org.name)
                .bind(org.retention_ms)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(org))
        })
    }

    fn erase_org(&self, id: OrgId, now: Millis) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Under the revocation lock: erasing revokes keys too.
            xact_lock(&mut tx, LOCK_REVOKE).await?;
            let org = id.as_str();
            let erased = sqlx::query(shared_sql!(ERASE_ORG))
                .bind(now)
                .bind(org)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if erased == 0 {
                return Ok(false);
            }
            sqlx::query(shared_sql!(REVOKE_ORG_KEYS))
                .bind(now)
                .bind(org)
                .execute(&mut *tx)
                .await?;
            sqlx::query(shared_sql!(DELETE_ORG_SESSIONS))
                .bind(org)
                .bind(org)
                .execute(&mut *tx)
                .await?;
            cancel_org_pending(&mut tx, org, now).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn create_webhook(&self, new: NewWebhook) -> StoreFuture<'_, Webhook> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(shared_sql!(INSERT_WEBHOOK))
                .bind(new.id.as_str())
                .bind(new.org_id.as_str())
                .bind(&new.name)
                .bind(&new.description)
                .bind(&new.url)
                .bind(event_types_json(&new.event_types)?)
                .bind(&new.secret_last4)
                .bind(new.now)
                .bind(new.now)
                .bind(new.filter.as_ref().map(Filter::to_json_string))
                .bind(&new.headers_ciphertext)
                .bind(new.rate_limit.map(|r| i64::from(r.per_second())))
                .bind(new.ordering.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(shared_sql!(INSERT_SECRET))
                .bind(new.id.as_str())
                .bind(&new.secret_ciphertext)
                .bind(new.now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.forget_controls();
            Ok(new.into_webhook())
        })
    }

    fn list_webhooks(&self, org: OrgId, request: PageRequest) -> StoreFuture<'_, Page<Webhook>> {
        Box::pin(async move {
            let listing = Listing {
                from_where: "FROM webhooks WHERE deleted_at IS NULL",
                conditions: vec![(" AND org_id = ", Arg::Text(org.as_str().to_owned()))],
            };
            page(
                &self.pool,
                "id",
                WEBHOOK_COLUMNS,
                listing,
                &request,
                webhook_from_row,
                |w| w.id.as_str(),
            )
            .await
        })
    }

    fn get_webhook(&self, scope: OrgScope, id: WebhookId) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            live_webhook(&mut conn, &scope, &id, false).await
        })
    }

    fn update_webhook(
        &self,
        scope: OrgScope,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(mut webhook) = live_webhook(&mut tx, &scope, &id, true).await? else {
                return Ok(None);
            };
            let (was, was_ordering) = (webhook.status, webhook.ordering);
            let now = changes.now;
            changes.apply(&mut webhook);
            sqlx::query(
                "UPDATE webhooks SET name = $1, description = $2, url = $3, event_types = $4, status = $5, \
                 disabled_reason = $6, updated_at = $7, filter = $9, headers = $10, rate_limit = $11, ordering = $12, \
                 failing_since = CASE WHEN $5 = 'active' THEN NULL ELSE failing_since END WHERE id = $8",
            )
            .bind(&webhook.name)
            .bind(&webhook.description)
            .bind(&webhook.url)
            .bind(event_types_json(&webhook.event_types)?)
            .bind(webhook.status.as_str())
            .bind(&webhook.disabled_reason)
            .bind(webhook.updated_at)
            .bind(webhook.id.as_str())
            .bind(webhook.filter.as_ref().map(Filter::to_json_string))
            .bind(&webhook.headers_ciphertext)
            .bind(webhook.rate_limit.map(|r| i64::from(r.per_second())))
            .bind(webhook.ordering.as_str())
            .execute(&mut *tx)
            .await?;
            if let Some(line) = line_change(was_ordering, webhook.ordering) {
                sqlx::query(AssertSqlSafe(crate::store::sql::numbered(line)))
                    .bind(webhook.id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let unparked = match (was, webhook.status) {
                (WebhookStatus::Active, WebhookStatus::Disabled) => {
                    park(&mut tx, &webhook.id).await?;
                    false
                }
                (WebhookStatus::Disabled, WebhookStatus::Active) => {
                    unpark(&mut tx, &webhook.id, now).await?;
                    sqlx::query(shared_sql!(ANNOUNCE_ENABLED))
                        .bind(new_announcement_id())
                        .bind(now)
                        .bind(webhook.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    true
                }
                _ => false,
            };
            tx.commit().await?;
            self.forget_controls();
            if unparked {
                self.announcer.due();
            }
            Ok(Some(webhook))
        })
    }

    fn delete_webhook(&self, scope: OrgScope, id: WebhookId, now: Millis) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let mut b = QueryBuilder::new("UPDATE webhooks SET deleted_at = ");
            b.push_bind(now);
            b.push(", updated_at = ");
            b.push_bind(now);
            b.push(" WHERE deleted_at IS NULL AND id = ");
            b.push_bind(id.as_str().to_owned());
            push_scope(&mut b, &scope, "org_id");
            let changed = b.build().execute(&mut *tx).await?.rows_affected();
            if changed > 0 {
                lock_queue(&mut tx, id.as_str(), false).await?;
                sqlx::query(shared_sql!(CANCEL_PENDING))
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(shared_sql!(DEQUEUE_WEBHOOK))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(changed > 0)
        })
    }

    fn rotate_webhook_secret(
        &self,
        scope: OrgScope,
        id: WebhookId,
        rotation: SecretRotation,
    ) -> StoreFuture<'_, Option<Webhook>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(mut webhook) = live_webhook(&mut tx, &scope, &id, true).await? else {
                return Ok(None);
            };
            let now = rotation.now;
            match rotation.previous_expires_at {
                None => {
                    sqlx::query(shared_sql!(DELETE_SECRETS))
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                Some(until) => {
                    sqlx::query(shared_sql!(EXPIRE_CURRENT_SECRET))
                        .bind(until)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(shared_sql!(DELETE_EXPIRED_SECRETS))
                        .bind(id.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(shared_sql!(INSERT_SECRET))
                .bind(id.as_str())
                .bind(&rotation.ciphertext)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            webhook.secret_last4 = rotation.last4;
            webhook.updated_at = now.max(webhook.updated_at);
            sqlx::query(shared_sql!(SET_SECRET_LAST4))
                .bind(&webhook.secret_last4)
                .bind(webhook.updated_at)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(webhook))
        })
    }

    fn webhook_secrets(&self, id: WebhookId, now: Millis) -> StoreFuture<'_, Vec<StoredSecret>> {
        Box::pin(async move {
            let rows = sqlx::query(shared_sql!(LIVE_SECRETS))
                .bind(id.as_str())
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(StoredSecret {
                        ciphertext: get(row, 0)?,
                        expires_at: get(row, 1)?,
                    })
                })
                .collect()
        })
    }

    fn publish(&self, event: NewEvent) -> StoreFuture<'_, Published> {
        Box::pin(async move {
            let published = self.publisher.publish(event).await;
            self.health.observe(&published);
            published
        })
    }

    fn publish_batch(&self, events: Vec<NewEvent>) -> StoreFuture<'_, Vec<Published>> {
        Box::pin(async move {
            let published = self.publisher.publish_all(events).await;
            self.health.observe(&published);
            published
        })
    }

    fn get_event(&self, scope: OrgScope, id: EventId) -> StoreFuture<'_, Option<Event>> {
        Box::pin(async move {
            let mut b = QueryBuilder::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = "));
            b.push_bind(id.as_str().to_owned());
            push_scope(&mut b, &scope, "org_id");
            b.build()
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(event_from_row)
                .transpose()
        })
    }

    fn claim_due(&self, request: ClaimRequest) -> StoreFuture<'_, Claim> {
        Box::pin(async move {
            // A lease lost in a crash only makes the delivery due again.
            let mut tx = begin_unflushed(&self.pool).await?;
            let controls = self.controls(&mut tx).await?;
            let mut budget = ClaimBudget::of(&request, controls.limited.clone());
            let head = sqlx::query(
                // A FIFO line's rows are left out here (its head is taken below): locked with
                // the rest, a long line's waiting rows cost every claim a row lock each.
                "SELECT delivery, webhook_id FROM delivery_queue WHERE due_at <= $1 AND position IS NULL \
                 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(request.now)
            .bind(ClaimBudget::HEAD as i64)
            .fetch_all(&mut *tx)
            .await?;
            let head_full = head.len() == ClaimBudget::HEAD;
            let mut chosen = budget.take(controls.unordered(due_rows(&head)?));
            // A full head may hide more due work; a short one was all of it (but for rows
            // another node has locked, which that node leases, and a FIFO line's rows behind
            // its head).
            let more_due = head_full || chosen.len() < head.len();
            if !controls.fifo.is_empty() {
                let heads = fifo_heads(&mut tx, &controls, request.now).await?;
                chosen.extend(budget.take(heads));
            }
            if head_full && budget.remaining() > 0 {
                // Webhooks with pending deliveries, one index step each (a loose index scan), then
                // each one's oldest due rows up to its room: a full webhook's backlog is not read.
                let webhooks: Vec<String> = sqlx::query_scalar(
                    "WITH RECURSIVE hooks AS ( \
                       (SELECT webhook_id FROM delivery_queue ORDER BY webhook_id LIMIT 1) \
                       UNION ALL \
                       SELECT (SELECT q.webhook_id FROM delivery_queue q \
                               WHERE q.webhook_id > hooks.webhook_id ORDER BY q.webhook_id LIMIT 1) \
                       FROM hooks WHERE hooks.webhook_id IS NOT NULL) \
                     SELECT webhook_id FROM hooks WHERE webhook_id IS NOT NULL",
                )
                .fetch_all(&mut *tx)
                .await?;
                let (ids, rooms): (Vec<String>, Vec<i64>) = webhooks
                    .into_iter()
                    .filter(|w| !controls.fifo.contains(w))
                    .filter_map(|w| {
                        let room = budget.room(&w);
                        (room > 0).then(|| (w, i64::try_from(room).unwrap_or(i64::MAX)))
                    })
                    .unzip();
                let due = sqlx::query(
                    "SELECT q.delivery, q.webhook_id FROM unnest($1::text[], $2::bigint[]) AS w(id, room) \
                     CROSS JOIN LATERAL (SELECT delivery, webhook_id, due_at FROM delivery_queue \
                       WHERE webhook_id = w.id AND due_at <= $3 AND position IS NULL \
                       AND NOT (delivery = ANY($4)) ORDER BY due_at LIMIT w.room FOR UPDATE SKIP LOCKED) q \
                     ORDER BY q.due_at",
                )
                .bind(&ids)
                .bind(&rooms)
                .bind(request.now)
                // The head's rows are locked by this transaction, so SKIP LOCKED would not skip them.
                .bind(&chosen)
                .fetch_all(&mut *tx)
                .await?;
                chosen.extend(budget.take(due_rows(&due)?));
            }
            if chosen.is_empty() {
                tx.commit().await?;
                return Ok(Claim {
                    jobs: Vec::new(),
                    more_due,
                });
            }
            let token = claim_token();
            // Each webhook's signing secrets (the current one first) come with its rows: one
            // round trip fewer per claim than reading them after.
            let rows = sqlx::query(concat!(
                "WITH leased AS (UPDATE delivery_queue q SET due_at = $1, claim_token = $2 FROM deliveries d, webhooks w, events e \
                   WHERE q.delivery = ANY($3) AND d.seq = q.delivery AND w.id = d.webhook_id AND e.id = d.event_id \
                   RETURNING d.id, d.event_id, d.webhook_id, d.attempt_count, d.cycle_start, w.url, e.payload, d.seq, \
                     w.headers, w.rate_limit), \
                 keys AS (SELECT s.webhook_id, ",
                live_secrets!("$4"),
                " AS secrets FROM webhook_secrets s WHERE s.webhook_id IN (SELECT DISTINCT webhook_id FROM leased) \
                   GROUP BY s.webhook_id) \
                 SELECT leased.*, keys.secrets FROM leased LEFT JOIN keys ON keys.webhook_id = leased.webhook_id",
            ))
            .bind(request.lease_until)
            .bind(token)
            .bind(&chosen)
            .bind(request.now)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut secrets: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
            for row in &rows {
                let webhook: String = get(row, 2)?;
                if let std::collections::hash_map::Entry::Vacant(entry) = secrets.entry(webhook) {
                    let keys: Option<Vec<Vec<u8>>> = get(row, 10)?;
                    entry.insert(keys.unwrap_or_default());
                }
            }
            let mut jobs = Vec::with_capacity(rows.len());
            for row in &rows {
                let webhook: String = get(row, 2)?;
                let webhook_id = WebhookId::parse(&webhook).ok_or_else(|| corrupt("webhook id"))?;
                jobs.push(Claimed {
                    seq: get(row, 7)?,
                    delivery_id: DeliveryId::parse(&get::<String>(row, 0)?)
                        .ok_or_else(|| corrupt("delivery id"))?,
                    claim_token: token,
                    event_id: EventId::parse(&get::<String>(row, 1)?).ok_or_else(|| corrupt("event id"))?,
                    secrets: secrets.get(&webhook).cloned().unwrap_or_default(),
                    lease: request.leases.hold(&webhook_id),
                    webhook_id,
                    attempt_count: get(row, 3)?,
                    cycle_start: get(row, 4)?,
                    url: get(row, 5)?,
                    payload: get(row, 6)?,
                    headers: get(row, 8)?,
                    rate_limit: rows::stored_rate_limit(row, 9)?,
                });
            }
            Ok(Claim { jobs, more_due })
        })
    }

    fn next_due_at(&self) -> StoreFuture<'_, Option<Millis>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(shared_sql!(NEXT_DUE_AT))
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreFuture<'_, Vec<WebhookEffect>> {
        Box::pin(async move {
            // Bookkeeping: losing it in a crash only repeats an attempt (at-least-once), so
            // it does not wait for the WAL flush.
            let recorded = async {
                let mut tx = begin_unflushed(&self.pool).await?;
                let effects = record::write(&mut tx, &records).await?;
                tx.commit().await?;
                Ok(effects)
            }
            .await;
            self.health.observe(&recorded);
            recorded
        })
    }

    fn queue_stats(&self) -> StoreFuture<'_, QueueStats> {
        Box::pin(async move {
            let row = sqlx::query(shared_sql!(QUEUE_STATS))
                .bind(now_ms())
                .fetch_one(&self.pool)
                .await?;
            let pending: i64 = get(&row, 0)?;
            let due: i64 = get(&row, 1)?;
            Ok(QueueStats {
                pending: u64::try_from(pending).unwrap_or(0),
                due: u64::try_from(due).unwrap_or(0),
                oldest_pending_created_at: get(&row, 2)?,
            })
        })
    }

    fn forward_wakeups(&self, wake: Wake) {
        let _ = self.announcer.local.set(Arc::clone(&wake));
        let announcer = self.announcer.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(CHANNEL).await?;
                    Ok::<PgListener, sqlx::Error>(listener)
                };
                match listener.await {
                    Ok(mut listener) => {
                        backoff = Duration::from_millis(100);
                        // Anything published while we were not listening: look now.
                        wake();
                        while let Ok(notification) = listener.try_recv().await {
                            match notification {
                                Some(n) if announcer.is_own(n.payload()) => {}
                                // `None`: the connection was lost (and will be re-established).
                                _ => wake(),
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for new deliveries; retrying");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    fn reserve_turns(&self, webhook: WebhookId, span_us: i64, now_us: i64) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let end: i64 = sqlx::query_scalar(
                "INSERT INTO webhook_pacing (webhook_id, next_turn_us) VALUES ($1, $2 + $3) \
                 ON CONFLICT (webhook_id) DO UPDATE \
                 SET next_turn_us = GREATEST(webhook_pacing.next_turn_us, $2) + $3 \
                 RETURNING next_turn_us",
            )
            .bind(webhook.as_str())
            .bind(now_us)
            .bind(span_us)
            .fetch_one(&self.pool)
            .await?;
            Ok(end - span_us)
        })
    }

    fn list_deliveries(
        &self,
        filter: DeliveryFilter,
        request: PageRequest,
    ) -> StoreFuture<'_, Page<Delivery>> {
        Box::pin(async move {
            let mut conditions = Vec::new();
            if let Some(org) = &filter.org_id {
                conditions.push((" AND d.org_id = ", Arg::Text(org.as_str().to_owned())));
            }
            if let Some(event) = filter.event_id {
                conditions.push((" AND d.event_id = ", Arg::Text(event)));
            }
            if let Some(webhook) = filter.webhook_id {
                conditions.push((" AND d.webhook_id = ", Arg::Text(webhook)));
            }
            if let Some(status) = filter.status {
                conditions.push((" AND d.status = ", Arg::Text(status.as_str().to_owned())));
            }
            if let Some(event_type) = filter.event_type {
                conditions.push((" AND d.event_type = ", Arg::Text(event_type)));
            }
            if let Some(after) = filter.created_after {
                conditions.push((" AND d.created_at > ", Arg::Int(after)));
            }
            if let Some(before) = filter.created_before {
                conditions.push((" AND d.created_at < ", Arg::Int(before)));
            }
            let listing = Listing {
                from_where: concat!(rows::delivery_from!(), " WHERE TRUE"),
                conditions,
            };
            page(
                &self.pool,
                "d.id",
                DELIVERY_COLUMNS,
                listing,
                &request,
                delivery_from_row,
                |d| d.id.as_str(),
            )
            .await
        })
    }

    fn get_delivery(&self, scope: OrgScope, id: DeliveryId) -> StoreFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            let mut b = QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM} WHERE d.id = "));
            b.push_bind(id.as_str().to_owned());
            push_scope(&mut b, &scope, "d.org_id");
            b.build()
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(delivery_from_row)
                .transpose()
        })
    }

    fn list_attempts(&self, delivery: DeliveryId) -> StoreFuture<'_, Vec<Attempt>> {
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1 ORDER BY attempt_number, started_at"
            )))
            .bind(delivery.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(attempt_from_row)
            .collect()
        })
    }

    fn requeue_delivery(&self, scope: OrgScope, id: DeliveryId, now: Millis) -> StoreFuture<'_, Requeue> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // The event first, in the purge's lock order: see `PURGE_GUARD_ONE`.
            sqlx::query(PURGE_GUARD_ONE)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            // Its queue row before the delivery, in a record batch's order (see `lock_queue`):
            // a retry of a delivery whose attempt is being recorded waits for the record.
            sqlx::query(
                "SELECT 1 FROM delivery_queue WHERE delivery = (SELECT seq FROM deliveries WHERE id = $1) FOR UPDATE",
            )
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            let mut b = QueryBuilder::new(
                "SELECT d.seq, d.status, w.id, w.status FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ",
            );
            b.push_bind(id.as_str().to_owned());
            push_scope(&mut b, &scope, "d.org_id");
            b.push(" FOR UPDATE OF d");
            let Some(row) = b.build().fetch_optional(&mut *tx).await? else {
                return Ok(Requeue::NotFound);
            };
            let seq: i64 = get(&row, 0)?;
            let status: String = get(&row, 1)?;
            let webhook: String = get(&row, 2)?;
            let webhook_status: String = get(&row, 3)?;
            if status == "canceled" {
                return Ok(Requeue::Canceled);
            }
            let due = (webhook_status == "active").then_some(now);
            sqlx::query(shared_sql!(REQUEUE_DELIVERY))
                .bind(now)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            sqlx::query(shared_sql!(QUEUE_DELIVERY))
                .bind(seq)
                .bind(due)
                .bind(webhook)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.announcer.due();
            Ok(Requeue::Queued)
        })
    }

    fn replay_failed(
        &self,
        scope: OrgScope,
        webhook: WebhookId,
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(found) = live_webhook(&mut tx, &scope, &webhook, false).await? else {
                return Ok(None);
            };
            let due = (found.status == WebhookStatus::Active).then_some(now);
            sqlx::query(PURGE_GUARD_FAILED)
                .bind(webhook.as_str())
                .bind(since)
                .bind(until)
                .execute(&mut *tx)
                .await?;
            sqlx::query(shared_sql!(QUEUE_FAILED))
                .bind(due)
                .bind(webhook.as_str())
                .bind(webhook.as_str())
                .bind(webhook.as_str())
                .bind(since)
                .bind(until)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(shared_sql!(REPLAY_FAILED))
                .bind(now)
                .bind(webhook.as_str())
                .bind(since)
                .bind(until)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            if n > 0 {
                self.announcer.due();
            }
            Ok(Some(n))
        })
    }

    fn claim_idempotency_key(&self, request: IdempotencyRequest) -> StoreFuture<'_, IdempotencyClaim> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (key_id, key, fingerprint, status, body, created_at) \
                 VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (key_id, key) DO NOTHING",
            )
            .bind(request.key_id.as_str())
            .bind(&request.key)
            .bind(&request.fingerprint)
            .bind(request.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted > 0 {
                tx.commit().await?;
                return Ok(IdempotencyClaim::Claimed);
            }
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency_keys WHERE key_id = $1 AND key = $2 FOR UPDATE"
            )))
            .bind(request.key_id.as_str())
            .bind(&request.key)
            .fetch_one(&mut *tx)
            .await?;
            let record = IdempotencyRecord {
                fingerprint: get(&row, 0)?,
                status: get(&row, 1)?,
                body: get(&row, 2)?,
                created_at: get(&row, 3)?,
            };
            if !request.may_take(&record) {
                tx.commit().await?;
                return Ok(record.into());
            }
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $1, status = NULL, body = NULL, created_at = $2 \
                 WHERE key_id = $3 AND key = $4",
            )
            .bind(&request.fingerprint)
            .bind(request.now)
            .bind(request.key_id.as_str())
            .bind(&request.key)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(IdempotencyClaim::Claimed)
        })
    }

    fn complete_idempotency_key(
        &self,
        caller: KeyId,
        key: String,
        response: StoredResponse,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(COMPLETE_IDEMPOTENCY_KEY))
                .bind(i64::from(response.status))
                .bind(&response.body)
                .bind(caller.as_str())
                .bind(&key)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn release_idempotency_key(&self, caller: KeyId, key: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(RELEASE_IDEMPOTENCY_KEY))
                .bind(caller.as_str())
                .bind(&key)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn purge_idempotency_keys(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(sqlx::query(shared_sql!(PURGE_IDEMPOTENCY_KEYS))
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected())
        })
    }

    fn create_session(&self, session: Session) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(INSERT_SESSION))
                .bind(&session.token_hash)
                .bind(session.key_id.as_str())
                .bind(session.org_id.as_str())
                .bind(session.created_at)
                .bind(session.expires_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn get_session(&self, token_hash: Vec<u8>, now: Millis) -> StoreFuture<'_, Option<Session>> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM dashboard_sessions WHERE token_hash = $1 AND expires_at > $2"
            )))
            .bind(&token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| rows::session(token_hash.clone(), &row)).transpose()
        })
    }

    fn set_session_org(&self, token_hash: Vec<u8>, org: OrgId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(SET_SESSION_ORG))
                .bind(org.as_str())
                .bind(&token_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn delete_session(&self, token_hash: Vec<u8>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(DELETE_SESSION))
                .bind(&token_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn purge_sessions(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let sessions = sqlx::query(shared_sql!(PURGE_SESSIONS))
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
            let links = sqlx::query(shared_sql!(PURGE_PORTAL_LINKS))
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(sessions + links)
        })
    }

    fn create_portal_link(&self, link: PortalLink) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(INSERT_PORTAL_LINK))
                .bind(&link.token_hash)
                .bind(link.org_id.as_str())
                .bind(link.read_only)
                .bind(&link.theme)
                .bind(link.created_at)
                .bind(link.expires_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn get_portal_link(&self, token_hash: Vec<u8>, now: Millis) -> StoreFuture<'_, Option<PortalLink>> {
        Box::pin(async move {
            let row = sqlx::query(shared_sql!(PORTAL_LINK))
                .bind(&token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| rows::portal_link(token_hash.clone(), &row))
                .transpose()
        })
    }

    fn org_lifecycles(&self) -> StoreFuture<'_, Vec<OrgLifecycle>> {
        Box::pin(async move {
            sqlx::query(shared_sql!(ORG_LIFECYCLES))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::org_lifecycle)
                .collect()
        })
    }

    fn purge_events(&self, step: PurgeStep) -> StoreFuture<'_, Purged> {
        Box::pin(async move { purge::purge(&self.pool, &step).await })
    }

    fn cancel_org_deliveries(&self, org: OrgId, now: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let n = cancel_org_pending(&mut tx, org.as_str(), now).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    fn forget_org(&self, org: OrgId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            static FORGET: std::sync::LazyLock<Vec<String>> =
                std::sync::LazyLock::new(|| sql::FORGET_ORG.iter().map(|s| sql::numbered(s)).collect());
            let mut tx = self.pool.begin().await?;
            for statement in FORGET.iter() {
                sqlx::query(AssertSqlSafe(statement.as_str()))
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn announcements(&self, limit: u32) -> StoreFuture<'_, Vec<Announcement>> {
        Box::pin(async move {
            sqlx::query(shared_sql!(ANNOUNCEMENTS))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::announcement)
                .collect()
        })
    }

    fn forget_announcement(&self, id: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(shared_sql!(FORGET_ANNOUNCEMENT))
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn operator_org(&self) -> StoreFuture<'_, Option<OrgId>> {
        Box::pin(async move {
            let id: Option<String> = sqlx::query_scalar(shared_sql!(OPERATOR_ORG))
                .fetch_optional(&self.pool)
                .await?;
            Ok(id.as_deref().and_then(OrgId::parse))
        })
    }

    fn purge_rollups(&self, before: Millis) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            static PURGE: std::sync::LazyLock<Vec<String>> =
                std::sync::LazyLock::new(|| sql::PURGE_ROLLUPS.iter().map(|s| sql::numbered(s)).collect());
            let mut n = 0;
            for statement in PURGE.iter() {
                n += sqlx::query(AssertSqlSafe(statement.as_str()))
                    .bind(rollup::minute_of(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            }
            Ok(n)
        })
    }

    fn attempt_counts(&self, query: StatsQuery) -> StoreFuture<'_, Vec<AttemptCount>> {
        Box::pin(async move {
            static COUNTS: std::sync::LazyLock<[[String; 2]; 2]> = std::sync::LazyLock::new(|| {
                [sql::ATTEMPT_COUNTS, sql::WEBHOOK_ATTEMPT_COUNTS].map(|s| s.map(sql::numbered))
            });
            let table = rollup::Resolution::for_buckets(query.since, query.bucket_ms) as usize;
            let statement = &COUNTS[usize::from(query.webhook_id.is_some())][table];
            let mut q = sqlx::query(AssertSqlSafe(statement.as_str()))
                .bind(query.since)
                .bind(query.bucket_ms.max(1))
                .bind(query.org_id.as_str().to_owned())
                .bind(rollup::first_minute(query.since));
            if let Some(webhook) = &query.webhook_id {
                q = q.bind(webhook.as_str().to_owned());
            }
            q.fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(AttemptCount {
                        bucket: get(row, 0)?,
                        outcome: AttemptOutcome::from_code(get(row, 1)?),
                        latency_class: usize::try_from(get::<i64>(row, 2)?).unwrap_or(0),
                        count: u64::try_from(get::<i64>(row, 3)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    fn webhook_health(
        &self,
        org: OrgId,
        since: Millis,
    ) -> StoreFuture<'_, HashMap<WebhookId, WebhookHealth>> {
        Box::pin(async move {
            let ended = sqlx::query(
                "SELECT m.webhook_id, SUM(m.delivered)::bigint, SUM(m.failed)::bigint, MAX(m.last_attempt_at), \
                 (array_agg(m.last_response_status ORDER BY m.last_attempt_at DESC))[1], \
                 (array_agg(m.last_error ORDER BY m.last_attempt_at DESC))[1] \
                 FROM webhooks w JOIN webhook_minutes m ON m.webhook_id = w.id \
                 WHERE w.org_id = $1 AND m.minute >= $2 GROUP BY m.webhook_id",
            )
            .bind(org.as_str())
            .bind(rollup::first_minute(since))
            .fetch_all(&self.pool)
            .await?;
            let webhook_id =
                |row: &PgRow| WebhookId::parse(&get::<String>(row, 0)?).ok_or_else(|| corrupt("webhook id"));
            let mut health = HashMap::new();
            for row in &ended {
                health.insert(
                    webhook_id(row)?,
                    WebhookHealth {
                        delivered: u64::try_from(get::<i64>(row, 1)?).unwrap_or(0),
                        failed: u64::try_from(get::<i64>(row, 2)?).unwrap_or(0),
                        pending: 0,
                        last_attempt_at: get(row, 3)?,
                        last_response_status: get(row, 4)?,
                        last_error: rows::error_class(row, 5)?,
                    },
                );
            }
            let pending = sqlx::query(shared_sql!(PENDING_BY_WEBHOOK))
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?;
            for row in &pending {
                health.entry(webhook_id(row)?).or_default().pending =
                    u64::try_from(get::<i64>(row, 1)?).unwrap_or(0);
            }
            Ok(health)
        })
    }
}
