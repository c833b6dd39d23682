//! Anthropic wire format: the request body built from a [`ChatRequest`] and the non-streamed
//! response read back into a [`ChatResponse`].

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::Http;
use crate::types::{Block, ChatRequest, ChatResponse, Role, StopReason, Usage};
use crate::wire::{NameMap, object_schema, wire_id};

/// `max_tokens` is required by the API; this is used when neither request nor settings set it.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Longest tool-use id sent (the API's own ids are about 30 characters).
const MAX_ID: usize = 64;

/// The request body.
///
/// With `caching`, it marks up to three prompt-cache breakpoints (`cache_control: ephemeral`),
/// within the API's limit of four: the system prompt, the last tool (the
/// cached prefix is tools, then system, then messages, so this caches every tool) and, once the
/// conversation holds a model turn (a tool loop, or an answer sent back to be corrected), the
/// last block of the last message, so the next call of the loop reads the whole conversation so
/// far from the cache. A prefix shorter than the model's minimum is simply not cached.
pub(crate) fn request(
    req: &ChatRequest,
    names: &NameMap,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    stream: bool,
    caching: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert(
        "max_tokens".into(),
        json!(req.max_tokens.or(max_tokens).unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !req.system.is_empty() {
        let system = if caching {
            json!([{"type": "text", "text": req.system, "cache_control": ephemeral()}])
        } else {
            json!(req.system)
        };
        body.insert("system".into(), system);
    }
    let mut messages = messages(req, names);
    if caching
        && req.assistant_turns() > 0
        && let Some(last) = messages
            .last_mut()
            .and_then(|m| m["content"].as_array_mut())
            .and_then(|blocks| blocks.last_mut())
            .and_then(Value::as_object_mut)
    {
        last.insert("cache_control".into(), ephemeral());
    }
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let mut tools: Vec<Value> = req
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
        if caching && let Some(Value::Object(last)) = tools.last_mut() {
            last.insert("cache_control".into(), ephemeral());
        }
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

/// A prompt-cache breakpoint with the default lifetime (5 minutes, refreshed on every hit).
fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
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
    /// `None` when the server sent none (some compatible servers): then it is estimated.
    #[serde(default)]
    usage: Option<ResponseUsage>,
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

/// Token counts as the API reports them: `input_tokens` excludes the cache reads and writes.
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
    /// In our convention (see [`Usage`]): the cache reads and writes are parts of the input.
    pub fn usage(&self) -> Usage {
        let cache_write_tokens = self.cache_creation_input_tokens.unwrap_or(0);
        let cache_read_tokens = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            // Saturating: the numbers come from the server.
            input_tokens: self
                .input_tokens
                .saturating_add(cache_write_tokens)
                .saturating_add(cache_read_tokens),
            output_tokens: self.output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            estimated: false,
        }
    }
}

impl MessageResponse {
    /// The answer; without `usage` (some compatible servers send none) its tokens are
    /// estimated.
    pub fn into_response(self, http: &Http, names: &NameMap, req: &ChatRequest) -> ChatResponse {
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
        let usage = http.usage_or_estimate(self.usage.map(|u| u.usage()), req, &content);
        ChatResponse {
            content,
            stop,
            usage,
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
            vars: Default::default(),
        }
    }

    #[test]
    fn builds_the_documented_body() {
        let r = req();
        let names = NameMap::for_request(&r);
        let body = request(&r, &names, Some(1000), None, true, false);
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

    /// Most `cache_control` breakpoints the API accepts in one request.
    const MAX_CACHE_BREAKPOINTS: usize = 4;

    fn breakpoints(v: &Value) -> usize {
        match v {
            Value::Object(m) => {
                usize::from(m.contains_key("cache_control"))
                    + m.values().map(breakpoints).sum::<usize>()
            }
            Value::Array(a) => a.iter().map(breakpoints).sum(),
            _ => 0,
        }
    }

    #[test]
    fn caching_marks_system_tools_and_the_conversation_of_a_tool_loop() {
        let r = req();
        let names = NameMap::for_request(&r);
        let body = request(&r, &names, None, None, false, true);
        let mark = json!({"type": "ephemeral"});
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "be brief", "cache_control": mark}])
        );
        assert_eq!(body["tools"][0]["cache_control"], mark);
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let blocks = last["content"].as_array().unwrap();
        assert_eq!(blocks.last().unwrap()["cache_control"], mark);
        assert_eq!(blocks[0].get("cache_control"), None);
        assert_eq!(breakpoints(&body), 3);
        assert!(breakpoints(&body) <= MAX_CACHE_BREAKPOINTS);

        // The first call of a run (no model turn yet) caches system and tools only; no system
        // prompt, no tools: nothing to mark.
        let mut first = req();
        first.messages.truncate(1);
        let body = request(&first, &names, None, None, false, true);
        assert_eq!(breakpoints(&body), 2);
        first.system = "".into();
        first.tools.clear();
        assert_eq!(
            breakpoints(&request(&first, &names, None, None, false, true)),
            0
        );

        // Turned off: the body is the plain one.
        assert_eq!(
            breakpoints(&request(&r, &names, None, None, false, false)),
            0
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
        let http = Http::new(
            "anthropic",
            "http://127.0.0.1:1",
            None,
            std::time::Duration::from_secs(1),
            crate::retry::RetryPolicy::default(),
            crate::gate::Gate::new("anthropic", None, None),
        )
        .unwrap();
        let out = resp.into_response(&http, &names, &r);
        assert_eq!(out.stop, StopReason::ToolUse);
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 15,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_write_tokens: 0,
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
