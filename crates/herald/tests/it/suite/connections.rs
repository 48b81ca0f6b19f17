//! Connections, with real sockets on loopback: a client that sends nothing, half a request's
//! headers or half its body is cut off, and no more than `HERALD_MAX_CONNECTIONS` are open.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::support::{Settings, TestApp, expect_error, http_client};

/// Reads until the server closes the connection and returns what it sent. Fails the test if
/// the connection is still open after a minute (the timeouts under test are far shorter).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => {}
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!("the server kept the connection open"),
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        idle_timeout: Some("300ms".into()),
        ..Settings::default()
    })
    .await;
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    assert_eq!(
        read_until_closed(&mut silent).await,
        "",
        "closed without an answer"
    );

    // A keep-alive connection is closed the same way once its request is answered.
    let mut kept = TcpStream::connect(app.addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .expect("write");
    let answered = read_until_closed(&mut kept).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        header_timeout: Some("300ms".into()),
        ..Settings::default()
    })
    .await;
    let mut slow = TcpStream::connect(app.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: ")
        .await
        .expect("write");
    let answered = read_until_closed(&mut slow).await;
    assert!(!answered.contains("200 OK"), "{answered}");
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_in_the_contracts_shape() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        body_timeout: Some("300ms".into()),
        ..Settings::default()
    })
    .await;
    let mut stalled = TcpStream::connect(app.addr).await.expect("connect");
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_type\":",
        app.admin_key
    );
    stalled.write_all(request.as_bytes()).await.expect("write");
    let answered = read_until_closed(&mut stalled).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    let body = answered.split("\r\n\r\n").nth(1).expect("a body");
    let error: Value = serde_json::from_str(body).expect("a JSON error body");
    assert_eq!(error["error"]["code"], "request_timeout", "{answered}");
    assert!(error["error"]["message"].is_string());
}

#[tokio::test]
async fn connections_over_the_limit_are_answered_503_until_one_closes() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        max_connections: Some(2),
        ..Settings::default()
    })
    .await;
    // Two open connections, each having made a request so the server holds them.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }

    let refused = http_client()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    expect_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        None,
    )
    .await;

    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = http_client()
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("answered");
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the freed slot was never reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
