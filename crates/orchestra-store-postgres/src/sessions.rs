//! Sessions on PostgreSQL: create, look up (by id or unique prefix), list with totals, status,
//! meta, leases and deletion.

use postgres::{Client, GenericClient, Row};
use serde_json::{Map, Value};

use crate::ctx::{Cols, Ctx, to_json};
use orchestra_store::validate::{int, resolve_prefix};
use orchestra_store::{
    CostTally, LeaseOutcome, MAX_AMBIGUOUS_CANDIDATES, NewSession, Renewal, STOP_META,
    SessionFilter, SessionPipeline, SessionRecord, SessionStatus, SessionSummary, StopRequest,
    StoreError,
};

/// The columns of a [`SessionRecord`], from `sessions s JOIN pipelines p`.
const SESSION_COLUMNS: &str = "s.id, s.name, s.pipeline, s.pipeline_path, p.source, p.resolved, \
     s.pipeline_hash, s.inputs, s.parent_session, s.parent_checkpoint, s.created_at, s.status, \
     s.error, s.updated_at, s.meta, s.lease_owner, s.lease_until, s.parent_node";

fn session_from_row(cx: &Ctx, row: &Row) -> Result<SessionRecord, StoreError> {
    let c = Cols {
        row,
        cx,
        op: "read a session",
    };
    Ok(SessionRecord {
        id: c.text(0)?,
        name: c.opt_text(1)?,
        pipeline: c.text(2)?,
        pipeline_path: c.text(3)?,
        pipeline_source: c.bytes_text(4)?,
        resolved: c.bytes_text(5)?,
        pipeline_hash: c.text(6)?,
        inputs: c.json(7)?,
        parent_session: c.opt_text(8)?,
        parent_checkpoint: c.opt_u64(9)?,
        created_at: c.u64(10)?,
        status: c.status(11)?,
        error: c.opt_text(12)?,
        updated_at: c.u64(13)?,
        meta: c.json(14)?,
        lease_owner: c.opt_text(15)?,
        lease_until: c.opt_u64(16)?,
        parent_node: c.opt_text(17)?,
    })
}

/// The `sid` of session `id`, or `NotFound`; `FOR UPDATE` locks its row until the end of the
/// transaction.
pub(crate) fn sid(
    client: &mut impl GenericClient,
    cx: &Ctx,
    id: &str,
    for_update: bool,
) -> Result<i64, StoreError> {
    let sql = if for_update {
        "SELECT sid FROM sessions WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT sid FROM sessions WHERE id = $1"
    };
    client
        .query_opt(sql, &[&id])
        .map_err(cx.err("look up a session"))?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::not_found(id))
}

pub(crate) fn create(
    client: &mut Client,
    cx: &Ctx,
    s: &NewSession,
    now: u64,
) -> Result<(), StoreError> {
    let now = int("updated_at", now)?;
    let inputs = to_json("inputs", &s.inputs)?;
    let parent_checkpoint = s
        .parent_checkpoint
        .map(|c| int("parent_checkpoint", c))
        .transpose()?;
    let created_at = int("created_at", s.created_at)?;
    let err = cx.err("create a session");
    let mut tx = client.transaction().map_err(&err)?;
    let sid: Option<i64> = tx
        .query_opt(
            "INSERT INTO sessions (id, name, pipeline, pipeline_path, pipeline_hash, inputs, \
             parent_session, parent_checkpoint, status, meta, created_at, updated_at, \
             parent_node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '{}', $10, $11, $12) \
             ON CONFLICT (id) DO NOTHING RETURNING sid",
            &[
                &s.id,
                &s.name,
                &s.pipeline,
                &s.pipeline_path,
                &s.pipeline_hash,
                &inputs,
                &s.parent_session,
                &parent_checkpoint,
                &SessionStatus::Created.as_str(),
                &created_at,
                &now,
                &s.parent_node,
            ],
        )
        .map_err(&err)?
        .map(|r| r.get(0));
    let Some(sid) = sid else {
        return Err(StoreError::AlreadyExists { id: s.id.clone() });
    };
    tx.execute(
        "INSERT INTO pipelines (sid, source, resolved) VALUES ($1, $2, $3)",
        &[&sid, &s.pipeline_source.as_bytes(), &s.resolved.as_bytes()],
    )
    .map_err(&err)?;
    tx.commit().map_err(err)
}

pub(crate) fn get(
    client: &mut impl GenericClient,
    cx: &Ctx,
    id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    client
        .query_opt(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s JOIN pipelines p ON p.sid = s.sid \
                 WHERE s.id = $1"
            ),
            &[&id],
        )
        .map_err(cx.err("read a session"))?
        .map(|row| session_from_row(cx, &row))
        .transpose()
}

pub(crate) fn find(
    client: &mut Client,
    cx: &Ctx,
    query: &str,
) -> Result<SessionRecord, StoreError> {
    if let Some(s) = get(client, cx, query)? {
        return Ok(s);
    }
    // A prefix of the id, or of its random tail (what follows the last `-`). starts_with()
    // compares exactly (LIKE would interpret `%` and `_`); ids sort bytewise (`COLLATE "C"`).
    let limit = i64::try_from(MAX_AMBIGUOUS_CANDIDATES + 1).unwrap_or(i64::MAX);
    let candidates: Vec<String> = client
        .query(
            "SELECT id FROM sessions WHERE $1 <> '' AND (starts_with(id, $1) \
               OR starts_with(regexp_replace(id, '^.*-', ''), $1)) \
             ORDER BY id COLLATE \"C\" LIMIT $2",
            &[&query, &limit],
        )
        .map_err(cx.err("look up a session prefix"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let id = resolve_prefix(query, candidates)?;
    get(client, cx, &id)?.ok_or_else(|| StoreError::not_found(query))
}

pub(crate) fn list(
    client: &mut Client,
    cx: &Ctx,
    filter: &SessionFilter,
    now: u64,
) -> Result<Vec<SessionSummary>, StoreError> {
    let statuses: Option<Vec<&str>> =
        (!filter.statuses.is_empty()).then(|| filter.statuses.iter().map(|s| s.as_str()).collect());
    let before = filter
        .updated_before
        .map(|t| int("updated_before", t))
        .transpose()?;
    let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    // `meta` is JSON text that may hold `\u0000`, which PostgreSQL's JSON types refuse: it is
    // swapped for `\u0001` (still valid JSON, same keys) to look up the queue key.
    let op = "list sessions";
    let rows = client
        .query(
            "SELECT s.id, s.name, s.pipeline, s.status, s.created_at, s.updated_at, \
               coalesce(c.steps, 0), coalesce(c.n, 0), coalesce(n.tokens_in, 0), \
               coalesce(n.tokens_out, 0), s.parent_session, s.parent_checkpoint, s.error, \
               s.lease_owner, s.lease_until, coalesce(n.usd, 0.0), coalesce(n.priced, 0), \
               coalesce(n.unpriced, 0), s.parent_node, \
               (replace(s.meta, '\\u0000', '\\u0001')::json -> $5::text) IS NOT NULL \
             FROM sessions s \
             LEFT JOIN LATERAL (SELECT max(step) AS steps, count(*) AS n FROM checkpoints \
               WHERE sid = s.sid) c ON true \
             LEFT JOIN LATERAL (SELECT sum(tokens_in)::BIGINT AS tokens_in, \
               sum(tokens_out)::BIGINT AS tokens_out, sum(cost_usd) AS usd, \
               count(cost_usd) AS priced, count(*) - count(cost_usd) AS unpriced \
               FROM node_runs WHERE sid = s.sid) n ON true \
             WHERE ($1::TEXT[] IS NULL OR s.status = ANY($1)) \
               AND ($2::TEXT IS NULL OR s.pipeline = $2) \
               AND ($3::BIGINT IS NULL OR s.updated_at < $3) \
             ORDER BY s.created_at DESC, s.id COLLATE \"C\" ASC \
             LIMIT $4",
            &[
                &statuses,
                &filter.pipeline,
                &before,
                &limit,
                &orchestra_store::QUEUE_META,
            ],
        )
        .map_err(cx.err(op))?;
    rows.iter()
        .map(|row| {
            let c = Cols { row, cx, op };
            let lease_until = c.opt_u64(14)?;
            Ok(SessionSummary {
                id: c.text(0)?,
                name: c.opt_text(1)?,
                pipeline: c.text(2)?,
                status: c.status(3)?,
                created_at: c.u64(4)?,
                updated_at: c.u64(5)?,
                steps: c.u64(6)?,
                checkpoints: c.u64(7)?,
                tokens_in: c.u64(8)?,
                tokens_out: c.u64(9)?,
                cost: CostTally {
                    known_usd: c.f64(15)?,
                    priced_runs: c.u64(16)?,
                    unpriced_runs: c.u64(17)?,
                },
                parent_session: c.opt_text(10)?,
                parent_checkpoint: c.opt_u64(11)?,
                parent_node: c.opt_text(18)?,
                error: c.opt_text(12)?,
                lease_owner: c
                    .opt_text(13)?
                    .filter(|_| lease_until.is_some_and(|u| u > now)),
                queued: c.bool(19)?,
            })
        })
        .collect()
}

pub(crate) fn set_status(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    status: SessionStatus,
    error: Option<&str>,
    now: u64,
) -> Result<(), StoreError> {
    let now = int("updated_at", now)?;
    let changed = client
        .execute(
            "UPDATE sessions SET status = $2, error = $3, updated_at = $4 WHERE id = $1",
            &[&id, &status.as_str(), &error, &now],
        )
        .map_err(cx.err("set a session's status"))?;
    if changed == 0 {
        return Err(StoreError::not_found(id));
    }
    Ok(())
}

/// Replaces a session's pipeline (`Store::set_session_pipeline`): its name, path, hash, source
/// and resolved form, in one transaction.
pub(crate) fn set_pipeline(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    p: &SessionPipeline,
    now: u64,
) -> Result<(), StoreError> {
    let now = int("updated_at", now)?;
    let err = cx.err("replace a session's pipeline");
    let mut tx = client.transaction().map_err(&err)?;
    let sid: i64 = tx
        .query_opt(
            "UPDATE sessions SET pipeline = $2, pipeline_path = $3, pipeline_hash = $4, \
             updated_at = $5 WHERE id = $1 RETURNING sid",
            &[&id, &p.pipeline, &p.pipeline_path, &p.pipeline_hash, &now],
        )
        .map_err(&err)?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::not_found(id))?;
    tx.execute(
        "UPDATE pipelines SET source = $2, resolved = $3 WHERE sid = $1",
        &[&sid, &p.pipeline_source.as_bytes(), &p.resolved.as_bytes()],
    )
    .map_err(&err)?;
    tx.commit().map_err(err)
}

pub(crate) fn set_meta(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    key: &str,
    value: &Value,
    now: u64,
) -> Result<(), StoreError> {
    let now = int("updated_at", now)?;
    let op = "set session metadata";
    let err = cx.err(op);
    let mut tx = client.transaction().map_err(&err)?;
    let row = tx
        .query_opt("SELECT meta FROM sessions WHERE id = $1 FOR UPDATE", &[&id])
        .map_err(&err)?
        .ok_or_else(|| StoreError::not_found(id))?;
    let mut meta: Map<String, Value> = Cols { row: &row, cx, op }.json(0)?;
    meta.insert(key.to_owned(), value.clone());
    let meta = to_json("session metadata", &meta)?;
    tx.execute(
        "UPDATE sessions SET meta = $2, updated_at = $3 WHERE id = $1",
        &[&id, &meta, &now],
    )
    .map_err(&err)?;
    tx.commit().map_err(err)
}

pub(crate) fn acquire_lease(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    owner: &str,
    now: u64,
    until: u64,
) -> Result<LeaseOutcome, StoreError> {
    let until_sql = int("lease_until", until)?;
    let op = "acquire a session lease";
    let err = cx.err(op);
    let mut tx = client.transaction().map_err(&err)?;
    let row = tx
        .query_opt(
            "SELECT lease_owner, lease_until FROM sessions WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .map_err(&err)?
        .ok_or_else(|| StoreError::not_found(id))?;
    let c = Cols { row: &row, cx, op };
    if let (Some(holder), Some(held_until)) = (c.opt_text(0)?, c.opt_u64(1)?)
        && held_until > now
        && holder != owner
    {
        return Ok(LeaseOutcome::HeldBy {
            owner: holder,
            until: held_until,
        });
    }
    tx.execute(
        "UPDATE sessions SET lease_owner = $2, lease_until = $3 WHERE id = $1",
        &[&id, &owner, &until_sql],
    )
    .map_err(&err)?;
    tx.commit().map_err(err)?;
    Ok(LeaseOutcome::Acquired { until })
}

/// See [`orchestra_store::Store::claim_session`]: the oldest claimable row is locked with
/// `FOR UPDATE SKIP LOCKED` (a row another claimer holds is passed over, never waited for) and
/// taken by the same statement; the record is read back in the same transaction.
pub(crate) fn claim(
    client: &mut Client,
    cx: &Ctx,
    owner: &str,
    now: u64,
    until: u64,
) -> Result<Option<SessionRecord>, StoreError> {
    let (now, until) = (int("now", now)?, int("lease_until", until)?);
    let err = cx.err("claim a queued session");
    let mut tx = client.transaction().map_err(&err)?;
    // `meta` may hold `\u0000`, which `jsonb` refuses: swapped for `\u0001` (as in the list).
    let row = tx
        .query_opt(
            "WITH c AS (SELECT sid FROM sessions \
                 WHERE status IN ($4, $5) AND (lease_until IS NULL OR lease_until <= $2) \
                 AND (replace(meta, '\\u0000', '\\u0001')::jsonb -> $6::text) IS NOT NULL \
                 ORDER BY created_at, id COLLATE \"C\" LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE sessions s SET lease_owner = $1, lease_until = $3, status = $5, \
                 error = NULL, updated_at = $2 \
             FROM c WHERE s.sid = c.sid RETURNING s.id",
            &[
                &owner,
                &now,
                &until,
                &SessionStatus::Queued.as_str(),
                &SessionStatus::Running.as_str(),
                &orchestra_store::QUEUE_META,
            ],
        )
        .map_err(&err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: String = row.get(0);
    let rec = get(&mut tx, cx, &id)?;
    tx.commit().map_err(err)?;
    Ok(rec)
}

/// Extends `owner`'s lease and reads the stop request in the same statement.
pub(crate) fn renew_lease(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    owner: &str,
    until: u64,
) -> Result<Renewal, StoreError> {
    let until = int("lease_until", until)?;
    // `meta` may hold `\u0000`, which `json` refuses: swapped for `\u0001` (as in the list).
    let row = client
        .query_opt(
            "WITH s AS (SELECT sid FROM sessions WHERE id = $1), \
             u AS (UPDATE sessions SET lease_until = $3 \
                   WHERE sid = (SELECT sid FROM s) AND lease_owner = $2 \
                   RETURNING replace(meta, '\\u0000', '\\u0001')::json ->> $4::text AS stop) \
             SELECT (SELECT count(*) FROM u), (SELECT stop FROM u) FROM s",
            &[&id, &owner, &until, &STOP_META],
        )
        .map_err(cx.err("renew a session lease"))?
        .ok_or_else(|| StoreError::not_found(id))?;
    if row.get::<_, i64>(0) != 1 {
        return Ok(Renewal::Lost);
    }
    let stop: Option<String> = row.get(1);
    Ok(stop
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| StopRequest::from_value(&v))
        .map_or(Renewal::Held, Renewal::StopRequested))
}

pub(crate) fn release_lease(
    client: &mut Client,
    cx: &Ctx,
    id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    client
        .query_opt(
            "WITH s AS (SELECT sid FROM sessions WHERE id = $1), \
             u AS (UPDATE sessions SET lease_owner = NULL, lease_until = NULL \
                   WHERE sid = (SELECT sid FROM s) AND lease_owner = $2 RETURNING 1) \
             SELECT (SELECT count(*) FROM u) FROM s",
            &[&id, &owner],
        )
        .map_err(cx.err("release a session lease"))?
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found(id))
}

pub(crate) fn delete(client: &mut Client, cx: &Ctx, id: &str) -> Result<(), StoreError> {
    let deleted = client
        .execute("DELETE FROM sessions WHERE id = $1", &[&id])
        .map_err(cx.err("delete a session"))?;
    if deleted == 0 {
        return Err(StoreError::not_found(id));
    }
    Ok(())
}
