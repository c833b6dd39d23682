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

/// What a `command` provider's program prints on stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CommandFormat {
    /// Plain text: all of stdout is the answer (token counts are estimated).
    #[default]
    Text,
    /// Claude Code's `claude -p --output-format stream-json --verbose`: one JSON event per
    /// line, ending with a `result` event (answer, tokens, cost, tool calls).
    ClaudeStreamJson,
    /// Codex's `codex exec --json`: one JSON event per line (`item.completed` with the agent's
    /// messages and the commands it ran, `turn.completed` with tokens).
    CodexJsonl,
}

impl CommandFormat {
    /// The name written in YAML (`text`, `claude-stream-json`, `codex-jsonl`).
    pub fn as_str(self) -> &'static str {
        match self {
            CommandFormat::Text => "text",
            CommandFormat::ClaudeStreamJson => "claude-stream-json",
            CommandFormat::CodexJsonl => "codex-jsonl",
        }
    }
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
    pub api_base: Option<Spanned<String>>,
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
    /// Retries of one call after 5xx, a reset, a timeout or an unreadable answer (default 4 for
    /// HTTP providers, 0 for `command` and `scripted`); a server that cannot be reached at all
    /// gets at most 2. A 429 (rate limit) is retried within `retry_budget` without counting
    /// here; 0 turns the provider's retries off, 429s included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Longest time one model call may spend retrying: the waits and the attempts after the
    /// first (default 2m; waiting for `max_concurrency` or the adaptive limit does not count).
    /// No wait, `retry-after` included, goes past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<Dur>,
    /// Most requests in flight at once, shared by every agent of a run (`anthropic`, `openai`,
    /// `command`; at least 1). Without it, HTTP providers adapt: unlimited until the server
    /// answers 429, then as many as it was serving, growing back by one per round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<u32>,
    /// `anthropic`: mark the system prompt, the tool list and (in tool loops) the conversation
    /// so far as cacheable (`cache_control`), so later calls read them from the prompt cache
    /// (default true; `false` sends no `cache_control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_caching: Option<bool>,
    /// `command`: the argv; `{{prompt}}` (a whole element) is replaced by the prompt, `{{model}}`
    /// by the model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<Vec<String>>>,
    /// `command`: send the prompt on stdin instead of as an argument.
    #[serde(default)]
    pub stdin: bool,
    /// `command`: what the program prints: `text` (default; stdout is the answer),
    /// `claude-stream-json` (`claude -p --output-format stream-json --verbose`) or `codex-jsonl`
    /// (`codex exec --json`), whose events give the answer, tokens, cost and tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Spanned<CommandFormat>>,
    /// `scripted`: the responses file (relative to the file that declares the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Spanned<String>>,
    /// `scripted`: latency added to every response, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// Why `base` cannot be an `api_base`: it must be an `http://` or `https://` URL with a host
/// (a bracketed IPv6 address closed and valid) and, if given, a numeric port.
pub fn check_api_base(base: &str) -> Result<(), String> {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .ok_or("must be an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("the IPv6 address is not closed with `]`")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
        match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("expected `:PORT` after the `]`")?,
            ),
        }
    } else {
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        port
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err(format!("`{p}` is not a port number"));
    }
    Ok(())
}

impl ProviderKind {
    /// Whether agents on this kind of provider must name a model (HTTP APIs do; command-line
    /// agents and scripted answers do not).
    pub fn needs_model(self) -> bool {
        matches!(self, ProviderKind::Anthropic | ProviderKind::Openai)
    }
}

impl ProviderSpec {
    /// Resolves `requested` (an agent's `model:`, else `defaults.model`) against this
    /// provider's `models`: an alias becomes its model name, anything else is used literally.
    /// Returns the model name to send and the alias, when `requested` was one.
    ///
    /// This is the one model-alias rule: the compiler resolves every agent with it.
    pub fn resolve_model<'a>(&'a self, requested: &'a str) -> (&'a str, Option<&'a str>) {
        match self.models.get(requested) {
            Some(model) => (model.as_str(), Some(requested)),
            None => (requested, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SourceFile, parse_yaml};

    #[test]
    fn api_bases_are_http_urls_with_a_host() {
        for ok in [
            "http://127.0.0.1:11434/v1",
            "https://api.example.com",
            "http://[::1]:8080/v1",
            "http://user:pw@host:1/x",
            "http://localhost",
        ] {
            assert_eq!(check_api_base(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("ftp://host/x", "http:// or https://"),
            ("http://[::1", "not closed"),
            ("http://[zz]:1", "not an IPv6"),
            ("http://:80/v1", "no host"),
            ("http://host:99999", "not a port"),
            ("127.0.0.1:11434", "http:// or https://"),
        ] {
            let err = check_api_base(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn aliases_resolve_and_other_names_are_literal() {
        let yaml =
            "kind: anthropic\nmodels: { smart: claude-opus-4-1, worker: claude-sonnet-4-5 }\n";
        let p: ProviderSpec = parse_yaml(&SourceFile::new("p.yaml", yaml), "provider").unwrap();
        assert_eq!(p.resolve_model("smart"), ("claude-opus-4-1", Some("smart")));
        assert_eq!(
            p.resolve_model("claude-3-haiku-20240307"),
            ("claude-3-haiku-20240307", None)
        );
        assert!(ProviderKind::Openai.needs_model());
        assert!(!ProviderKind::Scripted.needs_model() && !ProviderKind::Command.needs_model());
    }
}
