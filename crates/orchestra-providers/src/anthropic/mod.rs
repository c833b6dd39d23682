//! The Anthropic Messages API client: `POST {api_base}/v1/messages`, plain or SSE-streamed,
//! with retries.

mod body;
mod stream;

use async_trait::async_trait;
use orchestra_spec::ProviderSpec;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::error::ProviderError;
use crate::gate::Gate;
use crate::http::{DEFAULT_TIMEOUT, Http, Secret};
use crate::retry::{RetryPolicy, with_retries};
use crate::types::{ChatRequest, ChatResponse};
use crate::wire::NameMap;
use crate::{Provider, TextSink};

/// The API's base URL.
const DEFAULT_BASE: &str = "https://api.anthropic.com";
/// The API version this client speaks.
const API_VERSION: &str = "2023-06-01";

/// A client of the Messages API.
#[derive(Debug)]
pub(crate) struct Anthropic {
    http: Http,
    path: &'static str,
    auth: HeaderValue,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    /// Mark prompt-cache breakpoints (`prompt_caching`, default true).
    caching: bool,
}

impl Anthropic {
    pub fn new(
        name: &str,
        spec: &ProviderSpec,
        key: Secret,
        key_var: &str,
        retry: RetryPolicy,
        gate: Gate,
    ) -> Result<Self, ProviderError> {
        let auth = key.header(name, key_var, "")?;
        let base = spec
            .api_base
            .as_ref()
            .map_or(DEFAULT_BASE, |b| b.value.as_str());
        let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let http = Http::new(name, base, Some(key), timeout, retry, gate)?;
        // `api_base` is the host (`https://api.anthropic.com`); accept one ending in `/v1` too.
        let path = if http.base.ends_with("/v1") {
            "/messages"
        } else {
            "/v1/messages"
        };
        Ok(Anthropic {
            http,
            path,
            auth,
            max_tokens: spec.max_tokens,
            temperature: spec.temperature,
            caching: spec.prompt_caching.unwrap_or(true),
        })
    }

    async fn once(
        &self,
        body: &serde_json::Value,
        names: &NameMap,
        req: &ChatRequest,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", self.auth.clone());
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        let resp = self.http.post(self.path, headers, body).await?;
        match sink {
            Some(sink) if !Http::is_json(&resp) => {
                stream::read(&self.http, resp, names, req, sink).await
            }
            _ => {
                let parsed: body::MessageResponse = self.http.read_json(resp).await?;
                let out = parsed.into_response(&self.http, names, req);
                if let Some(sink) = sink {
                    sink(&out.text());
                }
                Ok(out)
            }
        }
    }
}

#[async_trait]
impl Provider for Anthropic {
    async fn chat(
        &self,
        req: &ChatRequest,
        stream: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let names = NameMap::for_request(req);
        let body = body::request(
            req,
            &names,
            self.max_tokens,
            self.temperature,
            stream.is_some(),
            self.caching,
        );
        with_retries(
            &self.http.retry,
            Some(&self.http.gate),
            &self.http.name,
            || self.once(&body, &names, req, stream),
        )
        .await
    }
}
