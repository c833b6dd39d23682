//! The suite's checks of trace records: model turns, tool calls and routing decisions.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use std::sync::Arc;

use serde_json::json;

use super::{Ctx, new_session, node_run, task};
use crate::{
    ModelTurnRecord, RouteRecord, Store, StoreError, TRACE_TEXT_CAP, ToolCallRecord, TraceRecord,
    cap_text,
};

/// A model turn of `node` at `step` with `system` as its system prompt.
pub fn model_turn(
    session: &str,
    step: u64,
    node: &str,
    turn: u32,
    system: &str,
) -> ModelTurnRecord {
    ModelTurnRecord {
        session: session.to_owned(),
        step,
        node: node.to_owned(),
        run_index: 0,
        attempt: 0,
        turn,
        model: "m".to_owned(),
        system: Arc::from(system),
        messages: json!([{"role": "user", "content": [{"type": "text", "text": "Carry out your task now."}]}]).into(),
        answer: json!([{"type": "text", "text": format!("answer {step}.{turn}")}]).into(),
        stop: "end_turn".to_owned(),
        tokens_in: 12,
        tokens_out: 7,
        started_at: 100 + step,
        duration_ms: 3,
    }
}

/// A tool call of `node`'s turn `turn` at `step`.
pub fn tool_call(session: &str, step: u64, node: &str, turn: u32, idx: u32) -> ToolCallRecord {
    ToolCallRecord {
        session: session.to_owned(),
        step,
        node: node.to_owned(),
        run_index: 0,
        attempt: 0,
        turn,
        idx,
        call_id: format!("call_{idx}"),
        tool: "app:read-file".to_owned(),
        args: r#"{"path":"src/main.rs"}"#.to_owned(),
        args_bytes: 22,
        result: "fn main() {}".to_owned(),
        result_bytes: 12,
        is_error: false,
        duration_ms: 1,
    }
}

/// A routing decision after `from` at `step`.
pub fn route(session: &str, step: u64, from: &str, targets: &[&str]) -> RouteRecord {
    RouteRecord {
        session: session.to_owned(),
        step,
        from: from.to_owned(),
        condition: Some("verdict".to_owned()),
        decision: Some("revise".to_owned()),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        loop_round: Some(1),
        loop_max: Some(2),
    }
}

pub(super) fn trace_round_trip_and_order(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let other = cx.id("o");
    s.create_session(&new_session(&sid, 1)).unwrap();
    s.create_session(&new_session(&other, 1)).unwrap();
    assert_eq!(
        s.trace(&sid).unwrap(),
        Default::default(),
        "a session without trace"
    );
    let system = "You are the critic.\n\nCheck the findings.";
    let t2 = model_turn(&sid, 2, "critic", 0, system);
    let mut t2b = model_turn(&sid, 2, "critic", 1, system);
    t2b.messages = json!([]).into();
    t2b.answer =
        json!([{"type": "tool_use", "id": "c1", "name": "app:read-file", "input": {"path": "a"}}])
            .into();
    t2b.stop = "tool_use".to_owned();
    let t1 = model_turn(&sid, 1, "writer", 0, "You write.");
    let mut t1_retry = model_turn(&sid, 1, "writer", 0, "You write.");
    t1_retry.attempt = 1;
    let mut plain = route(&sid, 1, "writer", &["critic"]);
    plain.condition = None;
    plain.decision = None;
    plain.loop_round = None;
    plain.loop_max = None;
    let tool_err = ToolCallRecord {
        is_error: true,
        result: "unknown tool `nope`".to_owned(),
        result_bytes: 19,
        ..tool_call(&sid, 2, "critic", 1, 1)
    };
    // Out of step order, over two batches, with another session's records in between.
    s.record_trace(&[
        TraceRecord::Turn(t2.clone()),
        TraceRecord::Turn(t2b.clone()),
        TraceRecord::Tool(tool_call(&sid, 2, "critic", 1, 0)),
        TraceRecord::Tool(tool_err.clone()),
        TraceRecord::Turn(model_turn(&other, 1, "x", 0, system)),
        TraceRecord::Route(route(&sid, 2, "critic", &["a", "b"])),
    ])
    .unwrap();
    s.record_trace(&[
        TraceRecord::Turn(t1.clone()),
        TraceRecord::Turn(t1_retry.clone()),
        TraceRecord::Route(plain.clone()),
    ])
    .unwrap();
    let got = s.trace(&sid).unwrap();
    assert_eq!(got.turns, [t1, t1_retry, t2, t2b]);
    assert_eq!(got.tools, [tool_call(&sid, 2, "critic", 1, 0), tool_err]);
    assert_eq!(got.routes, [plain, route(&sid, 2, "critic", &["a", "b"])]);
    let o = s.trace(&other).unwrap();
    assert_eq!(o.turns.len(), 1);
    assert_eq!(&*o.turns[0].system, system, "texts are per session");
    assert!(o.tools.is_empty() && o.routes.is_empty());
}

pub(super) fn trace_batches_are_atomic_and_go_with_results(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let nope = cx.id("nope");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let err = s
        .record_trace(&[
            TraceRecord::Turn(model_turn(&sid, 1, "a", 0, "sys")),
            TraceRecord::Route(route(&nope, 1, "a", &["b"])),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(matches!(s.trace(&nope), Err(StoreError::NotFound { .. })));
    assert_eq!(s.trace(&sid).unwrap(), Default::default(), "nothing stored");

    let mut huge = model_turn(&sid, 1, "a", 0, "sys");
    huge.tokens_in = u64::MAX;
    let err = s
        .record_results_traced(
            &[task(&sid, 1, 0, "a")],
            &[node_run(&sid, 1, "a", 1, 1)],
            &[TraceRecord::Turn(huge)],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::OutOfRange { .. }), "{err:?}");
    assert!(s.task_records(&sid, 0..=9).unwrap().is_empty());
    assert!(s.node_runs(&sid).unwrap().is_empty());

    s.record_results_traced(
        &[task(&sid, 1, 0, "a")],
        &[node_run(&sid, 1, "a", 1, 1)],
        &[
            TraceRecord::Turn(model_turn(&sid, 1, "a", 0, "sys")),
            TraceRecord::Route(route(&sid, 1, "a", &["END"])),
        ],
    )
    .unwrap();
    assert_eq!(s.task_records(&sid, 0..=9).unwrap().len(), 1);
    assert_eq!(s.node_runs(&sid).unwrap().len(), 1);
    let got = s.trace(&sid).unwrap();
    assert_eq!((got.turns.len(), got.routes.len()), (1, 1));
    s.delete_session(&sid).unwrap();
    assert!(matches!(s.trace(&sid), Err(StoreError::NotFound { .. })));
}

pub(super) fn trace_texts_come_back_exactly(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let system = "Système: «ünïcode» \u{1F600}\n\ttabs and \"quotes\" and \\ backslashes";
    let long = "x".repeat(TRACE_TEXT_CAP + 100);
    let (cut, size) = cap_text(&long);
    let big = ToolCallRecord {
        result: cut,
        result_bytes: size,
        ..tool_call(&sid, 1, "a", 0, 0)
    };
    assert!(big.result_cut() && !big.args_cut());
    let mut turns = Vec::new();
    // The same system prompt and messages in many turns and runs, and a different one.
    for step in 1..=20 {
        let mut t = model_turn(&sid, step, "a", 0, system);
        t.run_index = u32::try_from(step).unwrap();
        turns.push(TraceRecord::Turn(t));
    }
    let mut other = model_turn(&sid, 21, "b", 0, "Another prompt.");
    other.messages = json!([]).into();
    turns.push(TraceRecord::Turn(other.clone()));
    turns.push(TraceRecord::Tool(big.clone()));
    s.record_trace(&turns).unwrap();
    let got = s.trace(&sid).unwrap();
    assert_eq!(got.turns.len(), 21);
    for (i, t) in got.turns.iter().take(20).enumerate() {
        assert_eq!(&*t.system, system);
        assert_eq!(t.run_index as usize, i + 1);
        assert_eq!(t.messages, model_turn(&sid, 1, "a", 0, system).messages);
    }
    assert_eq!(got.turns[20], other);
    assert_eq!(got.tools, [big]);
}
