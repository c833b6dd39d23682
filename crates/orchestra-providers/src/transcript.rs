//! A conversation rendered as plain text, for providers that take one prompt string (command-line
//! agents) and for byte-count usage estimates.

use std::fmt::Write as _;

use crate::types::{Block, ChatRequest, Message, Role, Usage};

/// The prompt a command-line agent receives: the system prompt, then the conversation.
///
/// A conversation of one user message is appended as is; longer ones get a `## User` /
/// `## Assistant` heading per message, with tool calls and results written out.
pub fn render_transcript(req: &ChatRequest) -> String {
    let mut out = String::new();
    if !req.system.trim().is_empty() {
        out.push_str(req.system.trim_end());
    }
    let single_user =
        matches!(req.messages.as_slice(), [m] if m.role == Role::User && only_text(m));
    for m in &req.messages {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        if !single_user {
            out.push_str(match m.role {
                Role::User => "## User\n\n",
                Role::Assistant => "## Assistant\n\n",
            });
        }
        render_blocks(&mut out, &m.content);
    }
    out
}

fn only_text(m: &Message) -> bool {
    m.content.iter().all(|b| matches!(b, Block::Text { .. }))
}

fn render_blocks(out: &mut String, blocks: &[Block]) {
    let mut first = true;
    for b in blocks {
        if !first {
            out.push_str("\n\n");
        }
        first = false;
        match b {
            Block::Text { text } => out.push_str(text.trim_end()),
            Block::ToolUse { id, name, input } => {
                let _ = write!(out, "[tool call {id}: {name} {input}]");
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let kind = if *is_error {
                    "tool error"
                } else {
                    "tool result"
                };
                let _ = write!(out, "[{kind} {tool_use_id}]\n{}", content.trim_end());
            }
        }
    }
}

/// Bytes of the request as a model would see them (system, messages, tool definitions).
pub(crate) fn request_bytes(req: &ChatRequest) -> usize {
    let mut n = req.system.len();
    for m in &req.messages {
        n += content_bytes(&m.content);
    }
    for t in &req.tools {
        n += t.name.len() + t.description.len() + json_len(&t.parameters);
    }
    n
}

fn json_len(v: &serde_json::Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// Bytes of an answer's text and tool calls.
fn content_bytes(content: &[Block]) -> usize {
    content
        .iter()
        .map(|b| match b {
            Block::Text { text } => text.len(),
            Block::ToolUse { name, input, .. } => name.len() + json_len(input),
            Block::ToolResult { content, .. } => content.len(),
        })
        .sum()
}

/// The usage of a call estimated from its request and its answer, marked as estimated: for
/// providers that report none.
pub(crate) fn estimate_usage(req: &ChatRequest, answer: &[Block]) -> Usage {
    Usage {
        input_tokens: estimate_tokens(request_bytes(req)),
        output_tokens: estimate_tokens(content_bytes(answer)),
        estimated: true,
        ..Usage::default()
    }
}

/// Tokens estimated from bytes (about four bytes per token).
pub(crate) fn estimate_tokens(bytes: usize) -> u64 {
    u64::try_from(bytes.div_ceil(4)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "m".into(),
            system: "You review code.\n".into(),
            messages,
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: Default::default(),
        }
    }

    #[test]
    fn a_single_task_is_appended_plainly() {
        let r = req(vec![Message::user("Review the diff.")]);
        assert_eq!(
            render_transcript(&r),
            "You review code.\n\nReview the diff."
        );
        assert_eq!(estimate_tokens(request_bytes(&r)), 9); // 33 bytes
    }

    #[test]
    fn a_conversation_gets_headings_and_tool_lines() {
        let r = req(vec![
            Message::user("go"),
            Message::assistant(vec![Block::ToolUse {
                id: "c1".into(),
                name: "app:read-file".into(),
                input: json!({"path": "a"}),
            }]),
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: "c1".into(),
                    content: "hello\n".into(),
                    is_error: false,
                }],
            },
        ]);
        assert_eq!(
            render_transcript(&r),
            "You review code.\n\n## User\n\ngo\n\n## Assistant\n\n[tool call c1: app:read-file {\"path\":\"a\"}]\n\n## User\n\n[tool result c1]\nhello"
        );
    }
}
