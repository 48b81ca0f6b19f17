//! `TestReceiver`: a real HTTP server on loopback that records every request and answers as
//! told: a status, some headers, after a delay; per path, for the next N requests or always.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("delivery body is JSON")
    }
}

/// How to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers for the next requests, per path.
    queued: HashMap<String, VecDeque<Reply>>,
    /// The answer once the queue is empty, per path (204 when unset).
    standing: HashMap<String, Reply>,
    /// Requests answered, per path (a stalled one counts when its answer is sent).
    answered: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct TestReceiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let reply = {
        let mut inner = inner.lock().expect("lock");
        inner.received.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        let queued = inner.queued.get_mut(&path).and_then(VecDeque::pop_front);
        queued
            .or_else(|| inner.standing.get(&path).cloned())
            .unwrap_or_else(|| Reply::status(204))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    *inner.lock().expect("lock").answered.entry(path).or_default() += 1;
    let mut response = (StatusCode::from_u16(reply.status).expect("status"), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    response
}

impl TestReceiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    /// `http://localhost:PORT/path`: a hostname, so the delivery goes through the resolver.
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn ip_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer every request to `path` this way from now on.
    pub fn always(&self, path: &str, reply: Reply) {
        self.inner
            .lock()
            .expect("lock")
            .standing
            .insert(path.to_owned(), reply);
    }

    /// Answer the next `n` requests to `path` this way.
    pub fn next(&self, path: &str, n: usize, reply: Reply) {
        let mut inner = self.inner.lock().expect("lock");
        let queue = inner.queued.entry(path.to_owned()).or_default();
        for _ in 0..n {
            queue.push_back(reply.clone());
        }
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        let inner = self.inner.lock().expect("lock");
        inner
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn answered(&self, path: &str) -> usize {
        self.inner
            .lock()
            .expect("lock")
            .answered
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits (polling) until `path` has received at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} received {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
