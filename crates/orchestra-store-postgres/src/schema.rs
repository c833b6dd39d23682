//! The PostgreSQL schema and its versioned migrations.
//!
//! Every table lives in the schema `orchestra` of the database, so orchestra shares a database
//! with other programs without a clash of names. `orchestra.schema_version` holds one row per
//! applied migration; `MIGRATIONS[i]` upgrades from version `i` to `i + 1`. Migrations only
//! ever get appended; a released one is never edited. They are applied in one transaction that
//! first takes a transaction-level advisory lock, so processes starting together against a new
//! database migrate it once: the others wait for the lock, then find it done.

use postgres::Client;

use crate::ctx::Ctx;
use orchestra_store::StoreError;

/// The PostgreSQL schema (namespace) holding orchestra's tables.
pub const SCHEMA: &str = "orchestra";

/// The key of the advisory lock migrations hold ("ORCH").
const MIGRATION_LOCK: i64 = 0x4F52_4348;

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema. Sessions get a small integer key (`sid`) that the per-step
    // tables repeat. JSON is kept as text (payloads come back byte for byte, key order
    // included); texts that may hold NUL characters (pipelines, snapshots, prompts, tool
    // arguments and results, chat) are BYTEA. `seq` columns keep insertion order.
    r#"
CREATE TABLE sessions (
    sid BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    pipeline TEXT NOT NULL,
    pipeline_path TEXT NOT NULL,
    pipeline_hash TEXT NOT NULL,
    inputs TEXT NOT NULL,
    parent_session TEXT,
    parent_checkpoint BIGINT,
    status TEXT NOT NULL,
    error TEXT,
    meta TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX sessions_by_created ON sessions (created_at DESC, id COLLATE "C");
CREATE INDEX sessions_by_status ON sessions (status, created_at);

CREATE TABLE pipelines (
    sid BIGINT PRIMARY KEY REFERENCES sessions (sid) ON DELETE CASCADE,
    source BYTEA NOT NULL,
    resolved BYTEA NOT NULL
);

CREATE TABLE tasks (
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    task_idx BIGINT NOT NULL,
    node TEXT NOT NULL,
    run_index BIGINT NOT NULL,
    status TEXT NOT NULL,
    writes TEXT NOT NULL,
    output TEXT NOT NULL,
    error TEXT,
    finished_at BIGINT NOT NULL,
    PRIMARY KEY (sid, step, task_idx)
);

CREATE TABLE checkpoints (
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    parent_step BIGINT,
    scheduler TEXT NOT NULL,
    repo_shas TEXT,
    nodes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sid, step)
);

CREATE TABLE snapshots (
    sid BIGINT NOT NULL,
    step BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (sid, step),
    FOREIGN KEY (sid, step) REFERENCES checkpoints (sid, step) ON DELETE CASCADE
);

CREATE TABLE node_runs (
    seq BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    node TEXT NOT NULL,
    run_index BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    tokens_in BIGINT NOT NULL,
    tokens_out BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION,
    tool_calls BIGINT NOT NULL,
    retries BIGINT NOT NULL,
    status TEXT NOT NULL,
    error TEXT
);
CREATE INDEX node_runs_by_step ON node_runs (sid, step, seq);

CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    node TEXT NOT NULL,
    run_index BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    role TEXT NOT NULL,
    content BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_by_node ON messages (sid, node, run_index, turn, seq);

CREATE TABLE trace_texts (
    id BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    hash BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX trace_texts_by_hash ON trace_texts (sid, hash);

CREATE TABLE model_turns (
    seq BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    node TEXT NOT NULL,
    run_index BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    model TEXT NOT NULL,
    system BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    answer TEXT NOT NULL,
    stop TEXT NOT NULL,
    tokens_in BIGINT NOT NULL,
    tokens_out BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX model_turns_by_step ON model_turns (sid, step, seq);

CREATE TABLE tool_calls (
    seq BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    node TEXT NOT NULL,
    run_index BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    args BYTEA NOT NULL,
    args_bytes BIGINT NOT NULL,
    result BYTEA NOT NULL,
    result_bytes BIGINT NOT NULL,
    is_error BOOLEAN NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX tool_calls_by_step ON tool_calls (sid, step, seq);

CREATE TABLE routes (
    seq BIGSERIAL PRIMARY KEY,
    sid BIGINT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    from_node TEXT NOT NULL,
    condition TEXT,
    decision TEXT,
    targets TEXT NOT NULL,
    loop_round BIGINT,
    loop_max BIGINT
);
CREATE INDEX routes_by_step ON routes (sid, step, seq);
"#,
    // 2: a child session (run by a `call` node) names the node of its parent that runs it.
    r#"
ALTER TABLE sessions ADD COLUMN parent_node TEXT;
"#,
];

/// The version recorded in `orchestra.schema_version` (0 when the table does not exist).
fn version(client: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    // A scan of the catalog, not `to_regclass`: that reads the connection's catalog cache,
    // which may not yet know of a table another connection created since (a process that
    // waited for the migration lock would find no schema and migrate again).
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables \
             WHERE schemaname = 'orchestra' AND tablename = 'schema_version')",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0)::BIGINT FROM orchestra.schema_version",
            &[],
        )?
        .get(0))
}

fn too_new(ctx: &Ctx, found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            database: ctx.database.clone(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`] and points the connection at the `orchestra`
/// schema: refuses a newer schema or a schema `orchestra` holding another program's tables,
/// applies the missing migrations in one transaction under the advisory lock.
pub(crate) fn migrate(client: &mut Client, ctx: &Ctx) -> Result<(), StoreError> {
    let found = version(client).map_err(ctx.err("read the schema version"))?;
    too_new(ctx, found)?;
    if found < SCHEMA_VERSION {
        let err = ctx.err("apply a schema migration");
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(ctx.err("lock the schema for a migration"))?;
        // Another process may have migrated while we waited for the lock.
        let found = version(&mut tx).map_err(ctx.err("read the schema version"))?;
        too_new(ctx, found)?;
        if found < SCHEMA_VERSION {
            if found == 0 {
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
                    .map_err(ctx.err("create the schema `orchestra`"))?;
                let foreign: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                        &[&SCHEMA],
                    )
                    .map_err(ctx.err("inspect the schema"))?
                    .get(0);
                if foreign > 0 {
                    return Err(StoreError::Corrupt {
                        database: ctx.database.clone(),
                        reason: format!("its schema `{SCHEMA}` holds tables of another program"),
                        source: None,
                    });
                }
                tx.batch_execute(&format!(
                    "CREATE TABLE {SCHEMA}.schema_version (version INTEGER PRIMARY KEY, \
                     applied_at BIGINT NOT NULL)"
                ))
                .map_err(&err)?;
            }
            tx.batch_execute(&format!("SET LOCAL search_path TO {SCHEMA}"))
                .map_err(&err)?;
            let from = usize::try_from(found).unwrap_or(0);
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
                let to = i32::try_from(i + 1).unwrap_or(i32::MAX);
                tracing::info!(database = %ctx.database, version = to, "migrating the database");
                tx.batch_execute(sql).map_err(&err)?;
                tx.execute(
                    "INSERT INTO schema_version (version, applied_at) \
                     VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)",
                    &[&to],
                )
                .map_err(ctx.err("record the schema version"))?;
            }
        }
        tx.commit().map_err(ctx.err("commit the migration"))?;
    }
    client
        .batch_execute(&format!("SET search_path TO {SCHEMA}"))
        .map_err(ctx.err("select the schema `orchestra`"))
}
