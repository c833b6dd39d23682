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
            input: self.input_tokens.saturating_add(write).saturating_add(read),
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
            let block: Block = serde_json::from_value(block).map_err(|e| {
                format!("a block of the `user` message has an unexpected shape ({e})")
            })?;
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
            None => this.message_usage.iter().map(|(_, u)| u.to_stream()).fold(
                StreamUsage::default(),
                |a, b| StreamUsage {
                    input: a.input.saturating_add(b.input),
                    output: a.output.saturating_add(b.output),
                    cache_read: a.cache_read.saturating_add(b.cache_read),
                    cache_write: a.cache_write.saturating_add(b.cache_write),
                },
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::events::run_stream;
    use serde_json::json;

    fn parse(bytes: &str, chunk: usize) -> (String, Result<Finished, Fault>) {
        run_stream(Box::<ClaudeStream>::default(), bytes.as_bytes(), chunk)
    }

    const TOOLS: &str = include_str!("../../tests/streams/claude-tools.jsonl");

    #[test]
    fn a_run_with_tool_calls_gives_the_answer_usage_cost_and_calls() {
        for chunk in [1, 64, 1 << 20] {
            let (shown, out) = parse(TOOLS, chunk);
            let f = out.unwrap();
            let answer = "I added NOTES.md with a summary of the README. There is no Cargo.toml, so there were no tests to run.";
            assert_eq!(f.text, answer);
            assert_eq!(shown, format!("I'll read the README first.\n\n{answer}"));
            // The result's totals: input_tokens excludes the cache reads and writes.
            assert_eq!(
                f.usage,
                StreamUsage {
                    input: 17 + 12361 + 35560,
                    output: 412,
                    cache_read: 35560,
                    cache_write: 12361,
                }
            );
            assert_eq!(f.cost_usd, Some(0.0591234));
            assert_eq!(f.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
            let calls: Vec<(&str, &str, bool)> = f
                .tool_calls
                .iter()
                .map(|c| (c.id.as_str(), c.name.as_str(), c.is_error))
                .collect();
            assert_eq!(
                calls,
                [
                    ("toolu_01Rd8M", "Read", false),
                    ("toolu_01Wx4T", "Write", false),
                    ("toolu_01Bs6C", "Bash", true),
                ]
            );
            assert_eq!(
                f.tool_calls[0].input,
                json!({"file_path": "/home/dev/app/README.md"})
            );
            assert_eq!(
                f.tool_calls[1].output.as_deref(),
                Some("File created successfully at: /home/dev/app/NOTES.md")
            );
            assert!(
                f.tool_calls[2]
                    .output
                    .as_deref()
                    .unwrap()
                    .starts_with("error: could not find `Cargo.toml`")
            );
        }
    }

    #[test]
    fn error_results_carry_the_tools_message() {
        let (_, out) = parse(
            include_str!("../../tests/streams/claude-api-error.jsonl"),
            100,
        );
        let Err(Fault::Reported(m)) = out else {
            panic!("{out:?}")
        };
        assert!(m.starts_with("API Error: 401 "), "{m}");
        assert!(m.ends_with("(success, after 1 turn)"), "{m}");

        let (_, out) = parse(
            include_str!("../../tests/streams/claude-max-turns.jsonl"),
            100,
        );
        assert_eq!(
            out.unwrap_err(),
            Fault::Reported(
                "Reached maximum number of turns (1) (error_max_turns, after 2 turns)".to_owned()
            )
        );
    }

    #[test]
    fn a_stream_without_its_result_is_truncated_and_a_bad_line_is_named() {
        let (shown, out) = parse(
            include_str!("../../tests/streams/claude-truncated.jsonl"),
            10,
        );
        assert_eq!(shown, "I'll read the README first.");
        assert_eq!(
            out.unwrap_err(),
            Fault::Truncated("it ended without a `result` event".to_owned())
        );
        let (_, out) = parse(
            include_str!("../../tests/streams/claude-malformed.jsonl"),
            10,
        );
        let Err(Fault::Malformed { line, excerpt, .. }) = out else {
            panic!("{out:?}")
        };
        assert_eq!(line, 3);
        assert!(excerpt.starts_with("{\"type\":\"assistant\""), "{excerpt}");
    }

    #[test]
    fn known_fields_of_the_wrong_type_are_malformed_unknown_ones_skipped() {
        let lines = [
            r#"{"type":"system","subtype":"hook_started","hook":"x"}"#,
            r#"{"type":"tool_progress","whatever":[1]}"#,
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"ok","citations":null}],"new_field":1}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","future":{"a":1}}"#,
        ];
        let (_, out) = parse(&lines.join("\n"), 7);
        let f = out.unwrap();
        assert_eq!((f.text.as_str(), f.cost_usd), ("ok", None));

        let bad = r#"{"type":"assistant","message":{"content":"not a list"}}"#;
        let (_, out) = parse(bad, 7);
        let Err(Fault::Malformed {
            line: 1, reason, ..
        }) = out
        else {
            panic!("{out:?}")
        };
        assert!(
            reason.starts_with("the `assistant` event has an unexpected shape"),
            "{reason}"
        );
    }

    #[test]
    fn partial_messages_stream_deltas_and_usage_falls_back_to_the_messages() {
        let lines = [
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1"}},"parent_tool_use_id":null}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}},"parent_tool_use_id":null}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}},"parent_tool_use_id":null}"#,
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"Hello"}],"usage":{"input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Task","input":{}}],"usage":{"input_tokens":5,"output_tokens":9}}}"#,
            r#"{"type":"assistant","message":{"id":"m2","content":[{"type":"text","text":"from a subagent"}],"usage":{"input_tokens":4,"cache_read_input_tokens":10,"output_tokens":2}},"parent_tool_use_id":"t1"}"#,
            r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m3"}},"parent_tool_use_id":null}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Done"}},"parent_tool_use_id":null}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Done"}"#,
        ];
        let (shown, out) = parse(&lines.join("\n"), 13);
        assert_eq!(shown, "Hello\n\nDone");
        let f = out.unwrap();
        assert_eq!(
            f.usage,
            StreamUsage {
                input: 5 + 14,
                output: 9 + 2,
                cache_read: 10,
                cache_write: 0
            }
        );
        assert_eq!(f.tool_calls.len(), 1);
        assert_eq!(f.tool_calls[0].output, None);
    }
}
