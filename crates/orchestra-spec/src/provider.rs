//! Provider and default-model settings, shared by `orchestra.yaml` and pipeline files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::span::Spanned;
use crate::values::{Dur, SpannedMap};

/// The default provider and model alias.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    /// Provider used by agents without `provider:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Spanned<String>>,
    /// Model alias used by agents without `model:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Spanned<String>>,
}

/// Kinds of provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions, or any compatible server via `api_base`.
    Openai,
    /// A command-line agent: the prompt as an argument or on stdin, its stdout is the answer.
    Command,
    /// Answers read from a file, by agent and turn: for tests, demos and benchmarks.
    Scripted,
}

/// A model provider.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Which client to use.
    pub kind: Spanned<ProviderKind>,
    /// Environment variable holding the API key (`anthropic`, `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Base URL of the API (e.g. `http://127.0.0.1:11434/v1` for Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// Model aliases: alias -> model name.
    #[serde(default)]
    pub models: SpannedMap<String>,
    /// Maximum output tokens per model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Timeout of one request (default 10m for HTTP providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Retries of a request after 429, 5xx, a reset or a timeout (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `command`: the argv; `{{prompt}}` (a whole element) is replaced by the prompt, `{{model}}`
    /// by the model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<Vec<String>>>,
    /// `command`: send the prompt on stdin instead of as an argument.
    #[serde(default)]
    pub stdin: bool,
    /// `scripted`: the responses file (relative to the file that declares the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Spanned<String>>,
    /// `scripted`: latency added to every response, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}
