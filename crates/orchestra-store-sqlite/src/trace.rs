//! Trace records on SQLite: model turns, tool calls and routing decisions. System prompts and
//! message lists repeat across turns and runs, so each distinct one is stored once per session
//! in `trace_texts` (looked up by a hash of its bytes, then compared byte for byte) and turns
//! refer to it by id: a chain of a thousand runs of one prompt stores that prompt once.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{json_at, opt_u64_at, text_at, to_json, u32_at, u64_at};
use crate::writes::SidCache;
use crate::{Ctx, SqliteStore, sid};
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
fn text_id(conn: &Connection, ctx: &Ctx, sid: i64, body: &[u8]) -> Result<i64, StoreError> {
    let err = ctx.err("record a trace");
    let hash = fnv1a64(body);
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM trace_texts WHERE sid = ?1 AND hash = ?2 AND body = ?3 LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row(params![sid, hash, body], |r| r.get(0))
                .optional()
        })
        .map_err(&err)?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO trace_texts (sid, hash, body) VALUES (?1, ?2, ?3)")
        .and_then(|mut st| st.execute(params![sid, hash, body]))
        .map_err(&err)?;
    Ok(conn.last_insert_rowid())
}

/// Inserts trace records within the caller's transaction.
pub(crate) fn insert_trace(
    conn: &Connection,
    ctx: &Ctx,
    trace: &[TraceRecord],
) -> Result<(), StoreError> {
    let err = ctx.err("record a trace");
    let mut sids = SidCache::default();
    for r in trace {
        let sid = sids.get(conn, ctx, r.session())?;
        match r {
            TraceRecord::Turn(t) => {
                let system = text_id(conn, ctx, sid, t.system.as_bytes())?;
                let messages = text_id(conn, ctx, sid, t.messages.as_str().as_bytes())?;
                let answer = t.answer.as_str();
                let nums = [
                    int("step", t.step)?,
                    int("tokens_in", t.tokens_in)?,
                    int("tokens_out", t.tokens_out)?,
                    int("started_at", t.started_at)?,
                    int("duration_ms", t.duration_ms)?,
                ];
                conn.prepare_cached(
                    "INSERT INTO model_turns (sid, step, node, run_index, attempt, turn, model, \
                     system, messages, answer, stop, tokens_in, tokens_out, started_at, \
                     duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                     ?13, ?14, ?15)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        sid,
                        nums[0],
                        t.node,
                        t.run_index,
                        t.attempt,
                        t.turn,
                        t.model,
                        system,
                        messages,
                        answer.as_bytes(),
                        t.stop,
                        nums[1],
                        nums[2],
                        nums[3],
                        nums[4],
                    ])
                })
                .map_err(&err)?;
            }
            TraceRecord::Tool(t) => {
                let nums = [
                    int("step", t.step)?,
                    int("args_bytes", t.args_bytes)?,
                    int("result_bytes", t.result_bytes)?,
                    int("duration_ms", t.duration_ms)?,
                ];
                conn.prepare_cached(
                    "INSERT INTO tool_calls (sid, step, node, run_index, attempt, turn, idx, \
                     call_id, tool, args, args_bytes, result, result_bytes, is_error, \
                     duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                     ?13, ?14, ?15)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        sid,
                        nums[0],
                        t.node,
                        t.run_index,
                        t.attempt,
                        t.turn,
                        t.idx,
                        t.call_id,
                        t.tool,
                        t.args.as_bytes(),
                        nums[1],
                        t.result.as_bytes(),
                        nums[2],
                        t.is_error,
                        nums[3],
                    ])
                })
                .map_err(&err)?;
            }
            TraceRecord::Route(rt) => {
                let targets = to_json("route targets", &rt.targets)?;
                let step = int("step", rt.step)?;
                conn.prepare_cached(
                    "INSERT INTO routes (sid, step, from_node, condition, decision, targets, \
                     loop_round, loop_max) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        sid,
                        step,
                        rt.from,
                        rt.condition,
                        rt.decision,
                        targets,
                        rt.loop_round,
                        rt.loop_max,
                    ])
                })
                .map_err(&err)?;
            }
        }
    }
    Ok(())
}

/// Range checks of a batch of trace records, before anything is written.
pub(crate) fn validate_trace(trace: &[TraceRecord]) -> Result<(), StoreError> {
    trace.iter().try_for_each(validate::trace)
}

impl SqliteStore {
    pub(crate) fn record_trace_impl(&mut self, trace: &[TraceRecord]) -> Result<(), StoreError> {
        if trace.is_empty() {
            return Ok(());
        }
        validate_trace(trace)?;
        let (tx, ctx) = self.write_tx("record a trace")?;
        insert_trace(&tx, ctx, trace)?;
        tx.commit().map_err(ctx.err("record a trace"))
    }

    pub(crate) fn record_results_traced_impl(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        if trace.is_empty() {
            return self.record_results_impl(tasks, runs);
        }
        crate::writes::validate_results(tasks, runs)?;
        validate_trace(trace)?;
        let (tx, ctx) = self.write_tx("record finished tasks")?;
        crate::writes::insert_results(&tx, ctx, tasks, runs)?;
        insert_trace(&tx, ctx, trace)?;
        tx.commit().map_err(ctx.err("record finished tasks"))
    }

    pub(crate) fn trace_impl(&self, session: &str) -> Result<SessionTrace, StoreError> {
        let err = self.ctx.err("read a trace");
        let tx = self.read_tx("read a trace")?;
        let sid = sid(&tx, &self.ctx, session)?;
        // Turns share their system prompt: one `Arc` per distinct text.
        let mut systems: HashMap<i64, Arc<str>> = HashMap::new();
        let turns = tx
            .prepare_cached(
                "SELECT t.step, t.node, t.run_index, t.attempt, t.turn, t.model, t.system, \
                   s.body, m.body, t.answer, t.stop, t.tokens_in, t.tokens_out, t.started_at, \
                   t.duration_ms \
                 FROM model_turns t JOIN trace_texts s ON s.id = t.system \
                   JOIN trace_texts m ON m.id = t.messages \
                 WHERE t.sid = ?1 ORDER BY t.step, t.rowid",
            )
            .and_then(|mut st| {
                st.query_map([sid], |row| {
                    let sys_id: i64 = row.get(6)?;
                    let system = match systems.get(&sys_id) {
                        Some(s) => Arc::clone(s),
                        None => {
                            let s: Arc<str> = Arc::from(text_at(row, 7)?);
                            systems.insert(sys_id, Arc::clone(&s));
                            s
                        }
                    };
                    Ok(ModelTurnRecord {
                        session: session.to_owned(),
                        step: u64_at(row, 0)?,
                        node: row.get(1)?,
                        run_index: u32_at(row, 2)?,
                        attempt: u32_at(row, 3)?,
                        turn: u32_at(row, 4)?,
                        model: row.get(5)?,
                        system,
                        messages: json_at(row, 8)?,
                        answer: json_at(row, 9)?,
                        stop: row.get(10)?,
                        tokens_in: u64_at(row, 11)?,
                        tokens_out: u64_at(row, 12)?,
                        started_at: u64_at(row, 13)?,
                        duration_ms: u64_at(row, 14)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        let tools = tx
            .prepare_cached(
                "SELECT step, node, run_index, attempt, turn, idx, call_id, tool, args, \
                   args_bytes, result, result_bytes, is_error, duration_ms \
                 FROM tool_calls WHERE sid = ?1 ORDER BY step, rowid",
            )
            .and_then(|mut st| {
                st.query_map([sid], |row| {
                    Ok(ToolCallRecord {
                        session: session.to_owned(),
                        step: u64_at(row, 0)?,
                        node: row.get(1)?,
                        run_index: u32_at(row, 2)?,
                        attempt: u32_at(row, 3)?,
                        turn: u32_at(row, 4)?,
                        idx: u32_at(row, 5)?,
                        call_id: row.get(6)?,
                        tool: row.get(7)?,
                        args: text_at(row, 8)?,
                        args_bytes: u64_at(row, 9)?,
                        result: text_at(row, 10)?,
                        result_bytes: u64_at(row, 11)?,
                        is_error: row.get(12)?,
                        duration_ms: u64_at(row, 13)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        let routes = tx
            .prepare_cached(
                "SELECT step, from_node, condition, decision, targets, loop_round, loop_max \
                 FROM routes WHERE sid = ?1 ORDER BY step, rowid",
            )
            .and_then(|mut st| {
                st.query_map([sid], |row| {
                    let round = opt_u64_at(row, 5)?;
                    let max = opt_u64_at(row, 6)?;
                    Ok(RouteRecord {
                        session: session.to_owned(),
                        step: u64_at(row, 0)?,
                        from: row.get(1)?,
                        condition: row.get(2)?,
                        decision: row.get(3)?,
                        targets: json_at(row, 4)?,
                        loop_round: round.map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                        loop_max: max.map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(SessionTrace {
            turns,
            tools,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_store::Store;
    use orchestra_store::conformance::{model_turn, new_session};

    #[test]
    fn repeated_prompts_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path().join("t.db")).unwrap();
        s.create_session(&new_session("s", 1)).unwrap();
        let system = "You are a careful writer. ".repeat(40);
        let turns: Vec<TraceRecord> = (1..=50)
            .map(|step| TraceRecord::Turn(model_turn("s", step, "a", 0, &system)))
            .collect();
        s.record_trace(&turns).unwrap();
        s.record_trace(&turns[..1]).unwrap();
        let texts: i64 = s
            .conn
            .query_row("SELECT count(*) FROM trace_texts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(texts, 2, "one system prompt and one message list");
        let got = s.trace("s").unwrap();
        assert_eq!(got.turns.len(), 51);
        assert!(Arc::ptr_eq(&got.turns[0].system, &got.turns[50].system));
        assert_eq!(&*got.turns[49].system, system);
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325_u64.cast_signed());
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c_u64.cast_signed());
    }
}
