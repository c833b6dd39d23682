//! `format: codex-jsonl`: the events Codex prints with `codex exec --json` (one JSON object per
//! line; `ThreadEvent` of codex-rs `exec/src/exec_events.rs`, documented in its `docs/exec.md`).
//!
//! Fields relied on:
//! - `item.completed` with `item` {`id`, `type`, ...}: `agent_message` {`text`} (the last one is
//!   the answer), `command_execution` {`command`, `aggregated_output`, `exit_code`, `status`:
//!   `completed` | `failed` | `declined`}, `file_change` {`changes`: [{`path`, `kind`}],
//!   `status`}, `mcp_tool_call` {`server`, `tool`, `arguments`, `result` {`content`,
//!   `structured_content`}, `error` {`message`}, `status`}, `web_search` {`query`};
//!   `reasoning`, `todo_list`, `error` and other items are skipped;
//! - `turn.started`, `turn.completed` {`usage` {`input_tokens`, `cached_input_tokens`,
//!   `output_tokens`}} (`input_tokens` includes the cached ones; turns are summed);
//! - `turn.failed` {`error` {`message`}}: the run failed;
//! - `error` {`message`}: an error of the stream; it fails the run unless a turn still
//!   completes after it (Codex reports reconnections this way).
//!
//! `thread.started`, `item.started`, `item.updated` and unknown events are skipped. Codex
//! reports no cost.

use serde::Deserialize;
use serde_json::{Value, json};

use super::events::{EventStream, Fault, Finished, Shown, StreamUsage, read};
use crate::types::ExternalToolCall;

/// The reader of a Codex stream.
#[derive(Debug, Default)]
pub(super) struct CodexStream {
    usage: StreamUsage,
    calls: Vec<ExternalToolCall>,
    last_message: Option<String>,
    /// A turn started and not completed yet.
    open_turn: bool,
    completed_turns: u32,
    /// The last `error` event since the last completed turn.
    error: Option<String>,
    failed: Option<String>,
    shown: Shown,
}

#[derive(Debug, Deserialize)]
struct ItemEvent {
    item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item {
    AgentMessage {
        text: String,
    },
    CommandExecution {
        id: String,
        command: String,
        #[serde(default)]
        aggregated_output: String,
        #[serde(default)]
        exit_code: Option<i64>,
        #[serde(default)]
        status: Option<String>,
    },
    FileChange {
        id: String,
        #[serde(default)]
        changes: Vec<Change>,
        #[serde(default)]
        status: Option<String>,
    },
    McpToolCall {
        id: String,
        server: String,
        tool: String,
        #[serde(default)]
        arguments: Value,
        #[serde(default)]
        result: Option<McpResult>,
        #[serde(default)]
        error: Option<Message>,
        #[serde(default)]
        status: Option<String>,
    },
    WebSearch {
        id: String,
        #[serde(default)]
        query: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct Change {
    path: String,
    #[serde(default)]
    kind: Value,
}

#[derive(Debug, Deserialize)]
struct McpResult {
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    structured_content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message: String,
}

#[derive(Debug, Deserialize)]
struct TurnCompleted {
    usage: Usage,
}

#[derive(Debug, Deserialize)]
struct TurnFailed {
    error: Message,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

fn failed(status: Option<&str>) -> bool {
    matches!(status, Some("failed" | "declined"))
}

impl CodexStream {
    fn completed(&mut self, item: Item, show: &mut dyn FnMut(&str)) {
        let call = match item {
            Item::AgentMessage { text, .. } => {
                self.shown.message(&text, show);
                self.last_message = Some(text);
                return;
            }
            Item::CommandExecution {
                id,
                command,
                aggregated_output,
                exit_code,
                status,
            } => ExternalToolCall {
                id,
                name: "command_execution".to_owned(),
                input: json!({ "command": command }),
                output: Some(aggregated_output),
                is_error: failed(status.as_deref()) || exit_code.is_some_and(|c| c != 0),
            },
            Item::FileChange {
                id,
                changes,
                status,
            } => {
                let listed = changes
                    .iter()
                    .map(|c| format!("{} {}", c.kind.as_str().unwrap_or("change"), c.path))
                    .collect::<Vec<_>>()
                    .join("\n");
                ExternalToolCall {
                    id,
                    name: "file_change".to_owned(),
                    input: json!({ "changes": changes }),
                    output: Some(listed),
                    is_error: failed(status.as_deref()),
                }
            }
            Item::McpToolCall {
                id,
                server,
                tool,
                arguments,
                result,
                error,
                status,
            } => {
                let is_error = error.is_some() || failed(status.as_deref());
                let output = match (error, result) {
                    (Some(e), _) => Some(e.message),
                    (None, Some(r)) => Some(mcp_text(&r)),
                    (None, None) => None,
                };
                ExternalToolCall {
                    id,
                    name: format!("{server}:{tool}"),
                    input: arguments,
                    output,
                    is_error,
                }
            }
            Item::WebSearch { id, query } => ExternalToolCall {
                id,
                name: "web_search".to_owned(),
                input: json!({ "query": query }),
                output: None,
                is_error: false,
            },
            Item::Other => return,
        };
        self.calls.push(call);
    }
}

/// An MCP result as text: its text blocks (other blocks by type), else its structured content.
fn mcp_text(r: &McpResult) -> String {
    if r.content.is_empty() {
        return r
            .structured_content
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
    }
    r.content
        .iter()
        .map(|b| match b["text"].as_str() {
            Some(t) if b["type"] == "text" => t.to_owned(),
            _ => format!("[{}]", b["type"].as_str().unwrap_or("content")),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl EventStream for CodexStream {
    fn event(
        &mut self,
        kind: &str,
        event: Value,
        show: &mut dyn FnMut(&str),
    ) -> Result<(), String> {
        if self.failed.is_some() {
            return Ok(());
        }
        match kind {
            "turn.started" => self.open_turn = true,
            "item.completed" => {
                let ev: ItemEvent = read(kind, event)?;
                self.completed(ev.item, show);
            }
            "turn.completed" => {
                let t: TurnCompleted = read(kind, event)?;
                self.usage.input = self.usage.input.saturating_add(t.usage.input_tokens);
                self.usage.output = self.usage.output.saturating_add(t.usage.output_tokens);
                self.usage.cache_read = self
                    .usage
                    .cache_read
                    .saturating_add(t.usage.cached_input_tokens);
                self.open_turn = false;
                self.completed_turns += 1;
                self.error = None;
            }
            "turn.failed" => {
                let t: TurnFailed = read(kind, event)?;
                self.failed = Some(t.error.message);
            }
            "error" => {
                let e: Message = read(kind, event)?;
                self.error = Some(e.message);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Finished, Fault> {
        let this = *self;
        if let Some(message) = this.failed {
            return Err(Fault::Reported(format!("the turn failed: {message}")));
        }
        if let Some(message) = this.error {
            return Err(Fault::Reported(message));
        }
        if this.completed_turns == 0 {
            return Err(Fault::Truncated(
                "it ended without a `turn.completed` event".to_owned(),
            ));
        }
        if this.open_turn {
            return Err(Fault::Truncated(
                "it ended in a turn that never completed (no `turn.completed` after the last `turn.started`)"
                    .to_owned(),
            ));
        }
        Ok(Finished {
            text: this.last_message.unwrap_or_default(),
            usage: this.usage,
            cost_usd: None,
            tool_calls: this.calls,
            model: None,
        })
    }
}
