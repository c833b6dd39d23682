//! `SqliteStore`: the embedded default [`Store`] of Orchestra, on one SQLite file shared by
//! many sessions and processes (rusqlite, bundled SQLite).
//!
//! Connection setup: WAL journal, `synchronous=NORMAL`, a busy timeout, foreign keys, a
//! prepared-statement cache, and every write in a `BEGIN IMMEDIATE` transaction so that two
//! processes never deadlock upgrading a read lock (the source of "database is locked" under
//! concurrency). Durability: a committed write survives a crash or `kill -9` of the process; a
//! power loss or OS crash may lose the last transactions (WAL + `synchronous=NORMAL`) but never
//! corrupts the file. The file and its WAL and shared-memory files are private to their owner
//! (mode 0600), whatever the umask.

mod blob;
mod codec;
mod private;
mod schema;
mod sessions;
mod steps;
mod trace;
mod writes;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, MAIN_DB, Transaction, TransactionBehavior};
use serde_json::Value;

use orchestra_store::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, LeaseOutcome, NewSession, NodeRunRecord,
    Renewal, SessionFilter, SessionPipeline, SessionRecord, SessionStatus, SessionSummary,
    SessionTrace, TaskRecord, TraceRecord,
};
use orchestra_store::{Clock, Fence, Store, StoreError};

pub use schema::SCHEMA_VERSION;

/// How long a write waits for another connection's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page cache of a connection, in KiB.
const CACHE_SIZE_KIB: i64 = 64;

/// Options of [`SqliteStore::open_with`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How long to wait for a lock held by another connection before failing with
    /// [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// The clock for `updated_at` and leases.
    pub clock: Clock,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            clock: Clock::system(),
        }
    }
}

/// What error mapping needs to know about the connection.
#[derive(Debug)]
pub(crate) struct Ctx {
    path: PathBuf,
    busy_timeout: Duration,
}

impl Ctx {
    /// Maps a rusqlite error raised while trying to `op`.
    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| self.map(op, source)
    }

    /// How the database is named in errors.
    fn database(&self) -> String {
        self.path.display().to_string()
    }

    /// Maps an I/O error on the database file: permission denied or a read-only file system
    /// is [`StoreError::ReadOnly`].
    fn io(&self, op: &'static str, source: std::io::Error) -> StoreError {
        use std::io::ErrorKind;
        let database = self.database();
        match source.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
                database,
                op,
                source: source.into(),
            },
            _ => StoreError::Backend {
                database,
                op,
                source: source.into(),
            },
        }
    }

    fn map(&self, op: &'static str, source: rusqlite::Error) -> StoreError {
        let database = self.database();
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
                database,
                timeout: self.busy_timeout,
                op,
                source: source.into(),
            },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                database,
                reason: format!("sqlite reports damage while trying to {op}"),
                source: Some(source.into()),
            },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
                database,
                op,
                source: source.into(),
            },
            _ if matches!(
                source,
                rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::InvalidColumnType(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
            ) =>
            {
                StoreError::Corrupt {
                    database,
                    reason: format!("invalid stored data while trying to {op}"),
                    source: Some(source.into()),
                }
            }
            _ => StoreError::Backend {
                database,
                op,
                source: source.into(),
            },
        }
    }
}

/// The SQLite implementation of [`Store`]. One value = one connection; open one per process
/// (or per thread) — they coordinate through the file. A write is durable across a crash or
/// `kill -9` of the process once the method returns; a power loss may lose the last few
/// transactions (`synchronous=NORMAL`), never the file's integrity.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    ctx: Ctx,
    clock: Clock,
}

impl SqliteStore {
    /// Opens (creating the file and its parent directories if needed) and migrates the
    /// database at `path`, with the default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    ///
    /// Fails with [`StoreError::TooNew`] for a database written by a newer orchestra, with
    /// [`StoreError::Corrupt`] for a file that is not an orchestra database and with
    /// [`StoreError::ReadOnly`] for a file this process cannot write.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let ctx = Ctx {
            path: path.to_owned(),
            busy_timeout: options.busy_timeout,
        };
        private::create(path).map_err(|source| ctx.io("create the file", source))?;
        let mut conn = Connection::open(path).map_err(ctx.err("open the file"))?;
        // SQLite opens a file it cannot write read-only, and says so only at the first write.
        if conn
            .is_readonly(MAIN_DB)
            .map_err(ctx.err("open the file"))?
        {
            return Err(StoreError::ReadOnly {
                database: ctx.database(),
                op: "open it for writing",
                source: "sqlite opened the file read-only".into(),
            });
        }
        configure(&conn, &ctx)?;
        schema::migrate(&mut conn, &ctx)?;
        tracing::debug!(path = %path.display(), "opened the session database");
        Ok(Self {
            conn,
            ctx,
            clock: options.clock,
        })
    }

    /// Uses `clock` for `updated_at` and lease expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// Copies the WAL into the main file and truncates the WAL (as the last connection does
    /// when it closes). Useful before measuring or copying the file.
    pub fn checkpoint_wal(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.ctx.err("checkpoint the write-ahead log"))
    }

    /// Begins an IMMEDIATE transaction (takes the write lock up front, waiting up to the busy
    /// timeout) and lends the error context beside it.
    fn write_tx(&mut self, op: &'static str) -> Result<(Transaction<'_>, &Ctx), StoreError> {
        let ctx = &self.ctx;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| ctx.map(op, e))?;
        Ok((tx, ctx))
    }

    /// Begins a read transaction, so a read of several statements sees one snapshot.
    fn read_tx(&self, op: &'static str) -> Result<Transaction<'_>, StoreError> {
        self.conn.unchecked_transaction().map_err(self.ctx.err(op))
    }
}

fn configure(conn: &Connection, ctx: &Ctx) -> Result<(), StoreError> {
    // The busy timeout first: switching to WAL needs a lock another opener may hold.
    conn.busy_timeout(ctx.busy_timeout)
        .map_err(ctx.err("set the busy timeout"))?;
    // Takes effect only on a new, empty file (before WAL mode writes its first page): lets
    // deleted sessions give their pages back (see `delete_session`). A no-op otherwise.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(ctx.err("enable incremental vacuum"))?;
    // Before WAL mode: a new file is set up by transactions in the rollback journal, and
    // under `FULL` each flushes its journal twice (one flush fewer per new file).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(ctx.err("set synchronous mode"))?;
    let mode = enable_wal(conn, ctx)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %ctx.path.display(), %mode, "the database is not in WAL mode");
    }
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(ctx.err("enable foreign keys"))?;
    // A step touches a handful of pages (the right edges of a few b-trees); SQLite's default
    // 2 MiB page cache only added to the resident memory of a run (512 KiB still showed as a
    // quarter of a 1000-agent fan-out's heap). Pages read once (a snapshot being restored)
    // come from the operating system's cache.
    conn.pragma_update(None, "cache_size", CACHE_SIZE_KIB.wrapping_neg())
        .map_err(ctx.err("set the page cache size"))?;
    // Without this, SQLite may compile a statement again when a parameter its plan looked at is
    // rebound; for `col = ?` terms it does so whenever the old value was 0 or 1. With the first
    // session of a file (`sid` 1) that re-parsed the node-run insert on every step.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(ctx.err("enable the query planner stability guarantee"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Switches to WAL mode and returns the journal mode in force. Openers of one file racing
/// here (a new file, or one whose WAL another process is recovering) may be refused at once,
/// without SQLite's busy handler (which would risk a deadlock there): tried again until the
/// busy timeout has passed.
fn enable_wal(conn: &Connection, ctx: &Ctx) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + ctx.busy_timeout;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Ok(mode) => return Ok(mode),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(ctx.err("enable write-ahead logging")(e)),
        }
    }
}

/// The `sid` of session `id`, or `NotFound`.
fn sid(conn: &Connection, ctx: &Ctx, id: &str) -> Result<i64, StoreError> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached("SELECT sid FROM sessions WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .map_err(ctx.err("look up a session"))?
        .ok_or_else(|| StoreError::not_found(id))
}

impl Store for SqliteStore {
    fn create_session(&mut self, s: &NewSession) -> Result<(), StoreError> {
        self.create_session_impl(s)
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.session_impl(id)
    }

    fn find_session(&self, id_or_prefix: &str) -> Result<SessionRecord, StoreError> {
        self.find_session_impl(id_or_prefix)
    }

    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError> {
        self.list_sessions_impl(filter)
    }

    fn set_status(
        &mut self,
        id: &str,
        status: SessionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_status_impl(id, status, error)
    }

    fn set_session_meta(&mut self, id: &str, key: &str, value: &Value) -> Result<(), StoreError> {
        self.set_session_meta_impl(id, key, value)
    }

    fn set_session_pipeline(&mut self, id: &str, p: &SessionPipeline) -> Result<(), StoreError> {
        self.set_session_pipeline_impl(id, p)
    }

    fn acquire_lease(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        self.acquire_lease_impl(id, owner, ttl)
    }

    fn claim_session(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.claim_session_impl(owner, ttl)
    }

    fn renew_lease(&mut self, id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.renew_lease_impl(id, owner, ttl)? != Renewal::Lost)
    }

    fn renew_lease_checked(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Renewal, StoreError> {
        self.renew_lease_impl(id, owner, ttl)
    }

    fn release_lease(&mut self, id: &str, owner: &str) -> Result<(), StoreError> {
        self.release_lease_impl(id, owner)
    }

    fn record_results(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError> {
        self.record_results_impl(tasks, runs)
    }

    fn task_records(
        &self,
        session: &str,
        steps: RangeInclusive<u64>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.task_records_impl(session, steps)
    }

    fn commit_checkpoint(&mut self, cp: &CheckpointRecord) -> Result<(), StoreError> {
        self.commit_checkpoint_impl(cp)
    }

    fn commit_step(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        self.commit_step_impl(tasks, runs, cp)
    }

    fn commit_fenced(
        &mut self,
        fence: Fence<'_>,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        cp: Option<&CheckpointRecord>,
    ) -> Result<(), StoreError> {
        self.commit_fenced_impl(Some(fence), tasks, runs, trace, cp)
    }

    fn checkpoints(&self, session: &str) -> Result<Vec<CheckpointInfo>, StoreError> {
        self.checkpoints_impl(session)
    }

    fn checkpoint(&self, session: &str, step: u64) -> Result<Option<CheckpointRecord>, StoreError> {
        self.checkpoint_impl(session, step)
    }

    fn latest_snapshot_at_or_before(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        self.latest_snapshot_impl(session, step)
    }

    fn node_runs(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError> {
        self.node_runs_impl(session)
    }

    fn append_message(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError> {
        self.append_message_impl(m)
    }

    fn messages(&self, session: &str, node: &str) -> Result<Vec<ChatMessageRecord>, StoreError> {
        self.messages_impl(session, node)
    }

    fn record_trace(&mut self, trace: &[TraceRecord]) -> Result<(), StoreError> {
        self.record_trace_impl(trace)
    }

    fn record_results_traced(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        self.record_results_traced_impl(tasks, runs, trace)
    }

    fn trace(&self, session: &str) -> Result<SessionTrace, StoreError> {
        self.trace_impl(session)
    }

    fn delete_session(&mut self, id: &str) -> Result<(), StoreError> {
        self.delete_session_impl(id)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;

    use super::*;

    #[test]
    fn sqlite_read_only_errors_are_read_only_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let ctx = Ctx {
            path: path.clone(),
            busy_timeout: Duration::from_secs(1),
        };
        let err = conn
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .map_err(ctx.err("create a table"))
            .unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "database {} is read-only, so orchestra cannot create a table",
                path.display()
            )),
            "{err}"
        );
    }
}
