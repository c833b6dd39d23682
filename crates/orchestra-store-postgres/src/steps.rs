//! What a step records on PostgreSQL: task writes (the checkpoint deltas), node runs,
//! checkpoints with their snapshots, and interactive chat.

use std::collections::HashMap;

use postgres::{Client, GenericClient, Row, Transaction};

use crate::ctx::{Cols, Ctx, to_json};
use crate::sessions::sid;
use orchestra_store::validate::{self, UPDATED_AT_RESOLUTION_MS, int};
use orchestra_store::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, NodeRunRecord, StoreError, TaskRecord,
};

/// The `sid`s of the sessions a batch names, looked up once each.
#[derive(Debug, Default)]
pub(crate) struct Sids(HashMap<String, i64>);

impl Sids {
    pub(crate) fn get(
        &mut self,
        client: &mut impl GenericClient,
        cx: &Ctx,
        id: &str,
    ) -> Result<i64, StoreError> {
        if let Some(sid) = self.0.get(id) {
            return Ok(*sid);
        }
        let found = sid(client, cx, id, false)?;
        self.0.insert(id.to_owned(), found);
        Ok(found)
    }
}

pub(crate) fn validate_results(
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
) -> Result<(), StoreError> {
    tasks.iter().try_for_each(validate::task)?;
    runs.iter().try_for_each(validate::node_run)
}

/// Inserts tasks (replacing a record with the same key) and node runs in the caller's
/// transaction.
pub(crate) fn insert_results(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
) -> Result<(), StoreError> {
    let err = cx.err("record finished tasks");
    let mut sids = Sids::default();
    for t in tasks {
        let sid = sids.get(tx, cx, &t.session)?;
        tx.execute(
            "INSERT INTO tasks (sid, step, task_idx, node, run_index, status, writes, output, \
             error, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (sid, step, task_idx) DO UPDATE SET node = EXCLUDED.node, \
             run_index = EXCLUDED.run_index, status = EXCLUDED.status, \
             writes = EXCLUDED.writes, output = EXCLUDED.output, error = EXCLUDED.error, \
             finished_at = EXCLUDED.finished_at",
            &[
                &sid,
                &int("step", t.step)?,
                &i64::from(t.task_idx),
                &t.node,
                &i64::from(t.run_index),
                &t.status.as_str(),
                &to_json("task writes", &t.writes)?,
                &to_json("task output", &t.output)?,
                &t.error,
                &int("finished_at", t.finished_at)?,
            ],
        )
        .map_err(&err)?;
    }
    for r in runs {
        let sid = sids.get(tx, cx, &r.session)?;
        tx.execute(
            "INSERT INTO node_runs (sid, step, node, run_index, started_at, finished_at, \
             duration_ms, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, \
             cost_usd, tool_calls, retries, status, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &sid,
                &int("step", r.step)?,
                &r.node,
                &i64::from(r.run_index),
                &int("started_at", r.started_at)?,
                &int("finished_at", r.finished_at)?,
                &int("duration_ms", r.duration_ms)?,
                &int("tokens_in", r.tokens_in)?,
                &int("tokens_out", r.tokens_out)?,
                &int("cache_read_tokens", r.cache_read_tokens)?,
                &int("cache_write_tokens", r.cache_write_tokens)?,
                &r.cost_usd,
                &int("tool_calls", r.tool_calls)?,
                &i64::from(r.retries),
                &r.status.as_str(),
                &r.error,
            ],
        )
        .map_err(&err)?;
    }
    Ok(())
}

pub(crate) fn record_results(
    client: &mut Client,
    cx: &Ctx,
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
) -> Result<(), StoreError> {
    if tasks.is_empty() && runs.is_empty() {
        return Ok(());
    }
    validate_results(tasks, runs)?;
    let err = cx.err("record finished tasks");
    let mut tx = client.transaction().map_err(&err)?;
    insert_results(&mut tx, cx, tasks, runs)?;
    tx.commit().map_err(err)
}

/// The `sid` of `cp`'s session, its row locked so that two committers of one step are ordered,
/// and why `cp` cannot be committed (a step already there, a missing parent), if it cannot:
/// one statement.
fn locked_refusal(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    cp: &CheckpointRecord,
) -> Result<(i64, Option<StoreError>), StoreError> {
    let step = int("step", cp.step)?;
    let parent = cp.parent_step.map(|p| int("parent_step", p)).transpose()?;
    let row = tx
        .query_opt(
            "SELECT s.sid, \
               EXISTS (SELECT 1 FROM checkpoints c WHERE c.sid = s.sid AND c.step = $2), \
               EXISTS (SELECT 1 FROM checkpoints c WHERE c.sid = s.sid AND c.step = $3), \
               EXISTS (SELECT 1 FROM checkpoints c WHERE c.sid = s.sid) \
             FROM sessions s WHERE s.id = $1 FOR UPDATE OF s",
            &[&cp.session, &step, &parent],
        )
        .map_err(cx.err("commit a checkpoint"))?
        .ok_or_else(|| StoreError::not_found(&cp.session))?;
    let (sid, exists, parent_exists, any): (i64, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if exists {
        let exists = StoreError::CheckpointExists {
            session: cp.session.clone(),
            step: cp.step,
        };
        return Ok((sid, Some(exists)));
    }
    let parent_ok = if parent.is_some() {
        parent_exists
    } else {
        !any
    };
    Ok((sid, (!parent_ok).then(|| validate::bad_parent(cp))))
}

fn insert_checkpoint(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    sid: i64,
    cp: &CheckpointRecord,
    now: i64,
) -> Result<(), StoreError> {
    let err = cx.err("commit a checkpoint");
    let step = int("step", cp.step)?;
    let parent = cp.parent_step.map(|p| int("parent_step", p)).transpose()?;
    let repo_shas = cp
        .repo_shas
        .as_ref()
        .map(|v| to_json("repo shas", v))
        .transpose()?;
    tx.execute(
        "INSERT INTO checkpoints (sid, step, parent_step, scheduler, repo_shas, nodes, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &sid,
            &step,
            &parent,
            &to_json("scheduler state", &cp.scheduler)?,
            &repo_shas,
            &to_json("checkpoint nodes", &cp.nodes)?,
            &int("created_at", cp.created_at)?,
        ],
    )
    .map_err(|e| {
        if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
            StoreError::CheckpointExists {
                session: cp.session.clone(),
                step: cp.step,
            }
        } else {
            err(e)
        }
    })?;
    if let Some(state) = &cp.snapshot {
        tx.execute(
            "INSERT INTO snapshots (sid, step, state) VALUES ($1, $2, $3)",
            &[&sid, &step, &to_json("state snapshot", state)?],
        )
        .map_err(&err)?;
    }
    let resolution = i64::try_from(UPDATED_AT_RESOLUTION_MS).unwrap_or(i64::MAX);
    tx.execute(
        "UPDATE sessions SET updated_at = $2 WHERE sid = $1 AND updated_at + $3 <= $2",
        &[&sid, &now, &resolution],
    )
    .map_err(&err)?;
    Ok(())
}

/// Commits `cp` in the caller's transaction under a savepoint: when it is refused or fails,
/// what the transaction did before is kept and the error is returned.
pub(crate) fn checkpoint_in(
    tx: &mut Transaction<'_>,
    cx: &Ctx,
    cp: &CheckpointRecord,
    now: i64,
) -> Result<(), StoreError> {
    validate::checkpoint(cp)?;
    let err = cx.err("commit a checkpoint");
    let mut sp = tx.savepoint("checkpoint").map_err(&err)?;
    let (sid, refused) = locked_refusal(&mut sp, cx, cp)?;
    if let Some(refused) = refused {
        return Err(refused);
    }
    insert_checkpoint(&mut sp, cx, sid, cp, now)?;
    sp.commit().map_err(err)
}

pub(crate) fn commit_checkpoint(
    client: &mut Client,
    cx: &Ctx,
    cp: &CheckpointRecord,
    now: u64,
) -> Result<(), StoreError> {
    validate::checkpoint(cp)?;
    let now = int("updated_at", now)?;
    let err = cx.err("commit a checkpoint");
    // No savepoint: a refusal rolls the whole transaction back, which holds only this.
    let mut tx = client.transaction().map_err(&err)?;
    let (sid, refused) = locked_refusal(&mut tx, cx, cp)?;
    if let Some(refused) = refused {
        return Err(refused);
    }
    insert_checkpoint(&mut tx, cx, sid, cp, now)?;
    tx.commit().map_err(err)
}

pub(crate) fn commit_step(
    client: &mut Client,
    cx: &Ctx,
    tasks: &[TaskRecord],
    runs: &[NodeRunRecord],
    cp: &CheckpointRecord,
    now: u64,
) -> Result<(), StoreError> {
    validate_results(tasks, runs)?;
    let now = int("updated_at", now)?;
    let err = cx.err("commit a step");
    let mut tx = client.transaction().map_err(&err)?;
    insert_results(&mut tx, cx, tasks, runs)?;
    let refused = checkpoint_in(&mut tx, cx, cp, now).err();
    tx.commit().map_err(err)?;
    refused.map_or(Ok(()), Err)
}

fn task_from_row(cx: &Ctx, session: &str, row: &Row) -> Result<TaskRecord, StoreError> {
    let c = Cols {
        row,
        cx,
        op: "read task records",
    };
    Ok(TaskRecord {
        session: session.to_owned(),
        step: c.u64(0)?,
        task_idx: c.u32(1)?,
        node: c.text(2)?,
        run_index: c.u32(3)?,
        status: c.status(4)?,
        writes: c.json(5)?,
        output: c.json(6)?,
        error: c.opt_text(7)?,
        finished_at: c.u64(8)?,
    })
}

pub(crate) fn task_records(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
    lo: u64,
    hi: u64,
) -> Result<Vec<TaskRecord>, StoreError> {
    let sid = sid(client, cx, session, false)?;
    if lo > hi {
        return Ok(Vec::new());
    }
    let lo = i64::try_from(lo).unwrap_or(i64::MAX);
    let hi = i64::try_from(hi).unwrap_or(i64::MAX);
    client
        .query(
            "SELECT step, task_idx, node, run_index, status, writes, output, error, \
             finished_at FROM tasks WHERE sid = $1 AND step BETWEEN $2 AND $3 \
             ORDER BY step, task_idx",
            &[&sid, &lo, &hi],
        )
        .map_err(cx.err("read task records"))?
        .iter()
        .map(|row| task_from_row(cx, session, row))
        .collect()
}

pub(crate) fn checkpoints(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
) -> Result<Vec<CheckpointInfo>, StoreError> {
    let op = "list checkpoints";
    let sid = sid(client, cx, session, false)?;
    client
        .query(
            "SELECT c.step, c.parent_step, \
               EXISTS (SELECT 1 FROM snapshots s WHERE s.sid = c.sid AND s.step = c.step), \
               c.repo_shas IS NOT NULL, c.nodes, c.created_at \
             FROM checkpoints c WHERE c.sid = $1 ORDER BY c.step",
            &[&sid],
        )
        .map_err(cx.err(op))?
        .iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            Ok(CheckpointInfo {
                step: c.u64(0)?,
                parent_step: c.opt_u64(1)?,
                has_snapshot: c.bool(2)?,
                has_repo_shas: c.bool(3)?,
                nodes: c.json(4)?,
                created_at: c.u64(5)?,
            })
        })
        .collect()
}

/// The checkpoint at `step` (`latest_snapshot`: the latest one at or before it that has a
/// snapshot).
pub(crate) fn checkpoint(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
    step: u64,
    latest_snapshot: bool,
) -> Result<Option<CheckpointRecord>, StoreError> {
    let op = if latest_snapshot {
        "find a snapshot"
    } else {
        "read a checkpoint"
    };
    let sid = sid(client, cx, session, false)?;
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let sql = if latest_snapshot {
        "SELECT c.step, c.parent_step, c.scheduler, s.state, c.repo_shas, c.nodes, c.created_at \
         FROM snapshots s JOIN checkpoints c ON c.sid = s.sid AND c.step = s.step \
         WHERE s.sid = $1 AND s.step <= $2 ORDER BY s.step DESC LIMIT 1"
    } else {
        "SELECT c.step, c.parent_step, c.scheduler, s.state, c.repo_shas, c.nodes, c.created_at \
         FROM checkpoints c LEFT JOIN snapshots s ON s.sid = c.sid AND s.step = c.step \
         WHERE c.sid = $1 AND c.step = $2"
    };
    let Some(row) = client.query_opt(sql, &[&sid, &step]).map_err(cx.err(op))? else {
        return Ok(None);
    };
    let c = Cols { row: &row, cx, op };
    Ok(Some(CheckpointRecord {
        session: session.to_owned(),
        step: c.u64(0)?,
        parent_step: c.opt_u64(1)?,
        scheduler: c.json(2)?,
        snapshot: c.opt_json(3)?,
        repo_shas: c.opt_json(4)?,
        nodes: c.json(5)?,
        created_at: c.u64(6)?,
    }))
}

pub(crate) fn node_runs(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
) -> Result<Vec<NodeRunRecord>, StoreError> {
    let op = "read node runs";
    let sid = sid(client, cx, session, false)?;
    client
        .query(
            "SELECT step, node, run_index, started_at, finished_at, duration_ms, tokens_in, \
             tokens_out, cache_read_tokens, cache_write_tokens, cost_usd, tool_calls, retries, \
             status, error FROM node_runs WHERE sid = $1 ORDER BY step, seq",
            &[&sid],
        )
        .map_err(cx.err(op))?
        .iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            Ok(NodeRunRecord {
                session: session.to_owned(),
                step: c.u64(0)?,
                node: c.text(1)?,
                run_index: c.u32(2)?,
                started_at: c.u64(3)?,
                finished_at: c.u64(4)?,
                duration_ms: c.u64(5)?,
                tokens_in: c.u64(6)?,
                tokens_out: c.u64(7)?,
                cache_read_tokens: c.u64(8)?,
                cache_write_tokens: c.u64(9)?,
                cost_usd: c.opt_f64(10)?,
                tool_calls: c.u64(11)?,
                retries: c.u32(12)?,
                status: c.status(13)?,
                error: c.opt_text(14)?,
            })
        })
        .collect()
}

pub(crate) fn append_message(
    client: &mut Client,
    cx: &Ctx,
    m: &ChatMessageRecord,
) -> Result<(), StoreError> {
    validate::message(m)?;
    let created_at = int("created_at", m.created_at)?;
    let inserted = client
        .execute(
            "INSERT INTO messages (sid, node, run_index, turn, role, content, created_at) \
             SELECT sid, $2, $3, $4, $5, $6, $7 FROM sessions WHERE id = $1",
            &[
                &m.session,
                &m.node,
                &i64::from(m.run_index),
                &i64::from(m.turn),
                &m.role,
                &m.content.as_bytes(),
                &created_at,
            ],
        )
        .map_err(cx.err("append a chat message"))?;
    if inserted == 0 {
        return Err(StoreError::not_found(&m.session));
    }
    Ok(())
}

pub(crate) fn messages(
    client: &mut Client,
    cx: &Ctx,
    session: &str,
    node: &str,
) -> Result<Vec<ChatMessageRecord>, StoreError> {
    let op = "read chat messages";
    let sid = sid(client, cx, session, false)?;
    client
        .query(
            "SELECT run_index, turn, role, content, created_at FROM messages \
             WHERE sid = $1 AND node = $2 ORDER BY run_index, turn, seq",
            &[&sid, &node],
        )
        .map_err(cx.err(op))?
        .iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            Ok(ChatMessageRecord {
                session: session.to_owned(),
                node: node.to_owned(),
                run_index: c.u32(0)?,
                turn: c.u32(1)?,
                role: c.text(2)?,
                content: c.bytes_text(3)?,
                created_at: c.u64(4)?,
            })
        })
        .collect()
}
