//! Sessions on SQLite: create, look up (by id or unique prefix), list with totals, status,
//! meta, leases and deletion.

use std::time::Duration;

use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Map, Value};

use crate::blob::{Target, sql_len, write_bytes};
use crate::codec::{json_at, opt_u64_at, status_at, text_at, to_json, u64_at};
use crate::{SqliteStore, sid};
use orchestra_store::StoreError;
use orchestra_store::validate::resolve_prefix;
use orchestra_store::validate::{self, int};
use orchestra_store::{
    CostTally, LeaseOutcome, MAX_AMBIGUOUS_CANDIDATES, NewSession, Renewal, STOP_META,
    SessionFilter, SessionPipeline, SessionRecord, SessionStatus, SessionSummary, StopRequest,
};

/// The columns of a [`SessionRecord`], from `sessions s JOIN pipelines p`.
const SESSION_COLUMNS: &str = "s.id, s.name, s.pipeline, s.pipeline_path, p.source, p.resolved, \
     s.pipeline_hash, s.inputs, s.parent_session, s.parent_checkpoint, s.created_at, s.status, \
     s.error, s.updated_at, s.meta, s.lease_owner, s.lease_until, s.parent_node";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        pipeline: row.get(2)?,
        pipeline_path: row.get(3)?,
        pipeline_source: row.get(4)?,
        resolved: text_at(row, 5)?,
        pipeline_hash: row.get(6)?,
        inputs: json_at(row, 7)?,
        parent_session: row.get(8)?,
        parent_checkpoint: opt_u64_at(row, 9)?,
        created_at: u64_at(row, 10)?,
        status: status_at(row, 11)?,
        error: row.get(12)?,
        updated_at: u64_at(row, 13)?,
        meta: json_at(row, 14)?,
        lease_owner: row.get(15)?,
        lease_until: opt_u64_at(row, 16)?,
        parent_node: row.get(17)?,
    })
}

impl SqliteStore {
    pub(crate) fn create_session_impl(&mut self, s: &NewSession) -> Result<(), StoreError> {
        validate::new_session(s)?;
        let now = int("updated_at", self.clock.now_ms())?;
        let inputs = to_json("inputs", &s.inputs)?;
        let parent_checkpoint = s
            .parent_checkpoint
            .map(|c| int("parent_checkpoint", c))
            .transpose()?;
        let created_at = int("created_at", s.created_at)?;
        let (tx, ctx) = self.write_tx("create a session")?;
        let err = ctx.err("create a session");
        let inserted = tx
            .prepare_cached(
                "INSERT INTO sessions (id, name, pipeline, pipeline_path, pipeline_hash, inputs, \
                 parent_session, parent_checkpoint, status, meta, created_at, updated_at, \
                 parent_node) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}', ?10, ?11, ?12) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.id,
                    s.name,
                    s.pipeline,
                    s.pipeline_path,
                    s.pipeline_hash,
                    inputs,
                    s.parent_session,
                    parent_checkpoint,
                    SessionStatus::Created.as_str(),
                    created_at,
                    now,
                    s.parent_node,
                ])
            })
            .map_err(&err)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists { id: s.id.clone() });
        }
        let sid = tx.last_insert_rowid();
        let resolved_len = sql_len("resolved pipeline length", s.resolved.len())?;
        // The resolved pipeline is copied into its row as it is (a megabyte for a thousand
        // agents), not bound as a parameter.
        tx.prepare_cached(
            "INSERT INTO pipelines (sid, source, resolved) VALUES (?1, ?2, zeroblob(?3))",
        )
        .and_then(|mut st| st.execute(params![sid, s.pipeline_source, resolved_len]))
        .map_err(&err)?;
        let target = Target {
            table: "pipelines",
            column: "resolved",
            rowid: sid,
            op: "create a session",
        };
        write_bytes(&tx, ctx, &target, s.resolved.as_bytes())?;
        tx.commit().map_err(err)
    }

    pub(crate) fn session_impl(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s JOIN pipelines p ON p.sid = s.sid \
                 WHERE s.id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], session_from_row).optional())
            .map_err(self.ctx.err("read a session"))
    }

    pub(crate) fn find_session_impl(
        &self,
        id_or_prefix: &str,
    ) -> Result<SessionRecord, StoreError> {
        if let Some(s) = self.session_impl(id_or_prefix)? {
            return Ok(s);
        }
        // A prefix of the id, or of its random tail (what follows the last `-`:
        // `rtrim(id, <every character of id but '-'>)` is the id up to that `-`). substr()
        // compares bytes exactly (LIKE/GLOB would interpret `%`, `_`, `*`).
        let candidates = self
            .conn
            .prepare_cached(
                "SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1 \
                 OR substr(id, length(rtrim(id, replace(id, '-', ''))) + 1, length(?1)) = ?1 \
                 ORDER BY id LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(
                    params![id_or_prefix, MAX_AMBIGUOUS_CANDIDATES as i64 + 1],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.ctx.err("look up a session prefix"))?;
        let id = resolve_prefix(id_or_prefix, candidates)?;
        self.session_impl(&id)?
            .ok_or_else(|| StoreError::not_found(id_or_prefix))
    }

    pub(crate) fn list_sessions_impl(
        &self,
        filter: &SessionFilter,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let now = self.clock.now_ms();
        let statuses = if filter.statuses.is_empty() {
            None
        } else {
            let names: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
            Some(to_json("status filter", &names)?)
        };
        let before = filter
            .updated_before
            .map(|t| int("updated_before", t))
            .transpose()?;
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = "SELECT s.id, s.name, s.pipeline, s.status, s.created_at, s.updated_at, \
               (SELECT coalesce(max(c.step), 0) FROM checkpoints c WHERE c.sid = s.sid), \
               (SELECT count(*) FROM checkpoints c WHERE c.sid = s.sid), \
               (SELECT coalesce(sum(n.tokens_in), 0) FROM node_runs n WHERE n.sid = s.sid), \
               (SELECT coalesce(sum(n.tokens_out), 0) FROM node_runs n WHERE n.sid = s.sid), \
               s.parent_session, s.parent_checkpoint, s.error, s.lease_owner, s.lease_until, \
               (SELECT coalesce(sum(n.cost_usd), 0.0) FROM node_runs n WHERE n.sid = s.sid), \
               (SELECT count(n.cost_usd) FROM node_runs n WHERE n.sid = s.sid), \
               (SELECT count(*) - count(n.cost_usd) FROM node_runs n WHERE n.sid = s.sid), \
               s.parent_node, json_extract(s.meta, '$.' || ?5) IS NOT NULL \
             FROM sessions s \
             WHERE (?1 IS NULL OR s.status IN (SELECT value FROM json_each(?1))) \
               AND (?2 IS NULL OR s.pipeline = ?2) \
               AND (?3 IS NULL OR s.updated_at < ?3) \
             ORDER BY s.created_at DESC, s.id ASC \
             LIMIT ?4";
        let queue = orchestra_store::QUEUE_META;
        let tx = self.read_tx("list sessions")?;
        let rows = tx
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_map(
                    params![statuses, filter.pipeline, before, limit, queue],
                    |row| {
                        let lease_owner: Option<String> = row.get(13)?;
                        let lease_until = opt_u64_at(row, 14)?;
                        Ok(SessionSummary {
                            id: row.get(0)?,
                            name: row.get(1)?,
                            pipeline: row.get(2)?,
                            status: status_at(row, 3)?,
                            created_at: u64_at(row, 4)?,
                            updated_at: u64_at(row, 5)?,
                            steps: u64_at(row, 6)?,
                            checkpoints: u64_at(row, 7)?,
                            tokens_in: u64_at(row, 8)?,
                            tokens_out: u64_at(row, 9)?,
                            cost: CostTally {
                                known_usd: row.get(15)?,
                                priced_runs: u64_at(row, 16)?,
                                unpriced_runs: u64_at(row, 17)?,
                            },
                            parent_session: row.get(10)?,
                            parent_checkpoint: opt_u64_at(row, 11)?,
                            parent_node: row.get(18)?,
                            error: row.get(12)?,
                            lease_owner: lease_owner
                                .filter(|_| lease_until.is_some_and(|u| u > now)),
                            queued: row.get(19)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.ctx.err("list sessions"))?;
        tx.finish().map_err(self.ctx.err("list sessions"))?;
        Ok(rows)
    }

    pub(crate) fn set_status_impl(
        &mut self,
        id: &str,
        status: SessionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = int("updated_at", self.clock.now_ms())?;
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE sessions SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, status.as_str(), error, now]))
            .map_err(self.ctx.err("set a session's status"))?;
        if changed == 0 {
            return Err(StoreError::not_found(id));
        }
        Ok(())
    }

    pub(crate) fn set_session_meta_impl(
        &mut self,
        id: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        let now = int("updated_at", self.clock.now_ms())?;
        let (tx, ctx) = self.write_tx("set session metadata")?;
        let err = ctx.err("set session metadata");
        let meta: Option<Map<String, Value>> = tx
            .prepare_cached("SELECT meta FROM sessions WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| json_at(r, 0)).optional())
            .map_err(&err)?;
        let mut meta = meta.ok_or_else(|| StoreError::not_found(id))?;
        meta.insert(key.to_owned(), value.clone());
        let meta = to_json("session metadata", &meta)?;
        tx.prepare_cached("UPDATE sessions SET meta = ?2, updated_at = ?3 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id, meta, now]))
            .map_err(&err)?;
        tx.commit().map_err(err)
    }

    pub(crate) fn set_session_pipeline_impl(
        &mut self,
        id: &str,
        p: &SessionPipeline,
    ) -> Result<(), StoreError> {
        let now = int("updated_at", self.clock.now_ms())?;
        let resolved_len = sql_len("resolved pipeline length", p.resolved.len())?;
        let (tx, ctx) = self.write_tx("replace a session's pipeline")?;
        let err = ctx.err("replace a session's pipeline");
        let sid: Option<i64> = tx
            .prepare_cached(
                "UPDATE sessions SET pipeline = ?2, pipeline_path = ?3, pipeline_hash = ?4, \
                 updated_at = ?5 WHERE id = ?1 RETURNING sid",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![id, p.pipeline, p.pipeline_path, p.pipeline_hash, now],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(&err)?;
        let sid = sid.ok_or_else(|| StoreError::not_found(id))?;
        tx.prepare_cached(
            "UPDATE pipelines SET source = ?2, resolved = zeroblob(?3) WHERE sid = ?1",
        )
        .and_then(|mut st| st.execute(params![sid, p.pipeline_source, resolved_len]))
        .map_err(&err)?;
        let target = Target {
            table: "pipelines",
            column: "resolved",
            rowid: sid,
            op: "replace a session's pipeline",
        };
        write_bytes(&tx, ctx, &target, p.resolved.as_bytes())?;
        tx.commit().map_err(err)
    }

    pub(crate) fn acquire_lease_impl(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = self.clock.now_ms();
        let until = validate::lease_until(now, ttl);
        let until_sql = int("lease_until", until)?;
        let (tx, ctx) = self.write_tx("acquire a session lease")?;
        let err = ctx.err("acquire a session lease");
        let current: Option<(Option<String>, Option<u64>)> = tx
            .prepare_cached("SELECT lease_owner, lease_until FROM sessions WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id], |r| Ok((r.get(0)?, opt_u64_at(r, 1)?)))
                    .optional()
            })
            .map_err(&err)?;
        let (holder, held_until) = current.ok_or_else(|| StoreError::not_found(id))?;
        if let (Some(holder), Some(held_until)) = (holder, held_until)
            && held_until > now
            && holder != owner
        {
            return Ok(LeaseOutcome::HeldBy {
                owner: holder,
                until: held_until,
            });
        }
        tx.prepare_cached("UPDATE sessions SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id, owner, until_sql]))
            .map_err(&err)?;
        tx.commit().map_err(err)?;
        Ok(LeaseOutcome::Acquired { until })
    }

    /// See [`orchestra_store::Store::claim_session`]: one `BEGIN IMMEDIATE` transaction (SQLite
    /// has one writer at a time) finds the session and takes it.
    pub(crate) fn claim_session_impl(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.now_ms();
        let (now_sql, until) = (
            int("now", now)?,
            int("lease_until", validate::lease_until(now, ttl))?,
        );
        let (tx, ctx) = self.write_tx("claim a queued session")?;
        let err = ctx.err("claim a queued session");
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT sid FROM sessions \
                 WHERE status IN (?1, ?2) AND (lease_until IS NULL OR lease_until <= ?3) \
                 AND json_extract(meta, '$.' || ?4) IS NOT NULL \
                 ORDER BY created_at, id LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        SessionStatus::Queued.as_str(),
                        SessionStatus::Running.as_str(),
                        now_sql,
                        orchestra_store::QUEUE_META
                    ],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(&err)?;
        let Some(sid) = found else {
            return Ok(None);
        };
        tx.prepare_cached(
            "UPDATE sessions SET lease_owner = ?2, lease_until = ?3, status = ?4, error = NULL, \
             updated_at = ?5 WHERE sid = ?1",
        )
        .and_then(|mut st| {
            st.execute(params![
                sid,
                owner,
                until,
                SessionStatus::Running.as_str(),
                now_sql
            ])
        })
        .map_err(&err)?;
        let rec = tx
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s JOIN pipelines p ON p.sid = s.sid \
                 WHERE s.sid = ?1"
            ))
            .and_then(|mut st| st.query_row([sid], session_from_row))
            .map_err(&err)?;
        tx.commit().map_err(err)?;
        Ok(Some(rec))
    }

    /// Extends `owner`'s lease and reads the stop request in the same statement.
    pub(crate) fn renew_lease_impl(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Renewal, StoreError> {
        let until = int(
            "lease_until",
            validate::lease_until(self.clock.now_ms(), ttl),
        )?;
        let (tx, ctx) = self.write_tx("renew a session lease")?;
        let err = ctx.err("renew a session lease");
        sid(&tx, ctx, id)?;
        let renewed: Option<Option<String>> = tx
            .prepare_cached(
                "UPDATE sessions SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 \
                 RETURNING json_extract(meta, '$.' || ?4)",
            )
            .and_then(|mut st| {
                st.query_row(params![id, owner, until, STOP_META], |r| r.get(0))
                    .optional()
            })
            .map_err(&err)?;
        tx.commit().map_err(err)?;
        Ok(match renewed {
            None => Renewal::Lost,
            Some(stop) => stop
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|v| StopRequest::from_value(&v))
                .map_or(Renewal::Held, Renewal::StopRequested),
        })
    }

    pub(crate) fn release_lease_impl(&mut self, id: &str, owner: &str) -> Result<(), StoreError> {
        let (tx, ctx) = self.write_tx("release a session lease")?;
        let err = ctx.err("release a session lease");
        sid(&tx, ctx, id)?;
        tx.prepare_cached(
            "UPDATE sessions SET lease_owner = NULL, lease_until = NULL \
             WHERE id = ?1 AND lease_owner = ?2",
        )
        .and_then(|mut st| st.execute(params![id, owner]))
        .map_err(&err)?;
        tx.commit().map_err(err)
    }

    pub(crate) fn delete_session_impl(&mut self, id: &str) -> Result<(), StoreError> {
        let (tx, ctx) = self.write_tx("delete a session")?;
        let err = ctx.err("delete a session");
        let deleted = tx
            .prepare_cached("DELETE FROM sessions WHERE id = ?1")
            .and_then(|mut st| st.execute([id]))
            .map_err(&err)?;
        if deleted == 0 {
            return Err(StoreError::not_found(id));
        }
        // Give the freed pages back to the file system (auto_vacuum=INCREMENTAL).
        // Each step of the pragma frees one page, so it is stepped to the end.
        tx.prepare("PRAGMA incremental_vacuum")
            .and_then(|mut st| {
                let mut rows = st.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            })
            .map_err(&err)?;
        tx.commit().map_err(err)
    }
}
