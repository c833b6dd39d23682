//! HTTP plumbing shared by the Anthropic and OpenAI clients: the reqwest client with its
//! timeouts, the API key kept out of every message, error statuses turned into
//! [`ProviderError`]s with the provider's own message, and reading bodies and stream chunks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ProviderError;
use crate::gate::Gate;
use crate::retry::{RetryPolicy, retry_after};
use crate::sse::{SseDecoder, SseEvent};
use crate::transcript::estimate_usage;
use crate::types::{Block, ChatRequest, Usage};

/// Default timeout of one HTTP request, stream included.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest error-message excerpt of a body that is not the provider's JSON error shape.
const SNIPPET: usize = 300;

/// An API key. Its `Debug` never shows the value.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// A header value marked sensitive (hidden from reqwest's and hyper's debug output).
    pub fn header(
        &self,
        provider: &str,
        var: &str,
        prefix: &str,
    ) -> Result<HeaderValue, ProviderError> {
        let mut v = HeaderValue::from_str(&format!("{prefix}{}", self.0)).map_err(|_| {
            ProviderError::Config {
                provider: provider.to_owned(),
                message: format!(
                    "the API key in `{var}` contains characters that cannot be sent in an HTTP header"
                ),
            }
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// `text` with every occurrence of the key replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A configured HTTP endpoint: reqwest client, base URL, key, timeout, retry policy and the
/// concurrency gate every caller of the client shares.
#[derive(Debug)]
pub(crate) struct Http {
    /// The provider's name, used in messages.
    pub name: String,
    /// Base URL without a trailing slash.
    pub base: String,
    /// The API key, if the provider uses one.
    pub key: Option<Secret>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Admits each attempt.
    pub gate: Gate,
    client: reqwest::Client,
    /// Whether the server was found to send no usage (told once).
    no_usage: AtomicBool,
}

impl Http {
    /// Builds the client. `connect` timeout is the request timeout capped at 30 s.
    pub fn new(
        name: &str,
        base: &str,
        key: Option<Secret>,
        timeout: Duration,
        retry: RetryPolicy,
        gate: Gate,
    ) -> Result<Self, ProviderError> {
        if let Err(why) = orchestra_spec::check_api_base(base) {
            return Err(ProviderError::Config {
                provider: name.to_owned(),
                message: format!("`api_base` `{base}` {why}"),
            });
        }
        // TLS runs on rustls with ring: it becomes the process's crypto provider unless the
        // embedding program installed one before.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("orchestra/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ProviderError::Client {
                provider: name.to_owned(),
                source,
            })?;
        Ok(Http {
            name: name.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            timeout,
            retry,
            gate,
            client,
            no_usage: AtomicBool::new(false),
        })
    }

    /// The usage the server reported, or, when it sent none (no `usage` at all, or nothing but
    /// zeros, which no real model answers with), the usage estimated from the request and the
    /// answer and marked as estimated; the first time, a warning says that this server's token
    /// counts are estimates. The Anthropic and OpenAI clients, plain and streamed, use it.
    pub fn usage_or_estimate(
        &self,
        reported: Option<Usage>,
        req: &ChatRequest,
        answer: &[Block],
    ) -> Usage {
        match reported {
            Some(u) if u != Usage::default() => u,
            _ => self.estimated_usage(req, answer),
        }
    }

    fn estimated_usage(&self, req: &ChatRequest, answer: &[Block]) -> Usage {
        if !self.no_usage.swap(true, Ordering::Relaxed) {
            tracing::warn!(provider = %self.name, "the server sends no token usage; tokens are estimated from the text (about four bytes a token)");
        }
        estimate_usage(req, answer)
    }

    /// POSTs a JSON body to `{base}{path}`; an error status becomes [`ProviderError::Status`]
    /// carrying the provider's message and `retry-after`.
    pub async fn post(
        &self,
        path: &str,
        headers: HeaderMap,
        body: &Value,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!("{}{path}", self.base);
        tracing::debug!(provider = %self.name, %url, "sending request");
        let resp = self
            .client
            .post(&url)
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport(e, &url))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let wait = retry_after(resp.headers());
        let bytes = resp.bytes().await.unwrap_or_default();
        let mut message = error_message(&bytes);
        if message.is_empty() {
            message = status.canonical_reason().unwrap_or("no message").to_owned();
        }
        Err(ProviderError::Status {
            provider: self.name.clone(),
            url: Some(self.shown_url(&url)),
            status: status.as_u16(),
            message: self.scrub(&message),
            retry_after: wait,
        })
    }

    /// Reads a whole body and parses it as `T`.
    pub async fn read_json<T: DeserializeOwned>(
        &self,
        resp: reqwest::Response,
    ) -> Result<T, ProviderError> {
        let url = resp.url().to_string();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e, &url))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.malformed(format!("{e}; the body starts with: {}", snippet(&bytes))))
    }

    /// Reads the next chunk of a streamed body into `decoder`; returns the events it completed,
    /// or `None` at the end of the body.
    pub async fn next_events(
        &self,
        resp: &mut reqwest::Response,
        decoder: &mut SseDecoder,
    ) -> Result<Option<Vec<SseEvent>>, ProviderError> {
        match resp.chunk().await {
            Ok(Some(chunk)) => Ok(Some(decoder.push(&chunk))),
            Ok(None) => Ok(None),
            Err(e) if e.is_timeout() => Err(self.timeout_error(resp.url().as_str())),
            Err(e) => Err(ProviderError::StreamCut {
                provider: self.name.clone(),
                detail: format!("the connection failed while reading ({})", e.without_url()),
            }),
        }
    }

    /// Whether the server answered a streaming request with plain JSON (some compatible servers
    /// ignore `stream: true`).
    pub fn is_json(resp: &reqwest::Response) -> bool {
        resp.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    }

    /// A [`ProviderError::Malformed`] with the key scrubbed from `detail`.
    pub fn malformed(&self, detail: impl AsRef<str>) -> ProviderError {
        ProviderError::Malformed {
            provider: self.name.clone(),
            detail: self.scrub(detail.as_ref()),
        }
    }

    /// `text` without the API key.
    pub fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.scrub(text),
            None => text.to_owned(),
        }
    }

    /// `url` as shown in messages: without user name, password, query and fragment (where
    /// credentials may hide), and without the key.
    pub fn shown_url(&self, url: &str) -> String {
        let shown = match reqwest::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            }
            Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
        };
        self.scrub(&shown)
    }

    fn timeout_error(&self, url: &str) -> ProviderError {
        ProviderError::Timeout {
            provider: self.name.clone(),
            url: self.shown_url(url),
            after: self.timeout,
        }
    }

    fn transport(&self, e: reqwest::Error, url: &str) -> ProviderError {
        if e.is_timeout() {
            self.timeout_error(url)
        } else {
            ProviderError::Connection {
                provider: self.name.clone(),
                url: self.shown_url(url),
                cause: self.scrub(&root_cause(&e)),
                source: e,
            }
        }
    }
}

/// The root cause of a transport error in a few words: "connection refused", "connection
/// reset", else the innermost error's message ("dns error: ...").
fn root_cause(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    use std::io::ErrorKind;
    let mut innermost = None;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let words = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::ConnectionReset => Some("connection reset by the server"),
                ErrorKind::ConnectionAborted => Some("connection aborted"),
                ErrorKind::TimedOut => Some("timed out"),
                ErrorKind::UnexpectedEof => Some("the server closed the connection"),
                _ => None,
            };
            if let Some(words) = words {
                return words.to_owned();
            }
        }
        innermost = Some(s);
        source = s.source();
    }
    match innermost {
        Some(s) => s.to_string(),
        // reqwest's own message names the URL with its query: not shown.
        None if e.is_connect() => "cannot connect".to_owned(),
        None => "the request could not be sent".to_owned(),
    }
}

/// The message of an error body: `{"error": {"type", "message"}}` (Anthropic, OpenAI),
/// `{"error": "..."}` (Ollama and others), `{"message": ...}`, else an excerpt of the body.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let err = v.get("error").unwrap_or(&v);
        match err {
            Value::String(s) => return s.clone(),
            Value::Object(o) => {
                let msg = o.get("message").and_then(Value::as_str);
                let kind = o
                    .get("type")
                    .and_then(Value::as_str)
                    .filter(|k| *k != "error")
                    .or_else(|| o.get("code").and_then(Value::as_str));
                match (kind, msg) {
                    (Some(k), Some(m)) => return format!("{k}: {m}"),
                    (None, Some(m)) => return m.to_owned(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    snippet(body)
}

/// The first few hundred characters of a body, on one line.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(SNIPPET)
        .collect();
    if text.trim().chars().count() > SNIPPET {
        format!("{one_line}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_documented_shapes() {
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(
            error_message(anthropic),
            "invalid_request_error: max_tokens: Field required"
        );
        let openai = br#"{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":null}}"#;
        assert_eq!(
            error_message(openai),
            "invalid_request_error: Invalid 'messages'"
        );
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            error_message(b"<html>\n502 Bad Gateway</html>"),
            "<html> 502 Bad Gateway</html>"
        );
        assert_eq!(error_message(b""), "");
        assert!(error_message(&[b'x'; 1000]).ends_with("..."));
    }

    #[test]
    fn secrets_are_scrubbed_and_hidden() {
        let s = Secret::new("sk-secret-123".into());
        assert_eq!(s.scrub("bad key sk-secret-123!"), "bad key [redacted]!");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        let h = s.header("p", "K", "Bearer ").unwrap();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("secret"));
        assert!(Secret::new("a\nb".into()).header("p", "K", "").is_err());
    }
}
