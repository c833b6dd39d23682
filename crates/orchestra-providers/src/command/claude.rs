//! `format: claude-stream-json`: the events Claude Code prints with
//! `claude -p --output-format stream-json --verbose` (one JSON object per line; the message
//! types of the Claude Agent SDK).
//!
//! Fields relied on, as documented for the SDK's messages:
//! - `system` with `subtype: "init"`: `model`;
//! - `assistant`: `message.content` (blocks `text` {`text`} and `tool_use` {`id`, `name`,
//!   `input`}), `message.id`, `message.usage` (the fallback when the result has none);
//! - `user`: `message.content` blocks `tool_result` {`tool_use_id`, `content` (a string or a list
//!   of `text` blocks), `is_error`};
//! - `stream_event` (with `--include-partial-messages`): `event` of the Messages API stream,
//!   `content_block_delta` with a `text_delta` is shown as it comes;
//! - `result`, the last event: `subtype` (`success`, `error_max_turns`, `error_during_execution`,
//!   ...), `is_error`, `result` (the answer, or the error message), `errors`, `total_cost_usd`,
//!   `num_turns`, `usage` {`input_tokens`, `output_tokens`, `cache_creation_input_tokens`,
//!   `cache_read_input_tokens`} (`input_tokens` excludes the cache reads and writes).
//!
//! Every other event type and field is skipped. Text of subagents (events with a
//! `parent_tool_use_id`) is not shown, but their tool calls are recorded.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::events::{EventStream, Fault, Finished, Shown, StreamUsage, read};
use crate::types::ExternalToolCall;

/// The reader of a Claude Code stream.
#[derive(Debug, Default)]
pub(super) struct ClaudeStream {
    model: Option<String>,
    calls: Vec<ExternalToolCall>,
    /// Index in `calls` by tool use id.
    by_id: HashMap<String, usize>,
    /// Usage of each assistant message (by message id: one message may come as several
    /// events, each repeating its usage).
    message_usage: Vec<(String, Usage)>,
    /// The text of the last top-level assistant message.
    last_text: String,
    /// Whether text arrives as partial deltas (then whole messages are not shown again).
    partial: bool,
    shown: Shown,
    result: Option<ResultEvent>,
}

#[derive(Debug, Deserialize)]
struct System {
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AssistantEvent {
    message: AssistantMessage,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Value,
        #[serde(default)]
        is_error: Option<bool>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct UserEvent {
    message: UserMessage,
}

#[derive(Debug, Deserialize)]
struct UserMessage {
    /// A list of blocks, or a plain string (a prompt echoed back).
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct StreamEvent {
    event: Value,
    #[serde(default)]
    parent_tool_use_id: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    fn to_stream(self) -> StreamUsage {
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        StreamUsage {
            input: self
                .input_tokens
                .saturating_add(write)
                .saturating_add(read),
            output: self.output_tokens,
            cache_read: read,
            cache_write: write,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResultEvent {
    #[serde(default)]
    subtype: Option<String>,
    #[serde(default)]
    is_error: bool,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    total_cost_usd: Option<f64>,
    #[serde(default)]
    num_turns: Option<u64>,
    #[serde(default)]
    usage: Option<Usage>,
}

impl ClaudeStream {
    fn assistant(&mut self, ev: AssistantEvent, show: &mut dyn FnMut(&str)) {
        let top = ev.parent_tool_use_id.is_none();
        let msg = ev.message;
        if self.model.is_none() {
            self.model = msg.model;
        }
        if let (Some(id), Some(usage)) = (msg.id, msg.usage) {
            match self.message_usage.iter_mut().find(|(m, _)| *m == id) {
                Some(seen) => seen.1 = usage,
                None => self.message_usage.push((id, usage)),
            }
        }
        for block in msg.content {
            match block {
                Block::Text { text } if top => {
                    if !self.partial {
                        self.shown.message(&text, show);
                    }
                    self.last_text = text;
                }
                Block::ToolUse { id, name, input } => {
                    self.by_id.insert(id.clone(), self.calls.len());
                    self.calls.push(ExternalToolCall {
                        id,
                        name,
                        input,
                        output: None,
                        is_error: false,
                    });
                }
                _ => {}
            }
        }
    }

    fn user(&mut self, ev: UserEvent) -> Result<(), String> {
        let Value::Array(blocks) = ev.message.content else {
            return Ok(());
        };
        for block in blocks {
            let block: Block = serde_json::from_value(block)
                .map_err(|e| format!("a `user` message block of an unexpected shape ({e})"))?;
            if let Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } = block
            {
                match self.by_id.get(&tool_use_id) {
                    Some(&i) => {
                        self.calls[i].output = Some(result_text(&content));
                        self.calls[i].is_error = is_error.unwrap_or(false);
                    }
                    None => tracing::debug!(
                        tool_use_id,
                        "a tool result for a tool call the stream did not show"
                    ),
                }
            }
        }
        Ok(())
    }

    fn stream_event(&mut self, ev: StreamEvent, show: &mut dyn FnMut(&str)) {
        if ev.parent_tool_use_id.is_some() {
            return;
        }
        self.partial = true;
        match ev.event.get("type").and_then(Value::as_str) {
            Some("message_start") => self.shown.next_message(),
            Some("content_block_delta") => {
                let delta = &ev.event["delta"];
                if delta["type"] == "text_delta"
                    && let Some(text) = delta["text"].as_str()
                {
                    self.shown.delta(text, show);
                }
            }
            _ => {}
        }
    }
}

/// A tool result's content as text: a string, or the text of its blocks (other blocks, such
/// as images, by their type).
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["text"].as_str() {
                Some(t) if b["type"] == "text" => t.to_owned(),
                _ => format!("[{}]", b["type"].as_str().unwrap_or("content")),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl EventStream for ClaudeStream {
    fn event(
        &mut self,
        kind: &str,
        event: Value,
        show: &mut dyn FnMut(&str),
    ) -> Result<(), String> {
        if self.result.is_some() {
            return Ok(());
        }
        match kind {
            "system" => {
                let s: System = read(kind, event)?;
                if s.subtype.as_deref() == Some("init") && s.model.is_some() {
                    self.model = s.model;
                }
            }
            "assistant" => self.assistant(read(kind, event)?, show),
            "user" => self.user(read(kind, event)?)?,
            "stream_event" => self.stream_event(read(kind, event)?, show),
            "result" => self.result = Some(read(kind, event)?),
            _ => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Finished, Fault> {
        let this = *self;
        let Some(result) = this.result else {
            return Err(Fault::Truncated(
                "it ended without a `result` event".to_owned(),
            ));
        };
        let subtype = result.subtype.as_deref().unwrap_or("success");
        if result.is_error || subtype != "success" {
            let mut message = result
                .result
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| {
                    result
                        .errors
                        .iter()
                        .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join("; ")
                });
            if message.is_empty() {
                message = "no message".to_owned();
            }
            let turns = result
                .num_turns
                .map(|n| format!(", after {n} turn{}", if n == 1 { "" } else { "s" }))
                .unwrap_or_default();
            return Err(Fault::Reported(format!("{message} ({subtype}{turns})")));
        }
        let usage = match result.usage {
            Some(u) => u.to_stream(),
            None => this
                .message_usage
                .iter()
                .map(|(_, u)| u.to_stream())
                .fold(StreamUsage::default(), |a, b| StreamUsage {
                    input: a.input.saturating_add(b.input),
                    output: a.output.saturating_add(b.output),
                    cache_read: a.cache_read.saturating_add(b.cache_read),
                    cache_write: a.cache_write.saturating_add(b.cache_write),
                }),
        };
        Ok(Finished {
            text: result.result.unwrap_or(this.last_text),
            usage,
            cost_usd: result.total_cost_usd,
            tool_calls: this.calls,
            model: this.model,
        })
    }
}
