//! What node runs did, kept for `orchestra show`: every model turn (the prompt as sent and the
//! answer), every tool call (arguments and result, capped) and the routing that followed a step.
//!
//! Prompts repeat across turns and runs, so a turn carries only what is new: the system prompt
//! (which backends store once per distinct text) and the messages appended since the previous
//! turn, other than that turn's answer and tool results (kept in its own records). The prompt
//! of turn N is the system prompt plus, for every turn up to N, its `messages`, then (before
//! the next turn) its `answer` and its tool calls' results.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Most bytes of a tool call's arguments or result that are kept; the rest is cut, and the
/// record keeps the original size.
pub const TRACE_TEXT_CAP: usize = 64 * 1024;

/// `text` cut to [`TRACE_TEXT_CAP`] bytes (at a character boundary), and its original size.
pub fn cap_text(text: &str) -> (String, u64) {
    let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
    if text.len() <= TRACE_TEXT_CAP {
        return (text.to_owned(), len);
    }
    let mut end = TRACE_TEXT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), len)
}

/// A JSON value kept as its compact text: a finished run's records wait in the store queue
/// alongside every other run's, and text is a fraction of the size of a `Value` tree. It
/// serializes as the JSON it holds (not as a string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceJson(Box<str>);

impl TraceJson {
    /// The compact JSON text of `value` (`null` if it cannot be serialized).
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Self {
        TraceJson(
            serde_json::to_string(value)
                .unwrap_or_else(|_| "null".to_owned())
                .into_boxed_str(),
        )
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, parsed (`null` if the text is not JSON, which [`TraceJson::new`] and
    /// deserializing never produce).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl From<Value> for TraceJson {
    fn from(value: Value) -> Self {
        TraceJson::new(&value)
    }
}

impl Serialize for TraceJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value: Value = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TraceJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(TraceJson::from)
    }
}

/// One model call of a node run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelTurnRecord {
    /// The session id.
    pub session: String,
    /// The step the run is in.
    pub step: u64,
    /// The node (agent).
    pub node: String,
    /// How many times the node ran before this run.
    pub run_index: u32,
    /// 0 for the run's first attempt, then 1, 2, ... for retries.
    pub attempt: u32,
    /// 0 for the attempt's first model call, then 1, 2, ...
    pub turn: u32,
    /// The model asked for.
    pub model: String,
    /// The system prompt as sent.
    pub system: Arc<str>,
    /// The messages appended since the previous turn, other than its answer and tool results
    /// (a JSON array of `{role, content: [blocks]}`).
    pub messages: TraceJson,
    /// The answer's content blocks (a JSON array).
    pub answer: TraceJson,
    /// Why the model stopped (`end_turn`, `tool_use`, ...).
    pub stop: String,
    /// Input tokens.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// When the call started.
    pub started_at: u64,
    /// Wall time of the call.
    pub duration_ms: u64,
}

/// One tool call of a model turn, with its arguments and result (each capped at
/// [`TRACE_TEXT_CAP`]; `args_bytes`/`result_bytes` say how long they were).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The session id.
    pub session: String,
    /// The step the run is in.
    pub step: u64,
    /// The node (agent).
    pub node: String,
    /// How many times the node ran before this run.
    pub run_index: u32,
    /// The attempt of the run.
    pub attempt: u32,
    /// The model turn that asked for it.
    pub turn: u32,
    /// Its position among the turn's tool calls.
    pub idx: u32,
    /// The provider's id of the call.
    pub call_id: String,
    /// The tool's full name.
    pub tool: String,
    /// The arguments as JSON text (cut when longer than the cap).
    pub args: String,
    /// The length of the arguments' JSON text.
    pub args_bytes: u64,
    /// What the tool returned (cut when longer than the cap).
    pub result: String,
    /// The length of the whole result.
    pub result_bytes: u64,
    /// Whether the tool reported an error.
    pub is_error: bool,
    /// How long it took.
    pub duration_ms: u64,
}

impl ToolCallRecord {
    /// Whether the arguments were cut.
    pub fn args_cut(&self) -> bool {
        (self.args.len() as u64) < self.args_bytes
    }

    /// Whether the result was cut.
    pub fn result_cut(&self) -> bool {
        (self.result.len() as u64) < self.result_bytes
    }
}

/// Where the session went after a node: one fired edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// The session id.
    pub session: String,
    /// The step of the node that finished.
    pub step: u64,
    /// The node the edge leaves.
    pub from: String,
    /// The edge's condition, when it has one.
    pub condition: Option<String>,
    /// What the condition decided (its rule's value, `default`, ...).
    pub decision: Option<String>,
    /// The targets chosen (`END` ends the session).
    pub targets: Vec<String>,
    /// The loop round the edge started (1-based), when it is a bounded loop that looped.
    pub loop_round: Option<u32>,
    /// The edge's `max_loops`.
    pub loop_max: Option<u32>,
}

/// One record of what happened in a session (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TraceRecord {
    /// A model call.
    Turn(ModelTurnRecord),
    /// A tool call.
    Tool(ToolCallRecord),
    /// A routing decision.
    Route(RouteRecord),
}

impl TraceRecord {
    /// The session it belongs to.
    pub fn session(&self) -> &str {
        match self {
            TraceRecord::Turn(t) => &t.session,
            TraceRecord::Tool(t) => &t.session,
            TraceRecord::Route(r) => &r.session,
        }
    }

    /// The step it belongs to.
    pub fn step(&self) -> u64 {
        match self {
            TraceRecord::Turn(t) => t.step,
            TraceRecord::Tool(t) => t.step,
            TraceRecord::Route(r) => r.step,
        }
    }
}

/// Everything recorded of a session's runs, each list ordered by step, then as recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionTrace {
    /// Model turns.
    pub turns: Vec<ModelTurnRecord>,
    /// Tool calls.
    pub tools: Vec<ToolCallRecord>,
    /// Routing decisions.
    pub routes: Vec<RouteRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_json_keeps_compact_text_and_serializes_as_the_json_it_holds() {
        let v = serde_json::json!([{"type": "text", "text": "hi \"there\""}, {"n": 1.5}]);
        let j = TraceJson::from(v.clone());
        assert_eq!(j.as_str(), serde_json::to_string(&v).unwrap_or_default());
        assert_eq!(j.value(), v);
        let wrapped = serde_json::json!({"answer": v});
        let text =
            serde_json::to_string(&serde_json::json!({"answer": j.value()})).unwrap_or_default();
        let back: std::collections::BTreeMap<String, TraceJson> =
            serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back.get("answer"), Some(&j), "read back as the same text");
        assert_eq!(
            serde_json::to_value(&back).unwrap_or(Value::Null),
            wrapped,
            "written as JSON, not as a string"
        );
        assert_eq!(TraceJson::new(&Vec::<u8>::new()).as_str(), "[]");
    }

    #[test]
    fn long_texts_are_cut_at_a_char_boundary_and_keep_their_size() {
        assert_eq!(cap_text("short"), ("short".to_owned(), 5));
        let long = "é".repeat(TRACE_TEXT_CAP); // two bytes each
        let (cut, size) = cap_text(&long);
        assert_eq!(size, 2 * TRACE_TEXT_CAP as u64);
        assert_eq!(cut.len(), TRACE_TEXT_CAP);
        assert!(long.starts_with(&cut));
        let odd = format!("a{long}");
        let (cut, _) = cap_text(&odd);
        assert_eq!(cut.len(), TRACE_TEXT_CAP - 1, "not inside a character");
    }
}
