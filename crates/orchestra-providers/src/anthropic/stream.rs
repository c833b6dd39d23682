//! Anthropic SSE streaming: `message_start`, `content_block_start/delta/stop`, `message_delta`,
//! `message_stop`, `ping` and `error` events folded into a [`ChatResponse`]. A stream that ends
//! before `message_stop` is a retryable error; one that carries no usage gets estimated tokens.

use std::collections::BTreeMap;

use serde_json::Value;

use super::body::{ResponseUsage, stop_reason};
use crate::TextSink;
use crate::error::ProviderError;
use crate::http::Http;
use crate::sse::{SseDecoder, SseEvent};
use crate::types::{Block, ChatRequest, ChatResponse};
use crate::wire::{NameMap, parse_arguments};

/// Reads a streamed response to its end.
pub(crate) async fn read(
    http: &Http,
    mut resp: reqwest::Response,
    names: &NameMap,
    req: &ChatRequest,
    sink: &TextSink<'_>,
) -> Result<ChatResponse, ProviderError> {
    let mut decoder = SseDecoder::default();
    let mut state = State::default();
    'read: while let Some(events) = http.next_events(&mut resp, &mut decoder).await? {
        for ev in events {
            state.apply(http, &ev, sink)?;
            if state.done {
                break 'read;
            }
        }
    }
    if !state.done {
        return Err(ProviderError::StreamCut {
            provider: http.name.clone(),
            detail: cut_detail("it ended before `message_stop`", &decoder),
        });
    }
    Ok(state.finish(http, names, req))
}

/// A content block being assembled.
/// What was missing when a stream ended early.
fn cut_detail(missing: &str, decoder: &SseDecoder) -> String {
    if decoder.has_pending() {
        format!("{missing}, in the middle of an event")
    } else {
        missing.to_owned()
    }
}

#[derive(Debug)]
enum Partial {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        initial: Value,
        json: String,
    },
    Other,
}

/// What the events said so far.
#[derive(Debug, Default)]
pub(crate) struct State {
    blocks: BTreeMap<u64, Partial>,
    stop: Option<String>,
    /// As the API reports it (`input_tokens` without the cache reads and writes).
    usage: ResponseUsage,
    /// Whether any event carried a `usage` (some compatible servers send none).
    usage_seen: bool,
    model: String,
    done: bool,
}

impl State {
    fn apply(
        &mut self,
        http: &Http,
        ev: &SseEvent,
        sink: &TextSink<'_>,
    ) -> Result<(), ProviderError> {
        let data: Value = serde_json::from_str(&ev.data).map_err(|e| {
            http.malformed(format!(
                "an event is not JSON ({e}): {}",
                crate::http::snippet(ev.data.as_bytes())
            ))
        })?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let msg = &data["message"];
                if let Some(m) = msg["model"].as_str() {
                    self.model = m.to_owned();
                }
                if msg["usage"].is_object() {
                    self.usage_seen = true;
                    self.usage = serde_json::from_value(msg["usage"].clone()).unwrap_or_default();
                }
            }
            "content_block_start" => {
                let index = index(http, &data)?;
                let block = &data["content_block"];
                let partial = match block["type"].as_str() {
                    Some("text") => {
                        Partial::Text(block["text"].as_str().unwrap_or_default().to_owned())
                    }
                    Some("tool_use") => Partial::ToolUse {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                        initial: block["input"].clone(),
                        json: String::new(),
                    },
                    _ => Partial::Other,
                };
                if let Partial::Text(t) = &partial
                    && !t.is_empty()
                {
                    sink(t);
                }
                self.blocks.insert(index, partial);
            }
            "content_block_delta" => {
                let index = index(http, &data)?;
                let delta = &data["delta"];
                match (self.blocks.get_mut(&index), delta["type"].as_str()) {
                    (Some(Partial::Text(text)), Some("text_delta")) => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        text.push_str(piece);
                        sink(piece);
                    }
                    (Some(Partial::ToolUse { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    (None, _) => {
                        return Err(http.malformed(format!(
                            "a delta for content block {index}, which was never started"
                        )));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = data["delta"]["stop_reason"].as_str() {
                    self.stop = Some(r.to_owned());
                }
                // Cumulative counts: each one given replaces the one of `message_start`.
                let usage = &data["usage"];
                self.usage_seen |= usage.is_object();
                let u = &mut self.usage;
                if let Some(out) = usage["output_tokens"].as_u64() {
                    u.output_tokens = out;
                }
                if let Some(n) = usage["input_tokens"].as_u64() {
                    u.input_tokens = u.input_tokens.max(n);
                }
                for (key, count) in [
                    (
                        "cache_creation_input_tokens",
                        &mut u.cache_creation_input_tokens,
                    ),
                    ("cache_read_input_tokens", &mut u.cache_read_input_tokens),
                ] {
                    if let Some(n) = usage[key].as_u64() {
                        *count = Some(count.unwrap_or(0).max(n));
                    }
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let err = &data["error"];
                let kind = err["type"].as_str().unwrap_or("error");
                let message = err["message"].as_str().unwrap_or("no message");
                return Err(ProviderError::StreamError {
                    provider: http.name.clone(),
                    message: http.scrub(&format!("{kind}: {message}")),
                    retryable: matches!(
                        kind,
                        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
                    ),
                });
            }
            "ping" | "content_block_stop" => {}
            other => tracing::debug!(provider = %http.name, event = other, "ignoring stream event"),
        }
        Ok(())
    }

    fn finish(self, http: &Http, names: &NameMap, req: &ChatRequest) -> ChatResponse {
        let content: Vec<Block> = self
            .blocks
            .into_values()
            .filter_map(|p| match p {
                Partial::Text(text) => Some(Block::Text { text }),
                Partial::ToolUse {
                    id,
                    name,
                    initial,
                    json,
                } => {
                    let input = if json.trim().is_empty() && initial.is_object() {
                        initial
                    } else {
                        parse_arguments(&http.name, &name, &json)
                    };
                    Some(Block::ToolUse {
                        id,
                        name: names.ours(&name),
                        input,
                    })
                }
                Partial::Other => None,
            })
            .collect();
        let stop = stop_reason(self.stop, &content);
        let reported = self.usage_seen.then(|| self.usage.usage());
        let usage = http.usage_or_estimate(reported, req, &content);
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

fn index(http: &Http, data: &Value) -> Result<u64, ProviderError> {
    data["index"]
        .as_u64()
        .ok_or_else(|| http.malformed(format!("a `{}` event without an index", data["type"])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use crate::types::Usage;
    use serde_json::json;
    use std::sync::Mutex;
    use std::time::Duration;

    fn http() -> Http {
        Http::new(
            "anthropic",
            "http://127.0.0.1:1",
            None,
            Duration::from_secs(1),
            RetryPolicy::default(),
            crate::gate::Gate::new("anthropic", None, None),
        )
        .unwrap()
    }

    fn req() -> ChatRequest {
        ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "claude-x".into(),
            system: "be brief".into(),
            messages: vec![crate::types::Message::user("hello")],
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: Default::default(),
        }
    }

    fn events(lines: &str) -> Vec<SseEvent> {
        SseDecoder::default().push(lines.as_bytes())
    }

    #[test]
    fn folds_the_documented_event_sequence() {
        let h = http();
        let seen = Mutex::new(String::new());
        let sink = |t: &str| seen.lock().unwrap().push_str(t);
        let mut st = State::default();
        let evs = events(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"noargs\",\"input\":{}}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        for ev in &evs {
            st.apply(&h, ev, &sink).unwrap();
        }
        assert!(st.done);
        let out = st.finish(&h, &NameMap::default(), &req());
        assert_eq!(*seen.lock().unwrap(), "Hello");
        assert_eq!(out.text(), "Hello");
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 25,
                output_tokens: 15,
                ..Usage::default()
            }
        );
        assert_eq!(out.model, "claude-x");
        let calls: Vec<_> = out.tool_uses().collect();
        assert_eq!(calls, vec![("toolu_9", "noargs", &json!({}))]);
    }

    #[test]
    fn cache_reads_and_writes_are_read_from_message_start_and_message_delta() {
        let h = http();
        let mut st = State::default();
        for ev in &events(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2000,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"ok\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2000,\"cache_read_input_tokens\":300,\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        )) {
            st.apply(&h, ev, &|_| {}).unwrap();
        }
        let out = st.finish(&h, &NameMap::default(), &req());
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 2312,
                output_tokens: 9,
                cache_read_tokens: 300,
                cache_write_tokens: 2000,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn a_stream_without_usage_gets_estimated_tokens() {
        let h = http();
        let mut st = State::default();
        for ev in &events(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"content\":[]}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hello there\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        )) {
            st.apply(&h, ev, &|_| {}).unwrap();
        }
        let out = st.finish(&h, &NameMap::default(), &req());
        // 8 + 5 bytes asked, 11 answered: about four bytes a token.
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 4,
                output_tokens: 3,
                estimated: true,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn error_events_are_classified() {
        let h = http();
        let mut st = State::default();
        let ev = &events(
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        )[0];
        let e = st.apply(&h, ev, &|_| {}).unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "anthropic reported an error in the stream: overloaded_error: Overloaded"
        );
        let ev = &events(
            "data: {\"type\": \"error\", \"error\": {\"type\": \"invalid_request_error\", \"message\": \"bad\"}}\n\n",
        )[0];
        assert!(!st.apply(&h, ev, &|_| {}).unwrap_err().is_retryable());
    }
}
