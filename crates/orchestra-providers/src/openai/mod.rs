//! The OpenAI Chat Completions client: `POST {api_base}/chat/completions`, plain or streamed,
//! with retries. With `api_base` it serves any compatible server (Ollama, vLLM, llama.cpp
//! server, OpenRouter); the key is optional there.

mod body;
mod stream;

use async_trait::async_trait;
use orchestra_spec::ProviderSpec;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::error::ProviderError;
use crate::gate::Gate;
use crate::http::{DEFAULT_TIMEOUT, Http, Secret};
use crate::retry::{RetryPolicy, with_retries};
use crate::types::{ChatRequest, ChatResponse};
use crate::wire::NameMap;
use crate::{Provider, TextSink};

/// OpenAI's own API.
const DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// Which field carries the output token limit.
///
/// OpenAI's own API deprecated `max_tokens` in favour of `max_completion_tokens` and rejects the
/// old field for reasoning models, while compatible servers (Ollama, llama.cpp server, older
/// vLLM) only know `max_tokens`. So: the new field for api.openai.com, the old one elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenField {
    MaxCompletionTokens,
    MaxTokens,
}

impl TokenField {
    pub fn key(self) -> &'static str {
        match self {
            TokenField::MaxCompletionTokens => "max_completion_tokens",
            TokenField::MaxTokens => "max_tokens",
        }
    }
}

/// A Chat Completions client.
#[derive(Debug)]
pub(crate) struct OpenAi {
    http: Http,
    auth: Option<HeaderValue>,
    token_field: TokenField,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
}

impl OpenAi {
    pub fn new(
        name: &str,
        spec: &ProviderSpec,
        key: Option<(Secret, &str)>,
        retry: RetryPolicy,
        gate: Gate,
    ) -> Result<Self, ProviderError> {
        let auth = match &key {
            Some((k, var)) => Some(k.header(name, var, "Bearer ")?),
            None => None,
        };
        let base = spec
            .api_base
            .as_ref()
            .map_or(DEFAULT_BASE, |b| b.value.as_str());
        let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let http = Http::new(name, base, key.map(|(k, _)| k), timeout, retry, gate)?;
        let token_field = if http.base.starts_with("https://api.openai.com") {
            TokenField::MaxCompletionTokens
        } else {
            TokenField::MaxTokens
        };
        Ok(OpenAi {
            http,
            auth,
            token_field,
            max_tokens: spec.max_tokens,
            temperature: spec.temperature,
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
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        let resp = self.http.post("/chat/completions", headers, body).await?;
        match sink {
            Some(sink) if !Http::is_json(&resp) => {
                stream::read(&self.http, resp, names, req, sink).await
            }
            _ => {
                let parsed: body::Completion = self.http.read_json(resp).await?;
                let out = parsed.into_response(&self.http, names, req)?;
                if let Some(sink) = sink {
                    sink(&out.text());
                }
                Ok(out)
            }
        }
    }
}

#[async_trait]
impl Provider for OpenAi {
    async fn chat(
        &self,
        req: &ChatRequest,
        stream: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let names = NameMap::for_request(req);
        let body = body::request(
            req,
            &names,
            self.token_field,
            self.max_tokens,
            self.temperature,
            stream.is_some(),
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
