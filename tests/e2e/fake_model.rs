//! A fake OpenAI-compatible model server on 127.0.0.1: it answers `POST /v1/chat/completions`
//! with canned completions, in order, and keeps every request body, so a test can read what
//! the model was sent (tool results, re-asks) — the model's side of a conversation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Value, json};

/// A running fake server.
pub(crate) struct FakeModel {
    port: u16,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeModel {
    /// Serves `replies` (each a `message` of a chat completion) in order; once they run out,
    /// every further request gets a 500.
    pub(crate) fn start(replies: Vec<Value>) -> FakeModel {
        FakeModel::serve(replies, true)
    }

    /// [`FakeModel::start`] for a server that never reports token usage, like many
    /// OpenAI-compatible servers: completions come without `usage`, and a request with
    /// `stream: true` gets an event stream without a usage chunk (whatever `stream_options`
    /// asked).
    pub(crate) fn without_usage(replies: Vec<Value>) -> FakeModel {
        FakeModel::serve(replies, false)
    }

    fn serve(replies: Vec<Value>, usage: bool) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            let mut replies = replies.into_iter();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let Some(body) = read_request(&stream) else {
                    continue;
                };
                let streamed = body["stream"] == json!(true);
                seen.lock().unwrap().push(body);
                respond(stream, replies.next(), usage, streamed);
            }
        });
        FakeModel { port, requests }
    }

    /// The `api_base` to configure.
    pub(crate) fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The request bodies received so far.
    pub(crate) fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// A completion message that calls one tool (`name` as on the wire: `repo__tool`).
pub(crate) fn tool_call(id: &str, name: &str, arguments: &str) -> Value {
    json!({
        "role": "assistant", "content": null,
        "tool_calls": [{ "id": id, "type": "function",
                         "function": { "name": name, "arguments": arguments } }],
    })
}

/// A completion message with a final text.
pub(crate) fn text(content: &str) -> Value {
    json!({ "role": "assistant", "content": content })
}

fn read_request(stream: &TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn respond(mut stream: TcpStream, reply: Option<Value>, usage: bool, streamed: bool) {
    let (status, body) = match reply {
        Some(message) if streamed && !usage && message.get("tool_calls").is_none() => {
            let chunk = |delta: Value, finish: Value| {
                json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": "fake",
                       "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]})
            };
            let events = [
                chunk(
                    json!({"role": "assistant", "content": message["content"]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("stop")),
            ];
            let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}data: [DONE]\n\n"
            );
            let _ = stream.flush();
            return;
        }
        Some(message) => {
            let finish = if message.get("tool_calls").is_some() {
                "tool_calls"
            } else {
                "stop"
            };
            let mut body = json!({
                "id": "chatcmpl-test", "object": "chat.completion", "model": "fake",
                "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            });
            if usage {
                body["usage"] =
                    json!({ "prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110 });
            }
            ("200 OK", body.to_string())
        }
        None => (
            "500 Internal Server Error",
            json!({"error": {"message": "the fake model has no more replies"}}).to_string(),
        ),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
