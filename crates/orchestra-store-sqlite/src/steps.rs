//! Reading per-step data on SQLite (task writes, checkpoints and snapshots, node-run usage)
//! and interactive messages. The writes of a running step are in `writes.rs`.

use std::ops::RangeInclusive;

use rusqlite::{OptionalExtension, Row, params};

use crate::codec::{json_at, opt_json_at, opt_u64_at, status_at, u32_at, u64_at};
use crate::{SqliteStore, sid};
use orchestra_store::StoreError;
use orchestra_store::validate::{self, int};
use orchestra_store::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, NodeRunRecord, TaskRecord,
};

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
    pub(crate) fn task_records_impl(
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

    pub(crate) fn checkpoints_impl(
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

    pub(crate) fn checkpoint_impl(
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

    pub(crate) fn latest_snapshot_impl(
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

    pub(crate) fn node_runs_impl(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError> {
        let err = self.ctx.err("read node runs");
        let tx = self.read_tx("read node runs")?;
        let sid = sid(&tx, &self.ctx, session)?;
        let out = tx
            .prepare_cached(
                "SELECT step, node, run_index, started_at, finished_at, duration_ms, tokens_in, \
                 tokens_out, tool_calls, retries, status, error, cache_read_tokens, \
                 cache_write_tokens, cost_usd \
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
                        cache_read_tokens: u64_at(row, 12)?,
                        cache_write_tokens: u64_at(row, 13)?,
                        cost_usd: row.get(14)?,
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

    pub(crate) fn append_message_impl(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError> {
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

    pub(crate) fn messages_impl(
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
