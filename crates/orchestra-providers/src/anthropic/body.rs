//! Anthropic wire format: the request body built from a [`ChatRequest`] and the non-streamed
//! response read back into a [`ChatResponse`].

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::types::{Block, ChatRequest, ChatResponse, Role, StopReason, Usage};
use crate::wire::{NameMap, object_schema, wire_id};

/// `max_tokens` is required by the API; this is used when neither request nor settings set it.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Longest tool-use id sent (the API's own ids are about 30 characters).
const MAX_ID: usize = 64;

/// The request body.
pub(crate) fn request(
    req: &ChatRequest,
    names: &NameMap,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    stream: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert(
        "max_tokens".into(),
        json!(req.max_tokens.or(max_tokens).unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !req.system.is_empty() {
        body.insert("system".into(), json!(req.system));
    }
    body.insert("messages".into(), Value::Array(messages(req, names)));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut tool = Map::new();
                tool.insert("name".into(), json!(names.wire(&t.name)));
                if !t.description.is_empty() {
                    tool.insert("description".into(), json!(t.description));
                }
                tool.insert("input_schema".into(), object_schema(&t.parameters));
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature.or(temperature) {
        body.insert("temperature".into(), json!(t));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

/// The conversation: empty blocks dropped, consecutive messages of one role merged, and in user
/// messages `tool_result` blocks placed first (the API requires it).
fn messages(req: &ChatRequest, names: &NameMap) -> Vec<Value> {
    let mut merged: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let blocks: Vec<Value> = m.content.iter().filter_map(|b| block(b, names)).collect();
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, existing)) if *role == m.role => existing.extend(blocks),
            _ => merged.push((m.role, blocks)),
        }
    }
    merged
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == Role::User {
                blocks.sort_by_key(|b| b["type"] != "tool_result");
            }
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": blocks})
        })
        .collect()
}

fn block(b: &Block, names: &NameMap) -> Option<Value> {
    Some(match b {
        Block::Text { text } if text.is_empty() => return None,
        Block::Text { text } => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => json!({
            "type": "tool_use",
            "id": wire_id(id, MAX_ID),
            "name": names.wire(name),
            // Arguments the model broke were never run; the API only takes an object here.
            "input": if input.is_object() { input.clone() } else { json!({}) },
        }),
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut r = Map::new();
            r.insert("type".into(), json!("tool_result"));
            r.insert("tool_use_id".into(), json!(wire_id(tool_use_id, MAX_ID)));
            if !content.is_empty() {
                r.insert("content".into(), json!(content));
            }
            if *is_error {
                r.insert("is_error".into(), json!(true));
            }
            Value::Object(r)
        }
    })
}

/// A non-streamed response (`type: message`).
#[derive(Debug, Deserialize)]
pub(crate) struct MessageResponse {
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: ResponseUsage,
    #[serde(default)]
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Token counts; cache reads and writes count as input.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl ResponseUsage {
    pub fn input(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

impl MessageResponse {
    pub fn into_response(self, names: &NameMap) -> ChatResponse {
        let content: Vec<Block> = self
            .content
            .into_iter()
            .filter_map(|b| match b {
                ResponseBlock::Text { text } => Some(Block::Text { text }),
                ResponseBlock::ToolUse { id, name, input } => Some(Block::ToolUse {
                    id,
                    name: names.ours(&name),
                    input: if input.is_null() { json!({}) } else { input },
                }),
                ResponseBlock::Other => None,
            })
            .collect();
        let stop = stop_reason(self.stop_reason, &content);
        ChatResponse {
            content,
            stop,
            usage: Usage {
                input_tokens: self.usage.input(),
                output_tokens: self.usage.output_tokens,
                ..Usage::default()
            },
            model: self.model,
            retries: 0,
            reported_cost_usd: None,
            external_tool_calls: Vec::new(),
        }
    }
}

/// The stop reason, inferred from the content when the API gave none.
pub(crate) fn stop_reason(reason: Option<String>, content: &[Block]) -> StopReason {
    match reason {
        Some(r) => StopReason::from(r),
        None if content.iter().any(|b| matches!(b, Block::ToolUse { .. })) => StopReason::ToolUse,
        None => StopReason::EndTurn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;
    use orchestra_spec::ToolDef;

    fn req() -> ChatRequest {
        ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "claude-sonnet-4-5".into(),
            system: "be brief".into(),
            messages: vec![
                Message::user("review"),
                Message::user(""),
                Message::assistant(vec![
                    Block::text("looking"),
                    Block::ToolUse {
                        id: "toolu_1".into(),
                        name: "app:read-file".into(),
                        input: json!({"path": "x"}),
                    },
                ]),
                Message::user("also this"),
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "toolu_1".into(),
                        content: "no such file".into(),
                        is_error: true,
                    }],
                },
            ],
            tools: vec![ToolDef {
                name: "app:read-file".into(),
                description: "read a file".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            }],
            max_tokens: None,
            temperature: Some(0.2),
            workdir: None,
        }
    }

    #[test]
    fn builds_the_documented_body() {
        let r = req();
        let names = NameMap::for_request(&r);
        let body = request(&r, &names, Some(1000), None, true);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1000,
                "system": "be brief",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "review"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "looking"},
                        {"type": "tool_use", "id": "toolu_1", "name": "app__read-file", "input": {"path": "x"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "no such file", "is_error": true},
                        {"type": "text", "text": "also this"}
                    ]}
                ],
                "tools": [{"name": "app__read-file", "description": "read a file",
                           "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
                "temperature": 0.2,
                "stream": true
            })
        );
    }

    #[test]
    fn reads_a_tool_use_response() {
        let r = req();
        let names = NameMap::for_request(&r);
        let resp: MessageResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "toolu_2", "name": "app__read-file", "input": {"path": "y"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}
        }))
        .unwrap();
        let out = resp.into_response(&names);
        assert_eq!(out.stop, StopReason::ToolUse);
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 15,
                output_tokens: 7,
                ..Usage::default()
            }
        );
        assert_eq!(out.text(), "ok");
        let calls: Vec<_> = out.tool_uses().collect();
        assert_eq!(
            calls,
            vec![("toolu_2", "app:read-file", &json!({"path": "y"}))]
        );
    }
}
