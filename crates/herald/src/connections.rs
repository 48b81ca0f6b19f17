//! Accepting HTTP connections, with the limits a service on the open internet needs: at most
//! `max_connections` open at once (the next ones are answered 503 and closed), a client that
//! opens a connection or starts a request's headers and then goes quiet is cut off after
//! `header_timeout`, and a keep-alive connection with no request is closed after
//! `idle_timeout`. (A request's body has its own deadline where it is read: see
//! `api::extract::read_body`.) Each request carries its peer address as axum's
//! `ConnectInfo`, for the brake on failed sign-ins.
//!
//! hyper's own header timeout starts as soon as a connection waits for a request, so it
//! cannot tell an idle keep-alive connection from a half-sent request; the watchdog here
//! keeps the two apart.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::api::error::ApiError;
use crate::telemetry::Throttle;

/// How the server treats connections; from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Connections over the limit answered at once; beyond these they are closed unanswered, so
/// a flood cannot make the answering itself unbounded.
const MAX_REFUSING: usize = 64;
/// The longest a refused connection is kept to read its request and send the 503.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);
/// The refusal warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, lets requests in
/// flight finish, closes idle connections and returns once every connection is closed.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut open = JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            () = stopping(&mut stopped) => break,
            Some(_) = open.join_next(), if !open.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                };
                metrics::counter!("herald_http_connections_total").increment(1);
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let app = app.clone();
                        let stop = stop.clone();
                        open.spawn(async move {
                            connection(stream, peer, app, limits, stop).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        refused(limits.max_connections);
                        if let Ok(turn) = Arc::clone(&refusing).try_acquire_owned() {
                            open.spawn(async move {
                                let _ = tokio::time::timeout(REFUSE_WITHIN, refuse(stream)).await;
                                drop(turn);
                            });
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    while open.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Errors of one connection (the peer gave up) are skipped; others (out of file descriptors)
/// would repeat at once, so they pause the loop, as hyper's and axum's servers do.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection: its requests, under the header and idle watchdog.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        service_fn(move |request: Request<Incoming>| {
            activity.set(Phase::Busy);
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = app.clone().oneshot(request);
            let activity = Arc::clone(&activity);
            async move {
                let response = answer.await;
                activity.set(Phase::Idle);
                response
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = watchdog(&activity, limits);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, client.address = %peer, "connection ended with an error");
                }
                return;
            }
            phase = &mut watchdog => {
                tracing::debug!(client.address = %peer, "closing a {phase} connection");
                return;
            }
            () = stopping(&mut stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection has sat too long in one phase: idle between requests, or in
/// the middle of a request's headers. A request being answered is never cut here.
async fn watchdog(activity: &Activity, limits: Limits) -> Phase {
    loop {
        let (phase, since) = activity.get();
        let limit = match phase {
            Phase::Head => limits.header_timeout,
            Phase::Idle | Phase::Busy => limits.idle_timeout,
        };
        // Busy has no deadline; an idle phase after it ends no sooner than a full idle
        // timeout from now, so that is a safe time to look again.
        let now = Instant::now();
        let deadline = match phase {
            Phase::Busy => now + limit,
            _ => since + limit,
        };
        if now >= deadline {
            return phase;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = activity.changed.notified() => {}
        }
    }
}

/// Answers a connection over the limit with the contract's 503, then closes it.
async fn refuse(stream: TcpStream) {
    let service = service_fn(|_request: Request<Incoming>| async {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "Herald has as many connections open as it allows; retry shortly",
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok::<Response<Body>, Infallible>(response)
    });
    let _ = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Counts a refused connection and warns about refusals at most once per [`WARN_EVERY`].
fn refused(max_connections: usize) {
    static WARNINGS: Throttle = Throttle::new(WARN_EVERY);
    metrics::counter!("herald_http_connections_refused_total").increment(1);
    if let Some(count) = WARNINGS.due() {
        tracing::warn!(
            connections.refused = count,
            connections.max = max_connections,
            "connection limit reached: new connections are answered 503 (HERALD_MAX_CONNECTIONS)"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request (a new connection, or keep-alive between requests).
    Idle = 0,
    /// A request's first bytes arrived; its headers are not complete.
    Head = 1,
    /// A request is being answered.
    Busy = 2,
}

/// What a connection is doing, and since when; written by its reads and its service, read by
/// its watchdog.
struct Activity {
    phase: AtomicU8,
    since_ms: AtomicU64,
    origin: Instant,
    /// Wakes the watchdog when a request's headers start, so their deadline is not slept
    /// through.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(0),
            origin: Instant::now(),
            changed: Notify::new(),
        }
    }

    fn set(&self, phase: Phase) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since_ms.store(ms, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
        // Only a request's headers have a deadline earlier than the one the watchdog sleeps
        // towards; the other changes can wait for it to wake (one wake-up per request).
        if phase == Phase::Head {
            self.changed.notify_one();
        }
    }

    fn get(&self) -> (Phase, Instant) {
        let phase = match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        };
        let since = self.origin + Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        (phase, since)
    }

    /// Bytes arrived: on an idle connection they start a request's headers.
    fn read(&self) {
        if self.phase.load(Ordering::Acquire) == Phase::Idle as u8 {
            self.set(Phase::Head);
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::Head => "half-sent",
            Self::Busy => "busy",
        })
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
