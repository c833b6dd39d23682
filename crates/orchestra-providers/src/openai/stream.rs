//! Chat Completions streaming: `data: {chunk}` lines with `delta.content` and `delta.tool_calls`
//! fragments (by index), a final usage chunk, then `data: [DONE]`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::body::{ResponseUsage, call_id, finish_reason};
use crate::TextSink;
use crate::error::ProviderError;
use crate::http::{Http, error_message, snippet};
use crate::sse::{SseDecoder, SseEvent};
use crate::types::{Block, ChatRequest, ChatResponse, Usage};
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
        if state.finish.is_none() {
            return Err(ProviderError::StreamCut {
                provider: http.name.clone(),
                detail: cut_detail("it ended before `data: [DONE]`", &decoder),
            });
        }
        tracing::warn!(provider = %http.name, "stream ended after its finish reason but without `data: [DONE]`");
    }
    Ok(state.into_response(http, names, req))
}

/// What was missing when a stream ended early.
fn cut_detail(missing: &str, decoder: &SseDecoder) -> String {
    if decoder.has_pending() {
        format!("{missing}, in the middle of an event")
    } else {
        missing.to_owned()
    }
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// What the chunks said so far.
#[derive(Debug, Default)]
struct State {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish: Option<String>,
    usage: Option<Usage>,
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
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(&ev.data).map_err(|e| {
            http.malformed(format!(
                "a chunk is not JSON ({e}): {}",
                snippet(ev.data.as_bytes())
            ))
        })?;
        if chunk.get("error").is_some() {
            return Err(ProviderError::StreamError {
                provider: http.name.clone(),
                message: http.scrub(&error_message(ev.data.as_bytes())),
                retryable: true,
            });
        }
        if let Some(m) = chunk["model"].as_str() {
            self.model = m.to_owned();
        }
        if chunk["usage"].is_object() {
            let u: ResponseUsage =
                serde_json::from_value(chunk["usage"].clone()).unwrap_or_default();
            self.usage = Some(u.into());
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(piece) = delta["content"].as_str()
            && !piece.is_empty()
        {
            self.text.push_str(piece);
            sink(piece);
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (i, c) in calls.iter().enumerate() {
                let index = c["index"].as_u64().unwrap_or(i as u64);
                let entry = self.calls.entry(index).or_default();
                if let Some(id) = c["id"].as_str()
                    && !id.is_empty()
                {
                    entry.id = Some(id.to_owned());
                }
                // Names arrive whole in the first fragment; some servers repeat them in every
                // fragment, which must not double them.
                if let Some(name) = c["function"]["name"].as_str()
                    && entry.name != name
                {
                    entry.name.push_str(name);
                }
                match &c["function"]["arguments"] {
                    Value::String(piece) => entry.arguments.push_str(piece),
                    Value::Object(_) => entry.arguments = c["function"]["arguments"].to_string(),
                    _ => {}
                }
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish = Some(reason.to_owned());
        }
        Ok(())
    }

    /// The answer; without a usage chunk (servers that ignore `stream_options`) its tokens
    /// are estimated.
    fn into_response(self, http: &Http, names: &NameMap, req: &ChatRequest) -> ChatResponse {
        let turn = req.assistant_turns();
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(Block::Text { text: self.text });
        }
        for (i, call) in self.calls.into_values().enumerate() {
            content.push(Block::ToolUse {
                id: call_id(call.id, turn, i),
                input: parse_arguments(&http.name, &call.name, &call.arguments),
                name: names.ours(&call.name),
            });
        }
        let stop = finish_reason(self.finish.as_deref(), &content);
        let usage = http.usage_or_estimate(self.usage, req, &content);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use crate::types::StopReason;
    use serde_json::json;
    use std::time::Duration;

    fn request() -> ChatRequest {
        ChatRequest {
            agent: "a".into(),
            run_index: 0,
            model: "qwen".into(),
            system: "You are terse.".into(),
            messages: vec![crate::types::Message::user("Say hi, twice.")],
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: Default::default(),
        }
    }

    fn http() -> Http {
        Http::new(
            "local",
            "http://127.0.0.1:1",
            None,
            Duration::from_secs(1),
            RetryPolicy::default(),
            crate::gate::Gate::new("local", None, None),
        )
        .unwrap()
    }

    #[test]
    fn a_stream_without_usage_gets_estimated_tokens() {
        let http = http();
        let text = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let mut st = State::default();
        for ev in SseDecoder::default().push(text.as_bytes()) {
            st.apply(&http, &ev, &|_| {}).unwrap();
        }
        let out = st.into_response(&http, &NameMap::default(), &request());
        // 14 + 14 bytes asked, 5 bytes answered: about four bytes a token.
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 7,
                output_tokens: 2,
                estimated: true,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn folds_content_and_tool_call_fragments() {
        let http = Http::new(
            "local",
            "http://127.0.0.1:1",
            None,
            Duration::from_secs(1),
            RetryPolicy::default(),
            crate::gate::Gate::new("local", None, None),
        )
        .unwrap();
        let text = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"app__read-file\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"pa\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"th\\\": \\\"a\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut st = State::default();
        for ev in SseDecoder::default().push(text.as_bytes()) {
            st.apply(&http, &ev, &|_| {}).unwrap();
        }
        assert!(st.done);
        let names = NameMap::default();
        let out = st.into_response(&http, &names, &request());
        assert_eq!(out.text(), "Hi");
        assert_eq!(out.stop, StopReason::ToolUse);
        assert_eq!(
            out.usage,
            Usage {
                input_tokens: 9,
                output_tokens: 4,
                ..Usage::default()
            }
        );
        let calls: Vec<_> = out.tool_uses().collect();
        assert_eq!(
            calls,
            vec![("call_a", "app__read-file", &json!({"path": "a"}))]
        );
    }
}
