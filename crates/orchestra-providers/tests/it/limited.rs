//! A real local Chat Completions server with a rate limit: every answer takes a fixed latency,
//! and a request arriving while `limit` others are being served gets HTTP 429 (with or without
//! `retry-after`). It may lower its limit mid-run, and records what it saw. It runs on a thread
//! of its own, as a separate server process would, so its answers do not wait for the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::server::{read_request, write_head};

/// One request as the server saw it.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// Requests being served when it arrived, itself included (refused or not).
    pub offered: usize,
    /// Whether it was refused.
    pub refused: bool,
    /// How many requests had been answered successfully before it arrived.
    pub ok_before: usize,
}

#[derive(Debug)]
struct Shared {
    limit: AtomicUsize,
    /// After this many successful answers, the limit becomes the second number.
    lower_after: Option<(usize, usize)>,
    in_flight: AtomicUsize,
    ok: AtomicUsize,
    arrivals: Mutex<Vec<Arrival>>,
}

/// The running server; it stops when dropped.
pub struct Limited {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Limited {
    /// Serves with `latency` per answer, at most `limit` in flight; a refusal carries
    /// `retry-after: {retry_after}` when given.
    pub fn start(limit: usize, latency: Duration, retry_after: Option<&str>) -> Limited {
        Limited::lowering(limit, latency, retry_after, None)
    }

    /// [`Limited::start`], and once `lower_after.0` answers were given the limit becomes
    /// `lower_after.1`.
    pub fn lowering(
        limit: usize,
        latency: Duration,
        retry_after: Option<&str>,
        lower_after: Option<(usize, usize)>,
    ) -> Limited {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            limit: AtomicUsize::new(limit),
            lower_after,
            in_flight: AtomicUsize::new(0),
            ok: AtomicUsize::new(0),
            arrivals: Mutex::new(Vec::new()),
        });
        let retry_after = retry_after.map(str::to_owned);
        let s = shared.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = &mut stopped => return,
                };
                let Ok((mut sock, _)) = accepted else {
                    return;
                };
                let (s, retry_after) = (s.clone(), retry_after.clone());
                tokio::spawn(async move {
                    if read_request(&mut sock).await.is_none() {
                        return;
                    }
                    let offered = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    let refused = offered > s.limit.load(Ordering::SeqCst);
                    s.arrivals.lock().unwrap().push(Arrival {
                        offered,
                        refused,
                        ok_before: s.ok.load(Ordering::SeqCst),
                    });
                    if refused {
                        s.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let body = json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}).to_string();
                        let mut headers = vec![("content-type", "application/json")];
                        if let Some(r) = &retry_after {
                            headers.push(("retry-after", r.as_str()));
                        }
                        write_head(&mut sock, 429, &headers, Some(body.len())).await;
                        let _ = sock.write_all(body.as_bytes()).await;
                    } else {
                        tokio::time::sleep(latency).await;
                        // Like real servers: the slot is free before the answer is read.
                        s.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let ok = s.ok.fetch_add(1, Ordering::SeqCst) + 1;
                        if let Some((after, lower)) = s.lower_after
                            && ok == after
                        {
                            s.limit.store(lower, Ordering::SeqCst);
                        }
                        let body = completion().to_string();
                        write_head(
                            &mut sock,
                            200,
                            &[("content-type", "application/json")],
                            Some(body.len()),
                        )
                        .await;
                        let _ = sock.write_all(body.as_bytes()).await;
                    }
                    let _ = sock.shutdown().await;
                });
            }
        };
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(serve);
        });
        Limited {
            addr,
            shared,
            _stop: stop,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.lock().unwrap().clone()
    }
}

fn completion() -> serde_json::Value {
    json!({
        "id": "chatcmpl-l", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    })
}
