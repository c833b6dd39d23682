//! Per-step data on SQLite: task writes (the deltas), checkpoints and snapshots, node-run
//! usage and interactive messages.

use std::ops::RangeInclusive;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::codec::{
    json_at, opt_json, opt_json_at, opt_u64_at, status_at, to_json, u32_at, u64_at,
};
use super::{Ctx, SqliteStore, sid};
use crate::StoreError;
use crate::validate::{self, UPDATED_AT_RESOLUTION_MS, int};
use crate::{ChatMessageRecord, CheckpointInfo, CheckpointRecord, NodeRunRecord, TaskRecord};

/// Stores a finished task (a re-run after a crash replaces the partial record).
const INSERT_TASK: &str = "INSERT OR REPLACE INTO tasks (sid, step, task_idx, node, run_index, \
     status, writes, output, error, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Appends a node run; `seq` numbers the session's runs in insertion order.
const INSERT_NODE_RUN: &str = "INSERT INTO node_runs (sid, seq, step, node, run_index, \
     started_at, finished_at, duration_ms, tokens_in, tokens_out, tool_calls, retries, status, \
     error) VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM node_runs WHERE sid = ?1), \
     ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Resolves session ids to `sid`s, remembering the few a batch touches.
#[derive(Debug, Default)]
struct SidCache(Vec<(String, i64)>);

impl SidCache {
    fn get(&mut self, conn: &Connection, ctx: &Ctx, id: &str) -> Result<i64, StoreError> {
        if let Some((_, sid)) = self.0.iter().find(|(known, _)| known == id) {
            return Ok(*sid);
        }
        let found = sid(conn, ctx, id)?;
        self.0.push((id.to_owned(), found));
        Ok(found)
    }
}

fn task_from_row(session: &str, row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        session: session.to_owned(),
        step: u64_at(row, 0)?,
        task_idx: u32_at(row, 1)?,
        node: row.get(2)?,
        run_index: u32_at(row, 3)?,
        status: status_at(row, 4)?,
        writes: json_at(row, 5)?,
        output: json_at(row, 6)?,
        error: row.get(7)?,
        finished_at: u64_at(row, 8)?,
    })
}

/// Columns: step, parent_step, scheduler, snapshot state, repo_shas, nodes, created_at.
fn checkpoint_from_row(session: &str, row: &Row<'_>) -> rusqlite::Result<CheckpointRecord> {
    Ok(CheckpointRecord {
        session: session.to_owned(),
        step: u64_at(row, 0)?,
        parent_step: opt_u64_at(row, 1)?,
        scheduler: json_at(row, 2)?,
        snapshot: opt_json_at(row, 3)?,
        repo_shas: opt_json_at(row, 4)?,
        nodes: json_at(row, 5)?,
        created_at: u64_at(row, 6)?,
    })
}

impl SqliteStore {
    pub(super) fn record_results_impl(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError> {
        if tasks.is_empty() && runs.is_empty() {
            return Ok(());
        }
        for t in tasks {
            validate::task(t)?;
        }
        for r in runs {
            validate::node_run(r)?;
        }
        let (tx, ctx) = self.write_tx("record finished tasks")?;
        let err = ctx.err("record finished tasks");
        let mut sids = SidCache::default();
        if !tasks.is_empty() {
            let mut st = tx.prepare_cached(INSERT_TASK).map_err(&err)?;
            for t in tasks {
                let sid = sids.get(&tx, ctx, &t.session)?;
                st.execute(params![
                    sid,
                    int("step", t.step)?,
                    t.task_idx,
                    t.node,
                    t.run_index,
                    t.status.as_str(),
                    to_json("task writes", &t.writes)?,
                    to_json("task output", &t.output)?,
                    t.error,
                    int("finished_at", t.finished_at)?,
                ])
                .map_err(&err)?;
            }
        }
        if !runs.is_empty() {
            let mut st = tx.prepare_cached(INSERT_NODE_RUN).map_err(&err)?;
            for r in runs {
                let sid = sids.get(&tx, ctx, &r.session)?;
                st.execute(params![
                    sid,
                    int("step", r.step)?,
                    r.node,
                    r.run_index,
                    int("started_at", r.started_at)?,
                    int("finished_at", r.finished_at)?,
                    int("duration_ms", r.duration_ms)?,
                    int("tokens_in", r.tokens_in)?,
                    int("tokens_out", r.tokens_out)?,
                    int("tool_calls", r.tool_calls)?,
                    r.retries,
                    r.status.as_str(),
                    r.error,
                ])
                .map_err(&err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub(super) fn task_records_impl(
        &self,
        session: &str,
        steps: RangeInclusive<u64>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let err = self.ctx.err("read task records");
        let tx = self.read_tx("read task records")?;
        let sid = sid(&tx, &self.ctx, session)?;
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        // Steps beyond i64::MAX cannot be stored, so clamping the bounds loses nothing.
        let lo = i64::try_from(*steps.start()).unwrap_or(i64::MAX);
        let hi = i64::try_from(*steps.end()).unwrap_or(i64::MAX);
        let out = tx
            .prepare_cached(
                "SELECT step, task_idx, node, run_index, status, writes, output, error, \
                 finished_at FROM tasks WHERE sid = ?1 AND step BETWEEN ?2 AND ?3 \
                 ORDER BY step, task_idx",
            )
            .and_then(|mut st| {
                st.query_map(params![sid, lo, hi], |row| task_from_row(session, row))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }

    pub(super) fn commit_checkpoint_impl(
        &mut self,
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        validate::checkpoint(cp)?;
        let now = int("updated_at", self.clock.now_ms())?;
        let step = int("step", cp.step)?;
        let created_at = int("created_at", cp.created_at)?;
        let parent = cp.parent_step.map(|p| int("parent_step", p)).transpose()?;
        let scheduler = to_json("scheduler state", &cp.scheduler)?;
        let snapshot = opt_json("state snapshot", cp.snapshot.as_ref())?;
        let repo_shas = opt_json("repo shas", cp.repo_shas.as_ref())?;
        let nodes = to_json("checkpoint nodes", &cp.nodes)?;

        let (tx, ctx) = self.write_tx("commit a checkpoint")?;
        let err = ctx.err("commit a checkpoint");
        let sid = sid(&tx, ctx, &cp.session)?;
        let (exists, parent_exists, any): (bool, bool, bool) = tx
            .prepare_cached(
                "SELECT \
                   EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1 AND step = ?2), \
                   EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1 AND step = ?3), \
                   EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1)",
            )
            .and_then(|mut st| {
                st.query_row(params![sid, step, parent], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
            })
            .map_err(&err)?;
        if exists {
            return Err(StoreError::CheckpointExists {
                session: cp.session.clone(),
                step: cp.step,
            });
        }
        let parent_ok = if parent.is_some() {
            parent_exists
        } else {
            !any
        };
        if !parent_ok {
            return Err(validate::bad_parent(cp));
        }
        tx.prepare_cached(
            "INSERT INTO checkpoints (sid, step, parent_step, scheduler, repo_shas, nodes, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                sid, step, parent, scheduler, repo_shas, nodes, created_at
            ])
        })
        .map_err(&err)?;
        if let Some(state) = snapshot {
            tx.prepare_cached("INSERT INTO snapshots (sid, step, state) VALUES (?1, ?2, ?3)")
                .and_then(|mut st| st.execute(params![sid, step, state]))
                .map_err(&err)?;
        }
        // At most once per `UPDATED_AT_RESOLUTION_MS`: rewriting the session row on every step
        // would add a page to every checkpoint's transaction.
        tx.prepare_cached(
            "UPDATE sessions SET updated_at = ?2 WHERE sid = ?1 AND updated_at + ?3 <= ?2",
        )
        .and_then(|mut st| st.execute(params![sid, now, UPDATED_AT_RESOLUTION_MS.cast_signed()]))
        .map_err(&err)?;
        tx.commit().map_err(err)
    }

    pub(super) fn checkpoints_impl(
        &self,
        session: &str,
    ) -> Result<Vec<CheckpointInfo>, StoreError> {
        let err = self.ctx.err("list checkpoints");
        let tx = self.read_tx("list checkpoints")?;
        let sid = sid(&tx, &self.ctx, session)?;
        let out = tx
            .prepare_cached(
                "SELECT c.step, c.parent_step, \
                   EXISTS (SELECT 1 FROM snapshots s WHERE s.sid = c.sid AND s.step = c.step), \
                   c.repo_shas IS NOT NULL, c.nodes, c.created_at \
                 FROM checkpoints c WHERE c.sid = ?1 ORDER BY c.step",
            )
            .and_then(|mut st| {
                st.query_map([sid], |row| {
                    Ok(CheckpointInfo {
                        step: u64_at(row, 0)?,
                        parent_step: opt_u64_at(row, 1)?,
                        has_snapshot: row.get(2)?,
                        has_repo_shas: row.get(3)?,
                        nodes: json_at(row, 4)?,
                        created_at: u64_at(row, 5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }

    pub(super) fn checkpoint_impl(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        self.one_checkpoint(
            session,
            step,
            "read a checkpoint",
            "SELECT c.step, c.parent_step, c.scheduler, s.state, c.repo_shas, c.nodes, \
               c.created_at \
             FROM checkpoints c LEFT JOIN snapshots s ON s.sid = c.sid AND s.step = c.step \
             WHERE c.sid = ?1 AND c.step = ?2",
        )
    }

    pub(super) fn latest_snapshot_impl(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        self.one_checkpoint(
            session,
            step,
            "find a snapshot",
            "SELECT c.step, c.parent_step, c.scheduler, s.state, c.repo_shas, c.nodes, \
               c.created_at \
             FROM snapshots s JOIN checkpoints c ON c.sid = s.sid AND c.step = s.step \
             WHERE s.sid = ?1 AND s.step <= ?2 ORDER BY s.step DESC LIMIT 1",
        )
    }

    fn one_checkpoint(
        &self,
        session: &str,
        step: u64,
        op: &'static str,
        sql: &str,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        let err = self.ctx.err(op);
        let tx = self.read_tx(op)?;
        let sid = sid(&tx, &self.ctx, session)?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let out = tx
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_row(params![sid, step], |row| checkpoint_from_row(session, row))
                    .optional()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }

    pub(super) fn node_runs_impl(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError> {
        let err = self.ctx.err("read node runs");
        let tx = self.read_tx("read node runs")?;
        let sid = sid(&tx, &self.ctx, session)?;
        let out = tx
            .prepare_cached(
                "SELECT step, node, run_index, started_at, finished_at, duration_ms, tokens_in, \
                 tokens_out, tool_calls, retries, status, error \
                 FROM node_runs WHERE sid = ?1 ORDER BY step, seq",
            )
            .and_then(|mut st| {
                st.query_map([sid], |row| {
                    Ok(NodeRunRecord {
                        session: session.to_owned(),
                        step: u64_at(row, 0)?,
                        node: row.get(1)?,
                        run_index: u32_at(row, 2)?,
                        started_at: u64_at(row, 3)?,
                        finished_at: u64_at(row, 4)?,
                        duration_ms: u64_at(row, 5)?,
                        tokens_in: u64_at(row, 6)?,
                        tokens_out: u64_at(row, 7)?,
                        tool_calls: u64_at(row, 8)?,
                        retries: u32_at(row, 9)?,
                        status: status_at(row, 10)?,
                        error: row.get(11)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }

    pub(super) fn append_message_impl(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError> {
        validate::message(m)?;
        let created_at = int("created_at", m.created_at)?;
        let (tx, ctx) = self.write_tx("append a chat message")?;
        let err = ctx.err("append a chat message");
        let sid = sid(&tx, ctx, &m.session)?;
        tx.prepare_cached(
            "INSERT INTO messages (sid, node, run_index, turn, role, content, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                sid,
                m.node,
                m.run_index,
                m.turn,
                m.role,
                m.content,
                created_at
            ])
        })
        .map_err(&err)?;
        tx.commit().map_err(err)
    }

    pub(super) fn messages_impl(
        &self,
        session: &str,
        node: &str,
    ) -> Result<Vec<ChatMessageRecord>, StoreError> {
        let err = self.ctx.err("read chat messages");
        let tx = self.read_tx("read chat messages")?;
        let sid = sid(&tx, &self.ctx, session)?;
        let out = tx
            .prepare_cached(
                "SELECT run_index, turn, role, content, created_at FROM messages \
                 WHERE sid = ?1 AND node = ?2 ORDER BY run_index, turn, rowid",
            )
            .and_then(|mut st| {
                st.query_map(params![sid, node], |row| {
                    Ok(ChatMessageRecord {
                        session: session.to_owned(),
                        node: node.to_owned(),
                        run_index: u32_at(row, 0)?,
                        turn: u32_at(row, 1)?,
                        role: row.get(2)?,
                        content: row.get(3)?,
                        created_at: u64_at(row, 4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;
    use serde_json::json;

    use super::*;
    use crate::{NewSession, TaskStatus};

    fn session() -> NewSession {
        NewSession {
            id: "s".into(),
            name: None,
            pipeline: "p".into(),
            pipeline_path: "p.yaml".into(),
            pipeline_source: String::new(),
            resolved: "{}".into(),
            pipeline_hash: "h".into(),
            inputs: json!({}),
            parent_session: None,
            parent_checkpoint: None,
            created_at: 1,
        }
    }

    fn results(step: u64) -> (TaskRecord, NodeRunRecord) {
        let task = TaskRecord {
            session: "s".into(),
            step,
            task_idx: 0,
            node: "a".into(),
            run_index: 0,
            status: TaskStatus::Ok,
            writes: json!({}),
            output: json!("out"),
            error: None,
            finished_at: 1,
        };
        let run = NodeRunRecord {
            session: "s".into(),
            step,
            node: "a".into(),
            run_index: 0,
            started_at: 1,
            finished_at: 1,
            duration_ms: 0,
            tokens_in: 1,
            tokens_out: 1,
            tool_calls: 0,
            retries: 0,
            status: TaskStatus::Ok,
            error: None,
        };
        (task, run)
    }

    /// Each step reuses the prepared statements: SQLite compiles none of them again (it did for
    /// every step of the first session of a file, `sid` 1, before the planner was pinned).
    #[test]
    fn recording_steps_never_recompiles_statements() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path().join("o.db")).unwrap();
        crate::Store::create_session(&mut store, &session()).unwrap();
        for step in 1..=5 {
            let (task, run) = results(step);
            store.record_results_impl(&[task], &[run]).unwrap();
        }
        for sql in [INSERT_TASK, INSERT_NODE_RUN] {
            let st = store.conn.prepare_cached(sql).unwrap();
            assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
            assert_eq!(st.get_status(StatementStatus::Run), 5, "{sql}");
        }
    }
}
