//! OpenTelemetry traces of Orchestra sessions. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, [`Traces::from_env`] builds an OTLP/HTTP exporter
//! (protobuf bodies, reqwest with rustls) behind the SDK's batch processor, and its
//! [`Traces::sink`] turns a drive's events into spans with the GenAI semantic conventions
//! ([`SpanSink`]). Without the variable nothing is built and nothing is sent.
//!
//! Spans are exported in the background; [`Traces::finish`] sends what is left at the end of a
//! drive, waiting at most [`Traces::wait`]. A collector that cannot be reached never fails the
//! drive: `finish` says why the traces were not all sent, for the caller to warn about.

mod config;
mod export;
mod spans;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use orchestra_runtime::EventSink;

pub use config::{Config, ConfigError, DEFAULT_SERVICE_NAME, DEFAULT_TIMEOUT};
pub use spans::SpanSink;

use export::Reporting;

/// Why traces cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The OpenTelemetry variables are wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The exporter could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
    /// Traces were not all sent.
    #[error("the traces could not all be sent to {endpoint}: {reason}")]
    Export {
        /// Where they were sent.
        endpoint: String,
        /// Why not.
        reason: String,
    },
}

/// The traces of one process's drives, exported over OTLP/HTTP.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    sink: Arc<SpanSink>,
    failures: Arc<export::Failures>,
    endpoint: String,
    wait: Duration,
}

/// The longest [`Traces::finish`] waits for the last export, whatever the export timeout.
pub const MAX_FINISH_WAIT: Duration = Duration::from_secs(5);

impl Traces {
    /// Traces to where the OpenTelemetry variables (looked up with `env`) say; `None` when
    /// they name no endpoint.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Traces>, OtelError> {
        match Config::from_env(env)? {
            Some(config) => Traces::start(&config).map(Some),
            None => Ok(None),
        }
    }

    /// Starts exporting to `config.endpoint`.
    pub fn start(config: &Config) -> Result<Traces, OtelError> {
        // reqwest is built without a TLS provider of its own: use ring, as the model clients do.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let failures = Arc::new(export::Failures::default());
        let client = export::Client::new(config.timeout, Arc::clone(&failures))
            .map_err(OtelError::Exporter)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.endpoint.as_str())
            .with_timeout(config.timeout)
            .with_headers(config.headers.clone())
            .build()
            .map_err(|e| OtelError::Exporter(e.to_string()))?;
        let exporter = Reporting::new(exporter, Arc::clone(&failures));
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("orchestra");
        Ok(Traces {
            provider,
            sink: Arc::new(SpanSink::new(tracer)),
            failures,
            endpoint: config.endpoint.to_string(),
            wait: config.timeout.min(MAX_FINISH_WAIT),
        })
    }

    /// The sink that turns a drive's events into spans.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        Arc::clone(&self.sink) as Arc<dyn EventSink>
    }

    /// The longest [`Traces::finish`] waits for the collector.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Ends the spans still open, sends what is left and shuts the exporter down (blocking
    /// for at most [`Traces::wait`]). Says why, when the traces could not all be sent.
    pub fn finish(self) -> Result<(), OtelError> {
        self.sink.close(None);
        let t0 = Instant::now();
        let shutdown = self.provider.shutdown_with_timeout(self.wait);
        let reason = match (self.failures.first(), shutdown) {
            (Some(first), _) => first,
            (None, Ok(())) => return Ok(()),
            // The SDK wraps its timeout in another error: tell it by the time it took.
            (None, Err(_)) if t0.elapsed() >= self.wait => format!(
                "the collector did not answer within {}",
                orchestra_spec::fmt_duration(self.wait)
            ),
            (None, Err(e)) => e.to_string(),
        };
        Err(OtelError::Export {
            endpoint: self.endpoint,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
