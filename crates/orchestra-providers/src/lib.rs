//! Model providers for Orchestra: the clients that talk to models, their retries and backoff.
//! (An agent's model alias is resolved by the compiler, with
//! `orchestra_spec::ProviderSpec::resolve_model`.)
//!
//! - `anthropic`: the Messages API (tools, usage, stop reasons, SSE streaming);
//! - `openai`: Chat Completions; with `api_base` any compatible server (Ollama, vLLM, llama.cpp
//!   server, OpenRouter);
//! - `command`: a command-line agent, the prompt as an argument or on stdin; stdout is the
//!   answer, or (`format: claude-stream-json | codex-jsonl`) an event stream giving the answer,
//!   tokens, cost and the tool calls the agent ran itself;
//! - `scripted`: answers read from a file by agent, run and turn, for tests, demos and benchmarks.
//!
//! Every client implements [`Provider`]. One layer decides retries: HTTP clients retry 429, 5xx,
//! resets, timeouts, cut streams and unreadable answers with exponential backoff and jitter
//! (honouring `retry-after`) within a time budget per call, an unreachable server only twice;
//! other errors fail at once with the provider's message. An error the provider gave up on
//! keeps the last attempt's cause and is not for the caller to retry
//! ([`ProviderError::caller_may_retry`]). HTTP and command clients admit their requests through a
//! concurrency gate shared by every caller of the client: `max_concurrency` when configured,
//! else adaptive to the 429s the server answers (see [`RateLimited`]). API keys are read only from the environment variable the
//! configuration names, and never appear in errors or logs.

mod anthropic;
mod backoff;
mod build;
mod command;
mod error;
mod gate;
mod http;
mod openai;
mod pricing;
mod retry;
mod scripted;
mod sse;
mod transcript;
mod types;
mod wire;

use std::fmt;

pub use async_trait::async_trait;
pub use backoff::{Backoff, Jitter};
pub use build::{BuildOptions, build, build_with};
pub use error::ProviderError;
pub use gate::{RateLimitHook, RateLimited};
pub use orchestra_spec::ToolDef;
pub use pricing::{Price, price_of};
pub use retry::RetryPolicy;
pub use transcript::render_transcript;
pub use types::{
    Block, ChatRequest, ChatResponse, ExternalToolCall, Message, RequestVars, Role, StopReason,
    Usage, tool_input_error,
};

/// Receives the model's text as it arrives (the CLI's `--stream`).
pub type TextSink<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// A model provider: takes a conversation, returns the model's next turn.
///
/// Implement it with [`async_trait`] (re-exported here):
///
/// ```
/// use orchestra_providers::{async_trait, ChatRequest, ChatResponse, Provider, ProviderError,
///     StopReason, TextSink, Usage, Block};
///
/// #[derive(Debug)]
/// struct Echo;
///
/// #[async_trait]
/// impl Provider for Echo {
///     async fn chat(&self, req: &ChatRequest, _stream: Option<&TextSink<'_>>)
///         -> Result<ChatResponse, ProviderError> {
///         let last = req.messages.last().map(|m| m.text()).unwrap_or_default();
///         Ok(ChatResponse { content: vec![Block::text(last)], stop: StopReason::EndTurn,
///             usage: Usage::default(), model: req.model.to_string(), retries: 0,
///             reported_cost_usd: None, external_tool_calls: Vec::new() })
///     }
/// }
/// ```
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// Sends the conversation and returns the model's answer.
    ///
    /// When `stream` is given, text deltas are passed to it as they arrive (HTTP clients then use
    /// SSE streaming); the complete answer is returned either way. If a stream is cut and the
    /// request retried, the retried answer's text is streamed again from its start. Retries
    /// happen inside; [`ChatResponse::retries`] (or [`ProviderError::retries`]) says how many.
    async fn chat(
        &self,
        req: &ChatRequest,
        stream: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError>;
}
