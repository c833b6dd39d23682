//! What a running session writes on SQLite at every step: finished tasks and their node runs,
//! the checkpoint, or both in one transaction (`commit_step`), so that a step of one agent
//! costs one commit.

use rusqlite::{Connection, OptionalExtension as _, params};
use serde_json::Value;

use crate::blob::{Target, json_len, sql_len, write_json};
use crate::codec::{opt_json, to_json};
use crate::{Ctx, SqliteStore, sid};
use orchestra_store::StoreError;
use orchestra_store::validate::{self, UPDATED_AT_RESOLUTION_MS, int};
use orchestra_store::{
    CheckpointRecord, Fence, NodeRunRecord, TaskRecord, TraceRecord, fenced_sessions,
};

/// Stores a finished task (a re-run after a crash replaces the partial record).
const INSERT_TASK: &str = "INSERT OR REPLACE INTO tasks (sid, step, task_idx, node, run_index, \
     status, writes, output, error, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Appends a node run; `seq` numbers the session's runs in insertion order.
const INSERT_NODE_RUN: &str = "INSERT INTO node_runs (sid, seq, step, node, run_index, \
     started_at, finished_at, duration_ms, tokens_in, tokens_out, tool_calls, retries, status, \
     error, cache_read_tokens, cache_write_tokens, cost_usd) \
     VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM node_runs WHERE sid = ?1), \
     ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Resolves session ids to `sid`s, remembering the few a batch touches.
#[derive(Debug, Default)]
pub(crate) struct SidCache(Vec<(String, i64)>);

impl SidCache {
    pub(crate) fn get(
        &mut self,
        conn: &Connection,
        ctx: &Ctx,
        id: &str,
    ) -> Result<i64, StoreError> {
        if let Some((_, sid)) = self.0.iter().find(|(known, _)| known == id) {
            return Ok(*sid);
        }
        let found = sid(conn, ctx, id)?;
        self.0.push((id.to_owned(), found));
        Ok(found)
    }
}

/// A checkpoint checked for range and encoded, ready to insert. The snapshot is only measured:
/// it is streamed into its row (see `blob.rs`).
struct Encoded<'a> {
    step: i64,
    parent: Option<i64>,
    created_at: i64,
    scheduler: String,
    snapshot: Option<(&'a Value, usize)>,
    repo_shas: Option<String>,
    nodes: String,
}

impl<'a> Encoded<'a> {
    fn new(cp: &'a CheckpointRecord) -> Result<Self, StoreError> {
        validate::checkpoint(cp)?;
        Ok(Encoded {
            step: int("step", cp.step)?,
            parent: cp.parent_step.map(|p| int("parent_step", p)).transpose()?,
            created_at: int("created_at", cp.created_at)?,
            scheduler: to_json("scheduler state", &cp.scheduler)?,
            snapshot: cp
                .snapshot
                .as_ref()
                .map(|s| json_len(SNAPSHOT, s).map(|len| (s, len)))
                .transpose()?,
            repo_shas: opt_json("repo shas", cp.repo_shas.as_ref())?,
            nodes: to_json("checkpoint nodes", &cp.nodes)?,
        })
    }
}

/// What a snapshot is called in errors.
const SNAPSHOT: &str = "state snapshot";

/// Range checks of a batch of results, before anything is written.
pub(crate) fn validate_results(
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
) -> Result<(), StoreError> {
    for t in tasks {
        validate::task(t)?;
    }
    for r in runs {
        validate::node_run(r)?;
    }
    Ok(())
}

/// Inserts tasks and node runs within the caller's transaction.
pub(crate) fn insert_results(
    conn: &Connection,
    ctx: &Ctx,
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
) -> Result<(), StoreError> {
    let err = ctx.err("record finished tasks");
    let mut sids = SidCache::default();
    if !tasks.is_empty() {
        let mut st = conn.prepare_cached(INSERT_TASK).map_err(&err)?;
        for t in tasks {
            let sid = sids.get(conn, ctx, &t.session)?;
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
        let mut st = conn.prepare_cached(INSERT_NODE_RUN).map_err(&err)?;
        for r in runs {
            let sid = sids.get(conn, ctx, &r.session)?;
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
                int("cache_read_tokens", r.cache_read_tokens)?,
                int("cache_write_tokens", r.cache_write_tokens)?,
                r.cost_usd,
            ])
            .map_err(&err)?;
        }
    }
    Ok(())
}

/// Why the store refuses checkpoint `cp` of session `sid` (it exists, or its parent is not an
/// earlier checkpoint), if it does.
fn refusal(
    conn: &Connection,
    ctx: &Ctx,
    sid: i64,
    cp: &CheckpointRecord,
    e: &Encoded<'_>,
) -> Result<Option<StoreError>, StoreError> {
    let (exists, parent_exists, any): (bool, bool, bool) = conn
        .prepare_cached(
            "SELECT \
               EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1 AND step = ?2), \
               EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1 AND step = ?3), \
               EXISTS (SELECT 1 FROM checkpoints WHERE sid = ?1)",
        )
        .and_then(|mut st| {
            st.query_row(params![sid, e.step, e.parent], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .map_err(ctx.err("commit a checkpoint"))?;
    if exists {
        return Ok(Some(StoreError::CheckpointExists {
            session: cp.session.clone(),
            step: cp.step,
        }));
    }
    let parent_ok = if e.parent.is_some() {
        parent_exists
    } else {
        !any
    };
    Ok((!parent_ok).then(|| validate::bad_parent(cp)))
}

/// Inserts an accepted checkpoint (and its snapshot) within the caller's transaction.
fn insert_checkpoint(
    conn: &Connection,
    ctx: &Ctx,
    sid: i64,
    e: Encoded<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let err = ctx.err("commit a checkpoint");
    conn.prepare_cached(
        "INSERT INTO checkpoints (sid, step, parent_step, scheduler, repo_shas, nodes, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut st| {
        st.execute(params![
            sid,
            e.step,
            e.parent,
            e.scheduler,
            e.repo_shas,
            e.nodes,
            e.created_at
        ])
    })
    .map_err(&err)?;
    if let Some((state, len)) = e.snapshot {
        let len = sql_len(SNAPSHOT, len)?;
        conn.prepare_cached(
            "INSERT INTO snapshots (sid, step, state) VALUES (?1, ?2, zeroblob(?3))",
        )
        .and_then(|mut st| st.execute(params![sid, e.step, len]))
        .map_err(&err)?;
        let target = Target {
            table: "snapshots",
            column: "state",
            rowid: conn.last_insert_rowid(),
            op: "commit a checkpoint",
        };
        write_json(conn, ctx, &target, SNAPSHOT, state)?;
    }
    // At most once per `UPDATED_AT_RESOLUTION_MS`: rewriting the session row on every step
    // would add a page to every checkpoint's transaction.
    conn.prepare_cached(
        "UPDATE sessions SET updated_at = ?2 WHERE sid = ?1 AND updated_at + ?3 <= ?2",
    )
    .and_then(|mut st| st.execute(params![sid, now, UPDATED_AT_RESOLUTION_MS.cast_signed()]))
    .map_err(&err)?;
    Ok(())
}

impl SqliteStore {
    pub(crate) fn record_results_impl(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError> {
        if tasks.is_empty() && runs.is_empty() {
            return Ok(());
        }
        validate_results(tasks, runs)?;
        let (tx, ctx) = self.write_tx("record finished tasks")?;
        insert_results(&tx, ctx, tasks, runs)?;
        tx.commit().map_err(ctx.err("record finished tasks"))
    }

    pub(crate) fn commit_checkpoint_impl(
        &mut self,
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        let encoded = Encoded::new(cp)?;
        let now = int("updated_at", self.clock.now_ms())?;
        let (tx, ctx) = self.write_tx("commit a checkpoint")?;
        let sid = sid(&tx, ctx, &cp.session)?;
        if let Some(refused) = refusal(&tx, ctx, sid, cp, &encoded)? {
            return Err(refused);
        }
        insert_checkpoint(&tx, ctx, sid, encoded, now)?;
        tx.commit().map_err(ctx.err("commit a checkpoint"))
    }

    /// [`orchestra_store::Store::commit_step`] in one transaction: records first; a refused checkpoint
    /// leaves them stored.
    pub(crate) fn commit_step_impl(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        self.commit_fenced_impl(None, tasks, runs, &[], Some(cp))
    }

    /// [`orchestra_store::Store::commit_fenced`] (and, without a fence, `commit_step`) in one
    /// transaction. The write lock is taken up front (`BEGIN IMMEDIATE`), so the lease owners
    /// read here cannot change before the commit; a lost lease rolls everything back.
    pub(crate) fn commit_fenced_impl(
        &mut self,
        fence: Option<Fence<'_>>,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        cp: Option<&CheckpointRecord>,
    ) -> Result<(), StoreError> {
        validate_results(tasks, runs)?;
        crate::trace::validate_trace(trace)?;
        let encoded = cp.map(|cp| (cp, Encoded::new(cp)));
        let now = int("updated_at", self.clock.now_ms())?;
        let (tx, ctx) = self.write_tx("commit a step")?;
        if let Some(fence) = fence {
            for id in fenced_sessions(tasks, runs, trace, cp) {
                let owner: Option<Option<String>> = tx
                    .prepare_cached("SELECT lease_owner FROM sessions WHERE id = ?1")
                    .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
                    .map_err(ctx.err("check the session lease"))?;
                let owner = owner.ok_or_else(|| StoreError::not_found(id))?;
                fence.check_owner(id, owner.as_deref())?;
            }
        }
        insert_results(&tx, ctx, tasks, runs)?;
        if !trace.is_empty() {
            crate::trace::insert_trace(&tx, ctx, trace)?;
        }
        let refused = match encoded {
            None => None,
            Some((_, Err(e))) => Some(e),
            Some((cp, Ok(encoded))) => {
                let sid = sid(&tx, ctx, &cp.session)?;
                let refused = refusal(&tx, ctx, sid, cp, &encoded)?;
                if refused.is_none() {
                    insert_checkpoint(&tx, ctx, sid, encoded, now)?;
                }
                refused
            }
        };
        tx.commit().map_err(ctx.err("commit a step"))?;
        refused.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
