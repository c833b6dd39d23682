//! The SQLite schema and its versioned migrations (`PRAGMA user_version`).
//!
//! `MIGRATIONS[i]` upgrades a database from version `i` to `i + 1`. Migrations only ever get
//! appended; a released one is never edited. Sessions get a small integer key (`sid`) so the
//! per-step tables repeat 1-2 bytes per row instead of the session id: rows stay small and the
//! database grows with what was written.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::Ctx;
use orchestra_store::StoreError;

/// `PRAGMA application_id` of orchestra databases ("ORCH").
pub(crate) const APPLICATION_ID: i64 = 0x4F52_4348;

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE sessions (
    sid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    pipeline TEXT NOT NULL,
    pipeline_path TEXT NOT NULL,
    pipeline_source TEXT NOT NULL,
    resolved TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    inputs TEXT NOT NULL,
    parent_session TEXT,
    parent_checkpoint INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    meta TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER
) STRICT;
CREATE INDEX sessions_by_created ON sessions (created_at);

CREATE TABLE tasks (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    task_idx INTEGER NOT NULL,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    writes TEXT NOT NULL,
    output TEXT NOT NULL,
    error TEXT,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (sid, step, task_idx)
) STRICT;

CREATE TABLE checkpoints (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    parent_step INTEGER,
    scheduler TEXT NOT NULL,
    repo_shas TEXT,
    nodes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (sid, step)
) STRICT, WITHOUT ROWID;

CREATE TABLE snapshots (
    sid INTEGER NOT NULL,
    step INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (sid, step),
    FOREIGN KEY (sid, step) REFERENCES checkpoints (sid, step) ON DELETE CASCADE
) STRICT;

CREATE TABLE node_runs (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    step INTEGER NOT NULL,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    tool_calls INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (sid, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE messages (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_by_node ON messages (sid, node, run_index, turn);
"#,
    // 2: the pipeline text and the resolved pipeline move out of the session row. They are
    // large (a megabyte for a pipeline of a thousand agents) and never change, while the
    // session row is updated all along a run (status, lease, `updated_at`): SQLite rewrites a
    // whole row on update and walks its overflow pages to reach the columns after them.
    r#"
CREATE TABLE pipelines (
    sid INTEGER PRIMARY KEY REFERENCES sessions (sid) ON DELETE CASCADE,
    source TEXT NOT NULL,
    resolved TEXT NOT NULL
) STRICT;
INSERT INTO pipelines (sid, source, resolved) SELECT sid, pipeline_source, resolved FROM sessions;
ALTER TABLE sessions DROP COLUMN pipeline_source;
ALTER TABLE sessions DROP COLUMN resolved;
"#,
    // 3: task records are stored in their key's b-tree (WITHOUT ROWID): a finished task
    // writes one b-tree page instead of a table page plus an index page.
    r#"
CREATE TABLE tasks_by_key (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    task_idx INTEGER NOT NULL,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    writes TEXT NOT NULL,
    output TEXT NOT NULL,
    error TEXT,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (sid, step, task_idx)
) STRICT, WITHOUT ROWID;
INSERT INTO tasks_by_key SELECT sid, step, task_idx, node, run_index, status, writes, output,
    error, finished_at FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_by_key RENAME TO tasks;
"#,
    // 4: state snapshots and resolved pipelines are BLOBs (of JSON text), so that they can be
    // streamed into their row instead of being copied twice by SQLite on the way in.
    r#"
CREATE TABLE snapshots_blob (
    sid INTEGER NOT NULL,
    step INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (sid, step),
    FOREIGN KEY (sid, step) REFERENCES checkpoints (sid, step) ON DELETE CASCADE
) STRICT;
INSERT INTO snapshots_blob SELECT sid, step, CAST(state AS BLOB) FROM snapshots;
DROP TABLE snapshots;
ALTER TABLE snapshots_blob RENAME TO snapshots;
CREATE TABLE pipelines_blob (
    sid INTEGER PRIMARY KEY REFERENCES sessions (sid) ON DELETE CASCADE,
    source TEXT NOT NULL,
    resolved BLOB NOT NULL
) STRICT;
INSERT INTO pipelines_blob SELECT sid, source, CAST(resolved AS BLOB) FROM pipelines;
DROP TABLE pipelines;
ALTER TABLE pipelines_blob RENAME TO pipelines;
"#,
    // 5: sessions stopped at a limit or interrupted get statuses of their own. Release 0.1
    // stored them as `failed` with the error `stopped: REASON` or `interrupted; ...`; the text
    // stays, as the session's note.
    r#"
UPDATE sessions SET status = 'stopped'
    WHERE status = 'failed' AND substr(error, 1, 9) = 'stopped: ';
UPDATE sessions SET status = 'interrupted'
    WHERE status = 'failed' AND substr(error, 1, 11) = 'interrupted';
"#,
    // 6: node runs keep the prompt-cache reads and writes apart (parts of `tokens_in`) and what
    // the run cost in US dollars: NULL when unknown (a model without a price, or a run stored
    // before costs were), never 0 for that.
    r#"
ALTER TABLE node_runs ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_runs ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE node_runs ADD COLUMN cost_usd REAL;
"#,
    // 7: what node runs did, for `orchestra show`: model turns, tool calls, routing. System
    // prompts and message lists repeat across turns and runs, so each distinct text is stored
    // once per session in `trace_texts` (found by a hash of its bytes) and turns refer to it.
    r#"
CREATE TABLE trace_texts (
    id INTEGER PRIMARY KEY,
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    hash INTEGER NOT NULL,
    body BLOB NOT NULL
) STRICT;
CREATE INDEX trace_texts_by_hash ON trace_texts (sid, hash);

CREATE TABLE model_turns (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    model TEXT NOT NULL,
    system INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    answer BLOB NOT NULL,
    stop TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX model_turns_by_step ON model_turns (sid, step);

CREATE TABLE tool_calls (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    node TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    args BLOB NOT NULL,
    args_bytes INTEGER NOT NULL,
    result BLOB NOT NULL,
    result_bytes INTEGER NOT NULL,
    is_error INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX tool_calls_by_step ON tool_calls (sid, step);

CREATE TABLE routes (
    sid INTEGER NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    from_node TEXT NOT NULL,
    condition TEXT,
    decision TEXT,
    targets TEXT NOT NULL,
    loop_round INTEGER,
    loop_max INTEGER
) STRICT;
CREATE INDEX routes_by_step ON routes (sid, step);
"#,
    // 8: child sessions (run by a call node) name that node of their `parent_session`; forks
    // and top-level sessions have none. Children are looked up by their parent.
    r#"
ALTER TABLE sessions ADD COLUMN parent_node TEXT;
CREATE INDEX sessions_by_parent ON sessions (parent_session);
"#,
];

fn versions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let user: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    Ok((user, app))
}

fn check_identity(path: &Path, user: i64, app: i64) -> Result<(), StoreError> {
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::Corrupt {
            database: path.display().to_string(),
            reason: format!("application id {app:#x} belongs to another program"),
            source: None,
        });
    }
    if user > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            database: path.display().to_string(),
            found: user,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`]: refuses newer or foreign databases, applies the
/// missing migrations in one IMMEDIATE transaction (so concurrent openers migrate once).
pub(crate) fn migrate(conn: &mut Connection, ctx: &Ctx) -> Result<(), StoreError> {
    let (user, app) = versions(conn).map_err(ctx.err("read the schema version"))?;
    check_identity(&ctx.path, user, app)?;
    if user == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(ctx.err("begin the migration"))?;
    // Another process may have migrated between the check above and our lock.
    let (user, app) = versions(&tx).map_err(ctx.err("read the schema version"))?;
    check_identity(&ctx.path, user, app)?;
    if user == 0 {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(ctx.err("inspect the schema"))?;
        if tables > 0 {
            return Err(StoreError::Corrupt {
                database: ctx.database(),
                reason: "it holds tables of another program".to_owned(),
                source: None,
            });
        }
    }
    let from = usize::try_from(user).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tracing::info!(path = %ctx.path.display(), version = i + 1, "migrating the database");
        tx.execute_batch(sql)
            .map_err(ctx.err("apply a schema migration"))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(ctx.err("record the schema version"))?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(ctx.err("record the application id"))?;
    tx.commit().map_err(ctx.err("commit the migration"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ctx(path: &Path) -> Ctx {
        Ctx {
            path: path.to_owned(),
            busy_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &ctx(&path)).unwrap();
        let tables = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let before = tables(&conn);
        migrate(&mut conn, &ctx(&path)).unwrap();
        assert_eq!(tables(&conn), before);
        assert_eq!(versions(&conn).unwrap(), (SCHEMA_VERSION, APPLICATION_ID));
    }

    #[test]
    fn version_1_databases_keep_their_pipelines_and_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute(
            "INSERT INTO sessions (id, pipeline, pipeline_path, pipeline_source, resolved, \
             pipeline_hash, inputs, status, meta, created_at, updated_at) \
             VALUES ('s', 'p', 'p.yaml', 'name: p', '{\"name\":\"p\"}', 'h', '{}', 'created', \
             '{}', 1, 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO tasks (sid, step, task_idx, node, run_index, status, writes, output, \
             finished_at) VALUES (1, 1, 0, 'a', 0, 'ok', '{}', '\"out\"', 5)",
            [],
        )
        .unwrap();
        migrate(&mut conn, &ctx(&path)).unwrap();
        let task: (String, String, i64) = conn
            .query_row(
                "SELECT node, output, finished_at FROM tasks WHERE sid = 1 AND step = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(task, ("a".to_owned(), "\"out\"".to_owned(), 5));
        let (source, resolved, status): (String, Vec<u8>, String) = conn
            .query_row(
                "SELECT p.source, p.resolved, s.status FROM sessions s \
                 JOIN pipelines p ON p.sid = s.sid WHERE s.id = 's'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (source.as_str(), resolved.as_slice(), status.as_str()),
            ("name: p", &br#"{"name":"p"}"#[..], "created")
        );
        let big_columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('sessions') \
                 WHERE name IN ('pipeline_source', 'resolved')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(big_columns, 0);
        assert_eq!(versions(&conn).unwrap(), (SCHEMA_VERSION, APPLICATION_ID));
    }

    #[test]
    fn version_4_failed_sessions_become_stopped_or_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let mut conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        let rows = [
            (
                "a",
                "failed",
                Some("stopped: the session reached limits.max_steps (2)"),
            ),
            ("b", "failed", Some("interrupted; resume it to go on")),
            ("c", "failed", Some("interrupted")),
            ("d", "failed", Some("node critic failed: stopped: no")),
            ("e", "failed", Some("Stopped: not ours")),
            ("f", "failed", None),
            ("g", "paused", Some("interrupted by a human")),
            ("h", "completed", None),
        ];
        for (id, status, error) in rows {
            conn.execute(
                "INSERT INTO sessions (id, pipeline, pipeline_path, pipeline_hash, inputs, \
                 status, error, meta, created_at, updated_at) \
                 VALUES (?1, 'p', 'p.yaml', 'h', '{}', ?2, ?3, '{}', 1, 1)",
                rusqlite::params![id, status, error],
            )
            .unwrap();
        }
        migrate(&mut conn, &ctx(&path)).unwrap();
        let got: Vec<(String, String, Option<String>)> = conn
            .prepare("SELECT id, status, error FROM sessions ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(String, String, Option<String>)> = rows
            .iter()
            .zip([
                "stopped",
                "interrupted",
                "interrupted",
                "failed",
                "failed",
                "failed",
                "paused",
                "completed",
            ])
            .map(|((id, _, error), status)| {
                (
                    (*id).to_owned(),
                    status.to_owned(),
                    error.map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(versions(&conn).unwrap(), (SCHEMA_VERSION, APPLICATION_ID));
    }

    #[test]
    fn version_5_node_runs_have_no_cache_tokens_and_an_unknown_cost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v5.db");
        let mut conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute(
            "INSERT INTO sessions (id, pipeline, pipeline_path, pipeline_hash, inputs, status, \
             meta, created_at, updated_at) VALUES ('a', 'p', 'p.yaml', 'h', '{}', 'completed', \
             '{}', 1, 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO node_runs (sid, seq, step, node, run_index, started_at, finished_at, \
             duration_ms, tokens_in, tokens_out, tool_calls, retries, status) \
             VALUES (1, 1, 1, 'n', 0, 1, 2, 1, 40, 4, 0, 0, 'ok')",
            [],
        )
        .unwrap();
        migrate(&mut conn, &ctx(&path)).unwrap();
        let got: (i64, i64, i64, Option<f64>) = conn
            .query_row(
                "SELECT tokens_in, cache_read_tokens, cache_write_tokens, cost_usd FROM node_runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(got, (40, 0, 0, None));
        assert_eq!(versions(&conn).unwrap(), (SCHEMA_VERSION, APPLICATION_ID));
    }

    #[test]
    fn identity_checks() {
        let p = Path::new("/x.db");
        assert!(check_identity(p, 0, 0).is_ok());
        assert!(check_identity(p, SCHEMA_VERSION, APPLICATION_ID).is_ok());
        assert!(matches!(
            check_identity(p, SCHEMA_VERSION + 1, APPLICATION_ID),
            Err(StoreError::TooNew { .. })
        ));
        assert!(matches!(
            check_identity(p, 1, 7),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
