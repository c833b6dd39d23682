//! Provider-neutral conversation types: what the runtime sends to a model, what comes back, and
//! what it stores between turns.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::path::Path;
use std::sync::Arc;

use orchestra_spec::ToolDef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user (or the harness: task text, tool results).
    User,
    /// The model.
    Assistant,
}

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool to be run.
    ///
    /// `input` is the JSON object of arguments. When the model produced arguments that are not
    /// valid JSON, `input` is a JSON *string* holding the raw text; [`tool_input_error`] explains
    /// what is wrong so the harness can answer with a tool error instead of running the tool.
    ToolUse {
        /// The call's id, echoed by the matching [`Block::ToolResult`].
        id: String,
        /// Our tool name, e.g. `app:read-file` (providers map it to and from their wire form).
        name: String,
        /// The arguments.
        input: Value,
    },
    /// The result of running a tool, sent back in a user message.
    ToolResult {
        /// The id of the [`Block::ToolUse`] this answers.
        tool_use_id: String,
        /// The tool's output (or error text).
        content: String,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

impl Block {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text { text: text.into() }
    }
}

/// Why the arguments of a tool call cannot be used, or `None` when they are a JSON object.
///
/// Providers never fail a whole response because one tool call carries broken arguments (that
/// would lose the rest of the turn); they keep the raw text as a JSON string instead, and the
/// harness turns this message into a tool error for the model.
pub fn tool_input_error(input: &Value) -> Option<String> {
    match input {
        Value::Object(_) => None,
        Value::String(raw) => {
            let reason = match serde_json::from_str::<Value>(raw) {
                Err(e) => e.to_string(),
                Ok(_) => "they are not a JSON object".to_owned(),
            };
            let shown: String = raw.chars().take(200).collect();
            let more = if raw.chars().count() > 200 { "..." } else { "" };
            Some(format!(
                "the tool arguments are not a valid JSON object ({reason}); they were: {shown}{more}"
            ))
        }
        other => Some(format!(
            "the tool arguments must be a JSON object, not {}",
            json_kind(other)
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A message of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: Vec<Block>,
}

impl Message {
    /// A user message with one text block.
    pub fn user(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![Block::text(text)],
        }
    }

    /// An assistant message made of `content`.
    pub fn assistant(content: Vec<Block>) -> Self {
        Message {
            role: Role::Assistant,
            content,
        }
    }

    /// The text blocks joined together.
    pub fn text(&self) -> String {
        join_text(&self.content)
    }
}

pub(crate) fn join_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        if let Block::Text { text } = b {
            out.push_str(text);
        }
    }
    out
}

/// One model call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The agent making the call (the scripted provider answers by agent). Shared, like the
    /// model and the system prompt: one request is held for every agent waiting on a model.
    pub agent: Arc<str>,
    /// How many times this agent already ran in the session (0 for the first run).
    pub run_index: u32,
    /// The model name (already resolved from its alias).
    pub model: Arc<str>,
    /// The system prompt; empty for none.
    pub system: Arc<str>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<ToolDef>,
    /// Output token limit; `None` uses the provider's `max_tokens` setting.
    pub max_tokens: Option<u32>,
    /// Sampling temperature; `None` uses the provider's `temperature` setting.
    pub temperature: Option<f64>,
    /// Where a command-line agent runs for this call (the worktree of the repository the agent
    /// writes); `None` uses the provider's own directory. HTTP providers ignore it.
    #[serde(skip)]
    pub workdir: Option<Arc<Path>>,
    /// What templates in scripted answers see of the run. Never sent to a model, never stored.
    #[serde(skip)]
    pub vars: RequestVars,
}

/// The run a request belongs to, as templates see it: shared with the run, never copied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestVars {
    /// The session's inputs.
    pub inputs: Arc<serde_json::Map<String, Value>>,
    /// The session's state as of the last checkpoint.
    pub state: Arc<serde_json::Map<String, Value>>,
}

impl ChatRequest {
    /// The number of assistant turns already in the conversation.
    pub fn assistant_turns(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count()
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tools to be run.
    ToolUse,
    /// It hit the output token limit.
    MaxTokens,
    /// It produced a stop sequence.
    StopSequence,
    /// Something else, as the provider named it.
    Other(String),
}

impl StopReason {
    /// The snake_case name (`end_turn`, `tool_use`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::Other(s) => s,
        }
    }
}

impl From<String> for StopReason {
    fn from(s: String) -> Self {
        match s.as_str() {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            _ => StopReason::Other(s),
        }
    }
}

impl From<StopReason> for String {
    fn from(s: StopReason) -> Self {
        s.as_str().to_owned()
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tokens used by a call.
///
/// The convention, the same for every provider: `input_tokens` counts *every* prompt token,
/// cached or not, and `cache_read_tokens` / `cache_write_tokens` say how many of those were read
/// from or written to the provider's prompt cache (they are parts of `input_tokens`, never in
/// addition to it). So `input_tokens + output_tokens` is what `limits.max_tokens` counts, and
/// `input_tokens - cache_read_tokens - cache_write_tokens` is what was billed at the plain input
/// price. Providers differ on the wire: Anthropic's `input_tokens` *excludes* its
/// `cache_read_input_tokens` and `cache_creation_input_tokens` (the client adds them in);
/// OpenAI's `prompt_tokens` *includes* `prompt_tokens_details.cached_tokens` (a read; OpenAI
/// reports no cache writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, including those read from or written to the prompt cache.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Whether the figures are estimated from the text (about four bytes a token) because the
    /// provider reported none: command-line agents, scripted answers without `usage`, servers
    /// that send no usage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    /// Prompt tokens read from the prompt cache (a part of `input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the prompt cache (a part of `input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Prompt tokens neither read from nor written to the cache (billed at the input price).
    pub fn uncached_input(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cache_read_tokens)
            .saturating_sub(self.cache_write_tokens)
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, rhs: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(rhs.input_tokens),
            output_tokens: self.output_tokens.saturating_add(rhs.output_tokens),
            estimated: self.estimated || rhs.estimated,
            cache_read_tokens: self.cache_read_tokens.saturating_add(rhs.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(rhs.cache_write_tokens),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        *self = *self + rhs;
    }
}

/// A model's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text and tool calls, in the order the model produced them.
    pub content: Vec<Block>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Tokens used.
    pub usage: Usage,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// How many times the request was retried before this answer.
    pub retries: u32,
    /// The cost in USD the provider itself reported for this call (a command-line agent's
    /// `total_cost_usd`), when it did; preferred over a price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_cost_usd: Option<f64>,
    /// Tool calls a command-line agent made and already ran itself, in order. They are
    /// reported, never run again by the harness (unlike [`Block::ToolUse`] blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_tool_calls: Vec<ExternalToolCall>,
}

/// A tool call a command-line agent made and ran itself, as its event stream reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExternalToolCall {
    /// The agent's id of the call (`toolu_...`, `item_1`).
    pub id: String,
    /// The tool: the agent's own name for it (`Bash`, `Edit`, `command_execution`, or
    /// `SERVER:TOOL` for an MCP tool of Codex).
    pub name: String,
    /// Its arguments as the agent reported them.
    pub input: Value,
    /// What it returned (or its error text); `None` when the stream reported no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Whether it failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ChatResponse {
    /// The text blocks joined together.
    pub fn text(&self) -> String {
        join_text(&self.content)
    }

    /// The tool calls: id, name, input.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }

    /// The answer as an assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::assistant(self.content.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_serialize_with_a_type_tag() {
        let m = Message {
            role: Role::Assistant,
            content: vec![
                Block::text("hi"),
                Block::ToolUse {
                    id: "c1".into(),
                    name: "app:read-file".into(),
                    input: json!({"path": "a"}),
                },
            ],
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!({"role": "assistant", "content": [
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "c1", "name": "app:read-file", "input": {"path": "a"}}
            ]})
        );
        let back: Message = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn stop_reason_round_trips_through_strings() {
        for s in [
            "end_turn",
            "tool_use",
            "max_tokens",
            "stop_sequence",
            "refusal",
        ] {
            let r = StopReason::from(s.to_owned());
            assert_eq!(serde_json::to_value(&r).unwrap(), json!(s));
        }
        assert_eq!(
            StopReason::from("refusal".to_owned()),
            StopReason::Other("refusal".into())
        );
    }

    #[test]
    fn usage_adds_every_count_and_keeps_cache_tokens_inside_input() {
        let a = Usage {
            input_tokens: 100,
            output_tokens: 10,
            cache_read_tokens: 60,
            cache_write_tokens: 30,
            ..Usage::default()
        };
        let mut b = Usage {
            input_tokens: 5,
            output_tokens: 1,
            cache_read_tokens: 2,
            cache_write_tokens: 0,
            ..Usage::default()
        };
        b += a;
        assert_eq!(
            b,
            Usage {
                input_tokens: 105,
                output_tokens: 11,
                cache_read_tokens: 62,
                cache_write_tokens: 30,
                ..Usage::default()
            }
        );
        assert_eq!(a.uncached_input(), 10);
        assert_eq!(a.total(), 110);
        // Older records (and servers) without the cache counts read as 0.
        let old: Usage =
            serde_json::from_value(json!({"input_tokens": 3, "output_tokens": 4})).unwrap();
        assert_eq!((old.cache_read_tokens, old.cache_write_tokens), (0, 0));
    }

    #[test]
    fn tool_input_error_explains_raw_text() {
        assert_eq!(tool_input_error(&json!({"a": 1})), None);
        let e = tool_input_error(&json!("{\"a\": ")).unwrap();
        assert!(e.contains("not a valid JSON object"), "{e}");
        assert!(e.contains("{\"a\": "), "{e}");
        assert!(tool_input_error(&json!([1])).unwrap().contains("an array"));
    }
}
