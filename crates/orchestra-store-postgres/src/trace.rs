//! Trace records on PostgreSQL: model turns, tool calls and routing decisions. System prompts
//! and message lists repeat across turns and runs, so each distinct one is stored once per
//! session in `trace_texts` (looked up by a hash of its bytes, then compared byte for byte) and
//! turns refer to it by id.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::{Client, IsolationLevel, Transaction};

use crate::ctx::{Cols, Ctx, to_json};
use crate::sessions::sid;
use crate::steps::{Sids, insert_results, validate_results};
use orchestra_store::validate::{self, int};
use orchestra_store::{
    ModelTurnRecord, NodeRunRecord, RouteRecord, SessionTrace, StoreError, TaskRecord,
    ToolCallRecord, TraceRecord,
};

/// 64-bit FNV-1a: stable across processes and versions (a collision only costs a comparison).
fn fnv1a64(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.cast_signed()
}

/// The id of `body` among session `sid`'s texts, stored now if it is new.
fn text_id(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    known: &mut HashMap<(i64, Vec<u8>), i64>,
    sid: i64,
    body: &[u8],
) -> Result<i64, StoreError> {
    if let Some(id) = known.get(&(sid, body.to_vec())) {
        return Ok(*id);
    }
    let err = cx.err("record a trace");
    let hash = fnv1a64(body);
    // Found, or else inserted: one statement.
    let id: i64 = tx
        .query_one(
            "WITH found AS (SELECT id FROM trace_texts \
               WHERE sid = $1 AND hash = $2 AND body = $3 LIMIT 1), \
             added AS (INSERT INTO trace_texts (sid, hash, body) \
               SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id) \
             SELECT id FROM found UNION ALL SELECT id FROM added",
            &[&sid, &hash, &body],
        )
        .map_err(&err)?
        .get(0);
    known.insert((sid, body.to_vec()), id);
    Ok(id)
}

/// Inserts trace records within the caller's transaction.
pub(crate) fn insert_trace(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    trace: &[TraceRecord],
) -> Result<(), StoreError> {
    let err = cx.err("record a trace");
    let mut sids = Sids::default();
    let mut texts = HashMap::new();
    for r in trace {
        let sid = sids.get(tx, cx, r.session())?;
        match r {
            TraceRecord::Turn(t) => {
                let system = text_id(tx, cx, &mut texts, sid, t.system.as_bytes())?;
                let messages = to_json("turn messages", &t.messages)?;
                let messages = text_id(tx, cx, &mut texts, sid, messages.as_bytes())?;
                tx.execute(
                    "INSERT INTO model_turns (sid, step, node, run_index, attempt, turn, model, \
                     system, messages, answer, stop, tokens_in, tokens_out, started_at, \
                     duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15)",
                    &[
                        &sid,
                        &int("step", t.step)?,
                        &t.node,
                        &i64::from(t.run_index),
                        &i64::from(t.attempt),
                        &i64::from(t.turn),
                        &t.model,
                        &system,
                        &messages,
                        &to_json("turn answer", &t.answer)?,
                        &t.stop,
                        &int("tokens_in", t.tokens_in)?,
                        &int("tokens_out", t.tokens_out)?,
                        &int("started_at", t.started_at)?,
                        &int("duration_ms", t.duration_ms)?,
                    ],
                )
                .map_err(&err)?;
            }
            TraceRecord::Tool(t) => {
                tx.execute(
                    "INSERT INTO tool_calls (sid, step, node, run_index, attempt, turn, idx, \
                     call_id, tool, args, args_bytes, result, result_bytes, is_error, \
                     duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15)",
                    &[
                        &sid,
                        &int("step", t.step)?,
                        &t.node,
                        &i64::from(t.run_index),
                        &i64::from(t.attempt),
                        &i64::from(t.turn),
                        &i64::from(t.idx),
                        &t.call_id,
                        &t.tool,
                        &t.args.as_bytes(),
                        &int("args_bytes", t.args_bytes)?,
                        &t.result.as_bytes(),
                        &int("result_bytes", t.result_bytes)?,
                        &t.is_error,
                        &int("duration_ms", t.duration_ms)?,
                    ],
                )
                .map_err(&err)?;
            }
            TraceRecord::Route(rt) => {
                tx.execute(
                    "INSERT INTO routes (sid, step, from_node, condition, decision, targets, \
                     loop_round, loop_max) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &sid,
                        &int("step", rt.step)?,
                        &rt.from,
                        &rt.condition,
                        &rt.decision,
                        &to_json("route targets", &rt.targets)?,
                        &rt.loop_round.map(i64::from),
                        &rt.loop_max.map(i64::from),
                    ],
                )
                .map_err(&err)?;
            }
        }
    }
    Ok(())
}

/// Stores tasks, node runs and trace records in one transaction.
pub(crate) fn record(
    client: &mut Client,
    cx: &Ctx,
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
    trace: &[TraceRecord],
) -> Result<(), StoreError> {
    if tasks.is_empty() && runs.is_empty() && trace.is_empty() {
        return Ok(());
    }
    validate_results(tasks, runs)?;
    trace.iter().try_for_each(validate::trace)?;
    let err = cx.err("record finished tasks");
    let mut tx = client.transaction().map_err(&err)?;
    insert_results(&mut tx, cx, tasks, runs)?;
    insert_trace(&mut tx, cx, trace)?;
    tx.commit().map_err(err)
}

/// The session's trace, read in one snapshot of the database.
pub(crate) fn read(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
) -> Result<SessionTrace, StoreError> {
    let op = "read a trace";
    let err = cx.err(op);
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(&err)?;
    let sid = sid(&mut tx, cx, session, false)?;
    // Turns share their system prompt: one `Arc` per distinct text.
    let mut systems: HashMap<i64, Arc<str>> = HashMap::new();
    let mut turns = Vec::new();
    for row in tx
        .query(
            "SELECT t.step, t.node, t.run_index, t.attempt, t.turn, t.model, t.system, \
               s.body, m.body, t.answer, t.stop, t.tokens_in, t.tokens_out, t.started_at, \
               t.duration_ms \
             FROM model_turns t JOIN trace_texts s ON s.id = t.system \
               JOIN trace_texts m ON m.id = t.messages \
             WHERE t.sid = $1 ORDER BY t.step, t.seq",
            &[&sid],
        )
        .map_err(&err)?
    {
        let c = Cols { row: &row, cx, op };
        let sys_id: i64 = row.get(6);
        let system = match systems.get(&sys_id) {
            Some(s) => Arc::clone(s),
            None => {
                let s: Arc<str> = Arc::from(c.bytes_text(7)?);
                systems.insert(sys_id, Arc::clone(&s));
                s
            }
        };
        let messages = c.bytes_text(8)?;
        turns.push(ModelTurnRecord {
            session: session.to_owned(),
            step: c.u64(0)?,
            node: c.text(1)?,
            run_index: c.u32(2)?,
            attempt: c.u32(3)?,
            turn: c.u32(4)?,
            model: c.text(5)?,
            system,
            messages: serde_json::from_str(&messages)
                .map_err(|e| cx.corrupt(op, format!("turn messages: {e}")))?,
            answer: c.json(9)?,
            stop: c.text(10)?,
            tokens_in: c.u64(11)?,
            tokens_out: c.u64(12)?,
            started_at: c.u64(13)?,
            duration_ms: c.u64(14)?,
        });
    }
    let tools = tx
        .query(
            "SELECT step, node, run_index, attempt, turn, idx, call_id, tool, args, \
               args_bytes, result, result_bytes, is_error, duration_ms \
             FROM tool_calls WHERE sid = $1 ORDER BY step, seq",
            &[&sid],
        )
        .map_err(&err)?
        .iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            Ok(ToolCallRecord {
                session: session.to_owned(),
                step: c.u64(0)?,
                node: c.text(1)?,
                run_index: c.u32(2)?,
                attempt: c.u32(3)?,
                turn: c.u32(4)?,
                idx: c.u32(5)?,
                call_id: c.text(6)?,
                tool: c.text(7)?,
                args: c.bytes_text(8)?,
                args_bytes: c.u64(9)?,
                result: c.bytes_text(10)?,
                result_bytes: c.u64(11)?,
                is_error: c.bool(12)?,
                duration_ms: c.u64(13)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let routes = tx
        .query(
            "SELECT step, from_node, condition, decision, targets, loop_round, loop_max \
             FROM routes WHERE sid = $1 ORDER BY step, seq",
            &[&sid],
        )
        .map_err(&err)?
        .iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            Ok(RouteRecord {
                session: session.to_owned(),
                step: c.u64(0)?,
                from: c.text(1)?,
                condition: c.opt_text(2)?,
                decision: c.opt_text(3)?,
                targets: c.json(4)?,
                loop_round: c.opt_u32(5)?,
                loop_max: c.opt_u32(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.commit().map_err(err)?;
    Ok(SessionTrace {
        turns,
        tools,
        routes,
    })
}
