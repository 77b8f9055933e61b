//! A hostile HTTP server on a loopback port, for the readers of answers from issuers,
//! identity providers and AWS: it streams a body without end (no `Content-Length`: the body
//! ends only when the connection does) or announces a huge one, and tells how much the
//! reader took before hanging up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the stand-in answers one path.
#[derive(Clone)]
pub enum Answer {
    /// A complete JSON body.
    Json(String),
    /// A complete body with these extra headers (an IMDSv2 token and its TTL, say).
    WithHeaders(Vec<(&'static str, &'static str)>, String),
    /// Status `.0`, then `.1` and filler for ever, without `Content-Length`.
    Endless(u16, &'static str),
    /// A `Content-Length` of `.0` bytes, then nothing: the connection stays open.
    Announces(u64),
}

/// A hostile server on a loopback port. `sent` counts the bytes of endless bodies it wrote
/// before the reader hung up; `hung_up` how many such bodies ended that way.
pub struct Hostile {
    pub url: String,
    sent: Arc<AtomicU64>,
    hung_up: Arc<AtomicU64>,
}

/// Readers refuse well before the 10 s request timeout, and without reading on for ever.
pub const PROMPT: Duration = Duration::from_secs(5);
/// What may still be in flight when the reader hangs up: the cap, the kernel's loopback
/// socket buffers (a few MiB each way) and the HTTP client's. An unbounded reader would take
/// gigabytes in 10 s.
pub const IN_FLIGHT: u64 = 32 << 20;

impl Hostile {
    /// Serves `answers(url)`, path by path (the query is ignored; other paths are 404).
    pub async fn start(answers: impl FnOnce(&str) -> Vec<(&'static str, Answer)>) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let routes: Arc<BTreeMap<&str, Answer>> = Arc::new(answers(&url).into_iter().collect());
        let (sent, hung_up) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, h) = (sent.clone(), hung_up.clone());
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(conn, routes.clone(), s.clone(), h.clone()));
            }
        });
        Hostile { url, sent, hung_up }
    }

    /// Waits (with a deadline) for the endless body to be cut off by the reader, and checks
    /// how much of it was written.
    pub async fn reader_hung_up(&self) {
        let deadline = Instant::now() + PROMPT;
        while self.hung_up.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "stint still reads the endless body after {PROMPT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = self.sent.load(Ordering::SeqCst);
        assert!(sent < IN_FLIGHT, "{sent} bytes were written before stint hung up");
    }
}

async fn serve(mut conn: TcpStream, routes: Arc<BTreeMap<&'static str, Answer>>, sent: Arc<AtomicU64>, hung_up: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
    let path = line.split(' ').nth(1).unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
    match routes.get(path.as_str()).cloned() {
        Some(Answer::Json(body)) => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
        }
        Some(Answer::WithHeaders(headers, body)) => {
            let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
            let head = format!("HTTP/1.1 200 OK\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
        }
        Some(Answer::Endless(status, prefix)) => {
            let head = format!("HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{prefix}");
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let filler = [b' '; 64 * 1024];
            while conn.write_all(&filler).await.is_ok() {
                sent.fetch_add(filler.len() as u64, Ordering::SeqCst);
            }
            hung_up.fetch_add(1, Ordering::SeqCst);
        }
        Some(Answer::Announces(len)) => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{{");
            let _ = conn.write_all(head.as_bytes()).await;
            // Keep the connection open: stint must not wait for the rest.
            let _ = conn.read(&mut buf).await;
        }
        None => {
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    }
}
