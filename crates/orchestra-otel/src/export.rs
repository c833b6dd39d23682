//! The OTLP exporter and its HTTP client, wrapped to remember why an export failed (the SDK's
//! batch thread only logs it, and the exporter reduces a transport error to "network error"),
//! so the end of a drive can say why its traces were not sent: connection refused, a timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// The first export failure.
#[derive(Debug, Default)]
pub(crate) struct Failures(Mutex<Option<String>>);

impl Failures {
    pub(crate) fn record(&self, why: String) {
        if let Ok(mut first) = self.0.lock() {
            first.get_or_insert(why);
        }
    }

    /// The first failure, if any.
    pub(crate) fn first(&self) -> Option<String> {
        self.0.lock().ok().and_then(|f| f.clone())
    }
}

/// An exporter that records its failures.
#[derive(Debug)]
pub(crate) struct Reporting<E> {
    inner: E,
    failures: Arc<Failures>,
}

impl<E> Reporting<E> {
    pub(crate) fn new(inner: E, failures: Arc<Failures>) -> Self {
        Reporting { inner, failures }
    }
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            self.failures.record(e.to_string());
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// reqwest's blocking client (the SDK's batch thread has no async runtime), recording the cause
/// of a failed request with its sources.
#[derive(Debug)]
pub(crate) struct Client {
    inner: reqwest::blocking::Client,
    failures: Arc<Failures>,
}

impl Client {
    /// A client whose requests time out after `timeout`. Built on a thread of its own: reqwest's
    /// blocking client must not be made on an async runtime's thread.
    pub(crate) fn new(timeout: Duration, failures: Arc<Failures>) -> Result<Client, String> {
        let built = std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| "the thread building the HTTP client panicked".to_owned())?;
        let inner = built.map_err(|e| e.to_string())?;
        Ok(Client { inner, failures })
    }
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let sent = self.inner.send_bytes(request).await;
        match &sent {
            Err(e) => self.failures.record(chain(e.as_ref())),
            Ok(r) if !r.status().is_success() => {
                self.failures
                    .record(format!("the collector answered HTTP {}", r.status()));
            }
            Ok(_) => {}
        }
        sent
    }
}

/// An error with its sources: `error sending request ...: client error (Connect): tcp connect
/// error: Connection refused (os error 111)`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
