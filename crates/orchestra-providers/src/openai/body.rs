//! Chat Completions wire format: the request body built from a [`ChatRequest`] and the
//! non-streamed `chat.completion` read back into a [`ChatResponse`].

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::TokenField;
use crate::error::ProviderError;
use crate::http::Http;
use crate::types::{Block, ChatRequest, ChatResponse, Role, StopReason, Usage};
use crate::wire::{NameMap, object_schema, parse_arguments, wire_id};

/// Longest tool-call id OpenAI accepts in a request.
const MAX_ID: usize = 40;

/// The request body.
pub(crate) fn request(
    req: &ChatRequest,
    names: &NameMap,
    token_field: TokenField,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    stream: bool,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages(req, names)));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), json!(names.wire(&t.name)));
                if !t.description.is_empty() {
                    f.insert("description".into(), json!(t.description));
                }
                f.insert("parameters".into(), object_schema(&t.parameters));
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(n) = req.max_tokens.or(max_tokens) {
        body.insert(token_field.key().into(), json!(n));
    }
    if let Some(t) = req.temperature.or(temperature) {
        body.insert("temperature".into(), json!(t));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

/// The conversation: the system prompt first; tool results become `tool` messages right after
/// the assistant message that called them; text goes in `user`/`assistant` messages.
fn messages(req: &ChatRequest, names: &NameMap) -> Vec<Value> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        out.push(json!({"role": "system", "content": req.system}));
    }
    for m in &req.messages {
        let text = m.text();
        match m.role {
            Role::User => {
                for b in &m.content {
                    if let Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } = b
                    {
                        // Chat Completions has no error flag on tool results: say it in the text.
                        let content = if *is_error && !content.starts_with("error") {
                            format!("error: {content}")
                        } else {
                            content.clone()
                        };
                        out.push(json!({
                            "role": "tool",
                            "tool_call_id": wire_id(tool_use_id, MAX_ID),
                            "content": content,
                        }));
                    }
                }
                if !text.is_empty() {
                    out.push(json!({"role": "user", "content": text}));
                }
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => Some(json!({
                            "id": wire_id(id, MAX_ID),
                            "type": "function",
                            "function": {"name": names.wire(name), "arguments": arguments(input)},
                        })),
                        _ => None,
                    })
                    .collect();
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let mut msg = Map::new();
                msg.insert("role".into(), json!("assistant"));
                msg.insert(
                    "content".into(),
                    if text.is_empty() {
                        Value::Null
                    } else {
                        json!(text)
                    },
                );
                if !calls.is_empty() {
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
                out.push(Value::Object(msg));
            }
        }
    }
    out
}

/// Arguments as the JSON text the API carries; broken arguments go back as the model sent them.
fn arguments(input: &Value) -> String {
    match input {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// A non-streamed `chat.completion`.
#[derive(Debug, Deserialize)]
pub(crate) struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
    #[serde(default)]
    model: String,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ResponseCall>>,
}

#[derive(Debug, Deserialize)]
struct ResponseCall {
    #[serde(default)]
    id: Option<String>,
    function: ResponseFunction,
}

#[derive(Debug, Deserialize)]
struct ResponseFunction {
    name: String,
    /// A JSON string per the API; some compatible servers send an object.
    #[serde(default)]
    arguments: Value,
}

/// `usage` of a completion or of the last stream chunk. `prompt_tokens` includes the
/// `prompt_tokens_details.cached_tokens` read from the prompt cache (our convention too, see
/// [`Usage`]); OpenAI reports no cache writes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Read leniently: compatible servers send `null`, `{}` or nothing.
    #[serde(default)]
    pub prompt_tokens_details: Value,
}

impl From<ResponseUsage> for Usage {
    fn from(u: ResponseUsage) -> Usage {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_tokens: u.prompt_tokens_details["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
            cache_write_tokens: 0,
            ..Usage::default()
        }
    }
}

impl Completion {
    /// The answer; without `usage` (some compatible servers send none) its tokens are
    /// estimated.
    pub fn into_response(
        self,
        http: &Http,
        names: &NameMap,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let turn = req.assistant_turns();
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(http.malformed("the completion has no choices"));
        };
        let mut content = Vec::new();
        let text = choice
            .message
            .content
            .filter(|t| !t.is_empty())
            .or(choice.message.refusal);
        if let Some(text) = text {
            content.push(Block::Text { text });
        }
        for (i, call) in choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let name = call.function.name;
            let input = match call.function.arguments {
                Value::String(raw) => parse_arguments(&http.name, &name, &raw),
                Value::Null => json!({}),
                other => other,
            };
            content.push(Block::ToolUse {
                id: call_id(call.id, turn, i),
                name: names.ours(&name),
                input,
            });
        }
        let stop = finish_reason(choice.finish_reason.as_deref(), &content);
        let usage = http.usage_or_estimate(self.usage.map(Usage::from), req, &content);
        Ok(ChatResponse {
            content,
            stop,
            usage,
            model: self.model,
            retries: 0,
            reported_cost_usd: None,
            external_tool_calls: Vec::new(),
        })
    }
}

/// The call's id, or a made-up one for servers that send none.
pub(crate) fn call_id(id: Option<String>, turn: usize, i: usize) -> String {
    id.filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("call_{turn}_{i}"))
}

/// `stop` | `tool_calls` | `length` | `content_filter` as a [`StopReason`]. Some compatible
/// servers say `stop` after tool calls; the calls win.
pub(crate) fn finish_reason(reason: Option<&str>, content: &[Block]) -> StopReason {
    let calls = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    match reason {
        _ if calls => StopReason::ToolUse,
        Some("stop") | None => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some(other) => StopReason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;
    use orchestra_spec::ToolDef;

    #[test]
    fn builds_the_documented_body() {
        let req = ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "gpt-4.1".into(),
            system: "sys".into(),
            messages: vec![
                Message::user("hi"),
                Message::assistant(vec![Block::ToolUse {
                    id: "call_1".into(),
                    name: "app:read-file".into(),
                    input: json!({"path": "a"}),
                }]),
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: "boom".into(),
                        is_error: true,
                    }],
                },
            ],
            tools: vec![ToolDef {
                name: "app:read-file".into(),
                description: String::new(),
                parameters: json!({}),
            }],
            max_tokens: Some(100),
            temperature: None,
            workdir: None,
            vars: Default::default(),
        };
        let names = NameMap::for_request(&req);
        let body = request(&req, &names, TokenField::MaxTokens, None, Some(0.5), true);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4.1",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "app__read-file", "arguments": "{\"path\":\"a\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "error: boom"}
                ],
                "tools": [{"type": "function", "function": {"name": "app__read-file",
                           "parameters": {"type": "object", "properties": {}}}}],
                "max_tokens": 100,
                "temperature": 0.5,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn finish_reasons_map_and_calls_win() {
        let call = [Block::ToolUse {
            id: "x".into(),
            name: "t".into(),
            input: json!({}),
        }];
        assert_eq!(finish_reason(Some("stop"), &[]), StopReason::EndTurn);
        assert_eq!(finish_reason(Some("length"), &[]), StopReason::MaxTokens);
        assert_eq!(finish_reason(Some("stop"), &call), StopReason::ToolUse);
        assert_eq!(
            finish_reason(Some("content_filter"), &[]),
            StopReason::Other("content_filter".into())
        );
    }
}
