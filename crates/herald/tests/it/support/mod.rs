//! `TestApp`: the real service on `127.0.0.1:0` with a fresh database, and a client that
//! speaks to it the way a user's code would.
//!
//! Compiled once per backend (see `main.rs`): everything here that makes or reads a database
//! goes through `super::BACKEND`. (`postgres.rs` beside this file is declared once, at the
//! crate root, as `crate::pg_cluster`: one cluster per test process.)

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald::config::{Config, ConfigArgs};
use herald::store::Store;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod browser;
pub mod process;
pub mod publisher;
pub mod receiver;

use super::BACKEND;
use crate::Backend;
use crate::pg_cluster;

/// The master key given to Herald on PostgreSQL, which requires one. On SQLite none is given:
/// Herald generates `master.key` into the data dir, as in production.
pub const TEST_MASTER_KEY: &str = "7f3a9c1e5b2d4f6081a3c5e7092b4d6f8a1c3e5f7092b4d6e8f0a2c4e6081b3d";

/// Whether this copy of the suite can run here; used by `skip_if_backend_unavailable!()`.
pub fn backend_available() -> bool {
    match BACKEND {
        Backend::Sqlite => true,
        Backend::Postgres => pg_cluster::available(),
    }
}

/// The database that belongs to the test data dir `dir`: `dir/herald.db` on SQLite; on
/// PostgreSQL a fresh database, made on first use and remembered in `dir`, so a server
/// restarted on the same `dir` finds the same data.
pub fn database_url(dir: &Path) -> String {
    match BACKEND {
        Backend::Sqlite => format!("sqlite://{}", dir.join("herald.db").display()),
        Backend::Postgres => {
            let remembered = dir.join("postgres-database-url");
            if let Ok(url) = std::fs::read_to_string(&remembered) {
                return url;
            }
            let url = pg_cluster::fresh_database_url()
                .expect("PostgreSQL is not available: start the test with skip_if_backend_unavailable!()");
            std::fs::write(&remembered, &url).expect("remember the database");
            url
        }
    }
}

/// The `HERALD_MASTER_KEY` for this backend (`None`: Herald generates one into the data dir).
pub fn master_key() -> Option<&'static str> {
    match BACKEND {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TEST_MASTER_KEY),
    }
}

/// Everything the database of `dir` holds, as bytes, for "not stored in plain text" checks:
/// the SQLite file and its WAL; on PostgreSQL every row as `pg_dump --data-only` prints it.
pub fn stored_bytes(dir: &Path) -> Vec<u8> {
    match BACKEND {
        Backend::Sqlite => {
            let mut bytes = std::fs::read(dir.join("herald.db")).unwrap_or_default();
            bytes.extend(std::fs::read(dir.join("herald.db-wal")).unwrap_or_default());
            bytes
        }
        Backend::Postgres => pg_cluster::dump(pg_cluster::database_name(&database_url(dir))),
    }
}

/// The number the database of `dir` answers `sql` with (a count, say), for rows no route
/// shows.
pub fn query_number(dir: &Path, sql: &str) -> i64 {
    match BACKEND {
        Backend::Sqlite => {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = rusqlite::Connection::open_with_flags(dir.join("herald.db"), flags)
                .expect("open the database");
            conn.query_row(sql, [], |row| row.get(0)).expect("query")
        }
        Backend::Postgres => pg_cluster::psql(pg_cluster::database_name(&database_url(dir)), sql)
            .trim()
            .parse()
            .expect("a number"),
    }
}

/// An HTTP client for tests (the crate's TLS provider is installed first).
pub fn http_client() -> reqwest::Client {
    herald::delivery::client::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// `key_id:secret` of the admin key made on first start.
    pub admin_key: String,
    pub admin_org: String,
    /// The test's data dir (its database too on SQLite).
    pub dir: TempDir,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Settings for a test app beyond the defaults.
#[derive(Default)]
pub struct Settings {
    /// `HERALD_DEV`: http:// and loopback targets allowed.
    pub dev: bool,
    pub allow_http: bool,
    pub allowed_target_networks: Option<String>,
    pub retry_schedule: Option<String>,
    pub delivery_timeout: Option<String>,
    pub disable_after: Option<String>,
    pub max_payload_bytes: Option<usize>,
    pub catalog: Option<String>,
    pub public_url: Option<String>,
    pub max_connections: Option<usize>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub auth_failure_limit: Option<u32>,
    /// `HERALD_RETENTION`.
    pub retention: Option<String>,
    /// `HERALD_PORTAL_FRAME_ANCESTORS`.
    pub portal_frame_ancestors: Option<String>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Settings::default()).await
    }

    /// A development-mode app (loopback receivers allowed) with a fast retry schedule.
    pub async fn delivering() -> Self {
        Self::spawn_with(Settings {
            dev: true,
            retry_schedule: Some("10ms,20ms,30ms".into()),
            ..Settings::default()
        })
        .await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = database_url(dir.path());
        let catalog_path = settings.catalog.map(|text| {
            let path = dir.path().join("catalog.toml");
            std::fs::write(&path, text).expect("write catalog");
            path.display().to_string()
        });
        let config = Config::load(&ConfigArgs {
            database_url: Some(database_url.clone()),
            master_key: master_key().map(str::to_owned),
            allow_http: Some(settings.allow_http.to_string()),
            dev: Some(settings.dev.to_string()),
            allowed_target_networks: settings.allowed_target_networks,
            retry_schedule: settings.retry_schedule,
            delivery_timeout: settings.delivery_timeout,
            disable_after: settings.disable_after,
            max_payload_bytes: settings.max_payload_bytes.map(|n| n.to_string()),
            catalog: catalog_path,
            public_url: settings.public_url,
            max_connections: settings.max_connections.map(|n| n.to_string()),
            header_timeout: settings.header_timeout,
            idle_timeout: settings.idle_timeout,
            body_timeout: settings.body_timeout,
            auth_failure_limit: settings.auth_failure_limit.map(|n| n.to_string()),
            retention: settings.retention,
            portal_frame_ancestors: settings.portal_frame_ancestors,
            ..ConfigArgs::default()
        })
        .expect("test config");

        if std::env::var_os("HERALD_TEST_LOG").is_some() {
            herald::telemetry::init(&config).expect("logging");
        }
        let store = herald::open_store(&config).await.expect("open store");
        let admin = herald::accounts::bootstrap(store.as_ref())
            .await
            .expect("bootstrap")
            .expect("empty database gets an admin key");
        drop(store);

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            herald::run(config, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            client: http_client(),
            admin_key: admin.key,
            admin_org: admin.org_id.to_string(),
            dir,
            database_url,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The store the server uses, opened a second time, to look at what it keeps.
    pub async fn store(&self) -> Arc<dyn Store> {
        let config = Config::load(&ConfigArgs {
            database_url: Some(self.database_url.clone()),
            master_key: master_key().map(str::to_owned),
            ..ConfigArgs::default()
        })
        .expect("config");
        herald::open_store(&config).await.expect("open store")
    }

    /// A request authenticated with `key` (`key_id:secret`) as a Bearer token.
    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("authorization", format!("Bearer {key}"))
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(Method::GET, path, key)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::POST, path, key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.request(Method::DELETE, path, key)
            .send()
            .await
            .expect("request")
    }

    /// A new org and a key for it with `role`; returns (org id, key).
    pub async fn tenant(&self, role: &str) -> (String, String) {
        let org = self
            .post(
                "/v1/orgs",
                &self.admin_key,
                &json!({"name": format!("{role} org")}),
            )
            .await;
        let org = expect_json(org, StatusCode::CREATED).await;
        let org_id = org["id"].as_str().expect("org id").to_owned();
        let key = self
            .post(
                "/v1/keys",
                &self.admin_key,
                &json!({"org_id": org_id, "role": role}),
            )
            .await;
        let key = expect_json(key, StatusCode::CREATED).await;
        (org_id, key["key"].as_str().expect("key").to_owned())
    }

    /// Creates a webhook and returns its JSON (secret included).
    pub async fn create_webhook(&self, key: &str, body: Value) -> Value {
        let response = self.post("/v1/webhooks", key, &body).await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Publishes an event and returns the 202's JSON.
    pub async fn publish(&self, key: &str, event_type: &str, data: Value) -> Value {
        let response = self
            .post(
                "/v1/events",
                key,
                &json!({"event_type": event_type, "data": data}),
            )
            .await;
        expect_json(response, StatusCode::ACCEPTED).await
    }

    /// The delivery events of one event (there is one per webhook).
    pub async fn deliveries_of(&self, key: &str, event_id: &str) -> Vec<Value> {
        let list = expect_json(
            self.get("/v1/webhooks/events?limit=100", key).await,
            StatusCode::OK,
        )
        .await;
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|d| d["event_id"] == event_id)
            .cloned()
            .collect()
    }

    /// Polls a delivery event until `done` holds for it, and returns it.
    pub async fn wait_delivery(&self, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let delivery = expect_json(
                self.get(&format!("/v1/webhooks/events/{id}"), key).await,
                StatusCode::OK,
            )
            .await;
            if done(&delivery) {
                return delivery;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "delivery never got there: {delivery}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls until the delivery has `status`.
    pub async fn wait_status(&self, key: &str, id: &str, status: &str) -> Value {
        self.wait_delivery(key, id, |d| d["status"] == status).await
    }

    pub async fn attempts(&self, key: &str, id: &str) -> Vec<Value> {
        let list = expect_json(
            self.get(&format!("/v1/webhooks/events/{id}/attempts"), key).await,
            StatusCode::OK,
        )
        .await;
        list["data"].as_array().expect("data").clone()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the status and returns the JSON body, showing the body when the status is wrong.
/// The value of one series (`name{labels}`, as printed) in a Prometheus text page; 0 when
/// it is absent.
pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a contract error: status, `error.code`, and `error.param`.
pub async fn expect_error(response: Response, status: StatusCode, code: &str, param: Option<&str>) -> Value {
    let body = expect_json(response, status).await;
    let error = &body["error"];
    assert_eq!(error["code"], code, "error body: {body}");
    assert_eq!(error["param"].as_str(), param, "error body: {body}");
    assert!(
        error["type"].is_string() && error["message"].is_string(),
        "error body: {body}"
    );
    body
}

/// Polls a running Herald (`base` URL) until `expected` deliveries are `delivered`.
pub async fn wait_all_delivered(base: &str, key: &str, expected: usize) {
    let client = http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let mut delivered = 0;
        let mut cursor: Option<String> = None;
        loop {
            let query = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let page: Value = client
                .get(format!(
                    "{base}/v1/webhooks/events?status=delivered&limit=100{query}"
                ))
                .bearer_auth(key)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            delivered += page["data"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        if delivered == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{delivered} of {expected} delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
