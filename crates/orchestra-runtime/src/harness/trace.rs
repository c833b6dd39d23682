//! What the harness keeps of a run (see `orchestra_store::TraceRecord`): every model turn, with
//! the messages it added to the prompt, and every tool call with its arguments and result
//! (capped), on the call's trace log; and the `ModelTurn` event of each turn.

use std::time::Duration;

use orchestra_providers::{Block, ChatRequest, ChatResponse, Message, Role};
use orchestra_store::{ModelTurnRecord, ToolCallRecord, TraceJson, TraceRecord, cap_text};

use super::Harness;
use crate::events::{Event, millis};
use crate::runner::NodeCall;

/// Where a run's conversation stands in its trace: the next turn's number and how many of the
/// request's messages earlier turns covered.
#[derive(Debug, Default)]
pub(super) struct TurnCursor {
    turn: u32,
    sent: usize,
}

impl TurnCursor {
    /// The number of the turn about to be recorded.
    pub(super) fn turn(&self) -> u32 {
        self.turn
    }
}

/// Whether a message is already in the trace as a turn's answer or tool results.
fn kept_elsewhere(m: &Message) -> bool {
    m.role == Role::Assistant
        || (!m.content.is_empty()
            && m.content
                .iter()
                .all(|b| matches!(b, Block::ToolResult { .. })))
}

impl Harness {
    /// Records the model call of `req` that returned `resp` (started at `started_at`, taking
    /// `took`) and emits its event; moves the cursor to the next turn.
    pub(super) fn record_turn(
        &self,
        call: &NodeCall,
        cur: &mut TurnCursor,
        req: &ChatRequest,
        resp: &ChatResponse,
        started_at: u64,
        took: Duration,
    ) {
        let new: Vec<&Message> = req
            .messages
            .iter()
            .skip(cur.sent)
            .filter(|m| !kept_elsewhere(m))
            .collect();
        let tool_calls = resp
            .content
            .iter()
            .filter(|b| matches!(b, Block::ToolUse { .. }))
            .count()
            + resp.external_tool_calls.len();
        let duration_ms = millis(took);
        let provider = self
            .compiled
            .agents
            .get(call.agent_idx)
            .map(|a| a.model.provider.clone())
            .unwrap_or_default();
        self.events.emit(Event::ModelTurn {
            step: call.step,
            node: call.agent.to_string(),
            run_index: call.run_index,
            turn: cur.turn,
            provider,
            model: req.model.to_string(),
            duration_ms,
            tokens_in: resp.usage.input_tokens,
            tokens_out: resp.usage.output_tokens,
            tokens_estimated: resp.usage.estimated,
            stop: resp.stop.as_str().to_owned(),
            tool_calls: u32::try_from(tool_calls).unwrap_or(u32::MAX),
        });
        call.trace.push(TraceRecord::Turn(ModelTurnRecord {
            session: call.session.to_string(),
            step: call.step,
            node: call.agent.to_string(),
            run_index: call.run_index,
            attempt: call.attempt,
            turn: cur.turn,
            model: req.model.to_string(),
            system: std::sync::Arc::clone(&req.system),
            messages: TraceJson::new(&new),
            answer: TraceJson::new(&resp.content),
            stop: resp.stop.as_str().to_owned(),
            tokens_in: resp.usage.input_tokens,
            tokens_out: resp.usage.output_tokens,
            started_at,
            duration_ms,
        }));
        cur.sent = req.messages.len();
        cur.turn += 1;
    }

    /// Records tool call `idx` of turn `turn` (which took `duration_ms`) and emits its event.
    pub(super) fn record_tool(
        &self,
        call: &NodeCall,
        turn: u32,
        idx: usize,
        (id, name, args): (&str, &str, &str),
        (result, is_error): (&str, bool),
        duration_ms: u64,
    ) {
        self.events.emit(Event::ToolCalled {
            step: call.step,
            run_index: call.run_index,
            duration_ms,
            node: call.agent.to_string(),
            tool: name.to_owned(),
            is_error,
        });
        let (args, args_bytes) = cap_text(args);
        let (result, result_bytes) = cap_text(result);
        call.trace.push(TraceRecord::Tool(ToolCallRecord {
            session: call.session.to_string(),
            step: call.step,
            node: call.agent.to_string(),
            run_index: call.run_index,
            attempt: call.attempt,
            turn,
            idx: u32::try_from(idx).unwrap_or(u32::MAX),
            call_id: id.to_owned(),
            tool: name.to_owned(),
            args,
            args_bytes,
            result,
            result_bytes,
            is_error,
            duration_ms,
        }));
    }
}
