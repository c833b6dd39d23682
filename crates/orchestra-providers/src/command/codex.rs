//! `format: codex-jsonl`: the events Codex prints with `codex exec --json` (one JSON object per
//! line; `ThreadEvent` of codex-rs `exec/src/exec_events.rs`, documented in its `docs/exec.md`).
//!
//! Fields relied on:
//! - `item.completed` with `item` {`id`, `type`, ...}: `agent_message` {`text`} (the last one is
//!   the answer), `command_execution` {`command`, `aggregated_output`, `exit_code`, `status`:
//!   `completed` | `failed` | `declined`}, `file_change` {`changes`: [{`path`, `kind`}],
//!   `status`}, `mcp_tool_call` {`server`, `tool`, `arguments`, `result` {`content`,
//!   `structured_content`}, `error` {`message`}, `status`}, `web_search` {`query`},
//!   `collab_tool_call` {`tool` (`spawn_agent`, `send_input`, `wait`, `close_agent`), `prompt`,
//!   `receiver_thread_ids`, `status`} (sub-agents); `reasoning`, `plan`, `todo_list`, `error`
//!   and other items are skipped;
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
    CollabToolCall {
        id: String,
        tool: String,
        #[serde(default)]
        prompt: Option<String>,
        #[serde(default)]
        receiver_thread_ids: Vec<String>,
        #[serde(default)]
        status: Option<String>,
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
            Item::CollabToolCall {
                id,
                tool,
                prompt,
                receiver_thread_ids,
                status,
            } => ExternalToolCall {
                id,
                name: "collab_tool_call".to_owned(),
                input: json!({ "tool": tool, "prompt": prompt, "receiver_thread_ids": receiver_thread_ids }),
                output: None,
                is_error: failed(status.as_deref()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::events::run_stream;

    fn parse(bytes: &str, chunk: usize) -> (String, Result<Finished, Fault>) {
        run_stream(Box::<CodexStream>::default(), bytes.as_bytes(), chunk)
    }

    #[test]
    fn a_run_with_commands_edits_and_mcp_calls_gives_the_answer_usage_and_calls() {
        for chunk in [1, 50, 1 << 20] {
            let (shown, out) = parse(include_str!("../../tests/streams/codex-tools.jsonl"), chunk);
            let f = out.unwrap();
            let answer = "I added NOTES.md with a summary of the README. `cargo test` fails: there is no Cargo.toml.";
            assert_eq!((f.text.as_str(), shown.as_str()), (answer, answer));
            // `input_tokens` already includes the cached ones.
            assert_eq!(
                f.usage,
                StreamUsage {
                    input: 24763,
                    output: 122,
                    cache_read: 24448,
                    cache_write: 0,
                }
            );
            assert_eq!((f.cost_usd, f.model), (None, None));
            let calls: Vec<(&str, &str, bool)> = f
                .tool_calls
                .iter()
                .map(|c| (c.id.as_str(), c.name.as_str(), c.is_error))
                .collect();
            assert_eq!(
                calls,
                [
                    ("item_1", "command_execution", false),
                    ("item_3", "file_change", false),
                    ("item_4", "command_execution", true),
                    ("item_5", "docs:search", false),
                ]
            );
            let c = &f.tool_calls;
            assert_eq!(c[0].input, json!({"command": "bash -lc ls"}));
            assert_eq!(c[0].output.as_deref(), Some("README.md\nsrc\n"));
            assert_eq!(c[1].output.as_deref(), Some("add /home/dev/app/NOTES.md"));
            assert_eq!(c[3].input, json!({"query": "notes format"}));
            assert_eq!(c[3].output.as_deref(), Some("Use one heading per topic."));
        }
    }

    #[test]
    fn turns_are_summed_and_the_last_message_is_the_answer() {
        let lines = [
            r#"{"type":"thread.started","thread_id":"t"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"First part."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":10,"output_tokens":5}}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"todo_list","items":[{"text":"x","completed":true}]}}"#,
            // Codex writes `id` twice in a `web_search` item (the item's, then the search's,
            // flattened): the line reads as JSON, the last one wins.
            r#"{"type":"item.completed","item":{"id":"item_2","type":"web_search","id":"ws_1","query":"rust","action":{"type":"search","query":"rust"}}}"#,
            r#"{"type":"item.completed","item":{"id":"item_4","type":"collab_tool_call","tool":"spawn_agent","sender_thread_id":"t","receiver_thread_ids":["t2"],"prompt":"Check the tests.","agents_states":{"t2":{"status":"running","message":null}},"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_5","type":"plan","text":"1. look"}}"#,
            r#"{"type":"item.plan.delta","item_id":"item_5","delta":"2. fix"}"#,
            r#"{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Second part."}}"#,
            r#"{"type":"some.future.event","x":1}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":90,"output_tokens":7}}"#,
        ];
        let (shown, out) = parse(&lines.join("\n"), 9);
        let f = out.unwrap();
        assert_eq!(shown, "First part.\n\nSecond part.");
        assert_eq!(f.text, "Second part.");
        assert_eq!(
            (f.usage.input, f.usage.output, f.usage.cache_read),
            (300, 12, 100)
        );
        let names: Vec<&str> = f.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web_search", "collab_tool_call"]);
        assert_eq!(f.tool_calls[0].id, "ws_1");
        assert_eq!(
            f.tool_calls[1].input,
            json!({"tool": "spawn_agent", "prompt": "Check the tests.", "receiver_thread_ids": ["t2"]})
        );
        assert!(!f.tool_calls[1].is_error);
    }

    #[test]
    fn failures_truncation_and_bad_lines() {
        let (_, out) = parse(include_str!("../../tests/streams/codex-failed.jsonl"), 20);
        assert_eq!(
            out.unwrap_err(),
            Fault::Reported("the turn failed: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header".to_owned())
        );
        // An error the turn recovers from is no failure.
        let (_, out) = parse(
            include_str!("../../tests/streams/codex-reconnected.jsonl"),
            20,
        );
        assert_eq!(out.unwrap().text, "Done.");
        let (_, out) = parse(
            r#"{"type":"turn.started"}
{"type":"error","message":"stream disconnected"}"#,
            20,
        );
        assert_eq!(
            out.unwrap_err(),
            Fault::Reported("stream disconnected".to_owned())
        );

        let (_, out) = parse(
            include_str!("../../tests/streams/codex-truncated.jsonl"),
            20,
        );
        assert_eq!(
            out.unwrap_err(),
            Fault::Truncated("it ended without a `turn.completed` event".to_owned())
        );
        let two = r#"{"type":"turn.started"}
{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}
{"type":"turn.started"}"#;
        let (_, out) = parse(two, 20);
        assert!(
            matches!(out, Err(Fault::Truncated(ref m)) if m.starts_with("it ended in a turn that never completed")),
            "{out:?}"
        );

        let (_, out) = parse(
            include_str!("../../tests/streams/codex-malformed.jsonl"),
            20,
        );
        let Err(Fault::Malformed { line, reason, .. }) = out else {
            panic!("{out:?}")
        };
        assert_eq!(line, 5);
        assert!(reason.starts_with("the `item.completed` event has an unexpected shape (invalid type: sequence, expected a string"), "{reason}");
    }
}
