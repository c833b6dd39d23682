//! A small real HTTP/1.1 server on 127.0.0.1 for the client tests: it answers requests in order
//! with scripted replies (JSON, raw bodies, SSE streams, streams cut midway, hung connections)
//! and records every request it received.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON body with a status.
    Json(u16, Value),
    /// Any status, extra headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A complete `text/event-stream` body, written in several pieces.
    Sse(String),
    /// An event stream whose connection is closed after these bytes.
    SseCut(String),
    /// A JSON response whose connection closes before the announced `content-length`.
    Truncated(String),
    /// Read the request, then never answer.
    Hang,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// The running server; it stops when the test's runtime ends.
pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    /// Starts a server answering the n-th request with `replies[n]` (later ones get a 500).
    pub async fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(replies);
        let next = Arc::new(AtomicUsize::new(0));
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (replies, next, recorded) = (replies.clone(), next.clone(), recorded.clone());
                tokio::spawn(async move {
                    serve(sock, &replies, &next, &recorded).await;
                });
            }
        });
        Server { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: TcpStream,
    replies: &[Reply],
    next: &AtomicUsize,
    recorded: &Mutex<Vec<Recorded>>,
) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    recorded.lock().unwrap().push(req);
    let n = next.fetch_add(1, Ordering::SeqCst);
    let reply = replies.get(n).cloned().unwrap_or(Reply::Json(
        500,
        serde_json::json!({"error": {"type": "test", "message": "no more scripted replies"}}),
    ));
    match reply {
        Reply::Json(status, body) => {
            let body = body.to_string();
            write_head(
                &mut sock,
                status,
                &[("content-type", "application/json")],
                Some(body.len()),
            )
            .await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            write_head(&mut sock, status, &h, Some(body.len())).await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
        Reply::Sse(body) | Reply::SseCut(body) => {
            write_head(
                &mut sock,
                200,
                &[("content-type", "text/event-stream")],
                None,
            )
            .await;
            // Several writes with pauses, so the client sees events split across chunks.
            let bytes = body.as_bytes();
            for piece in bytes.chunks(bytes.len().div_ceil(4).max(1)) {
                let _ = sock.write_all(piece).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Reply::Truncated(body) => {
            write_head(
                &mut sock,
                200,
                &[("content-type", "application/json")],
                Some(body.len() * 2),
            )
            .await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
    let _ = sock.shutdown().await;
}

pub async fn write_head(
    sock: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    len: Option<usize>,
) {
    let mut head = format!("HTTP/1.1 {status} Status\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(len) = len {
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("\r\n");
    let _ = sock.write_all(head.as_bytes()).await;
}

pub async fn read_request(sock: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    })
}

/// An SSE body from `(event, data)` pairs.
pub fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}

/// An OpenAI-style SSE body from data chunks, ending with `[DONE]` when `done`.
pub fn data_lines(chunks: &[Value], done: bool) -> String {
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    if done {
        s.push_str("data: [DONE]\n\n");
    }
    s
}
