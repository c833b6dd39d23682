//! The OTLP exporter, wrapped to remember why an export failed (the SDK's batch thread only
//! logs it), so the end of a drive can say why its traces were not sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// The first export failure.
#[derive(Debug, Default)]
pub(crate) struct Failures(Mutex<Option<String>>);

impl Failures {
    fn record(&self, why: String) {
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
