//! `PgStore`: the [`Store`] of Orchestra on PostgreSQL, for teams that keep every session in
//! one server database (rust-postgres: the blocking `postgres` client over `tokio-postgres`).
//!
//! - **Where.** A `postgres://` URL, what it leaves out taken from the `PG*` variables as libpq
//!   does ([`PgEnv`]); its password comes from the URL or `PGPASSWORD`, and is never shown:
//!   errors name the database by [`mask_password`] of the URL.
//! - **TLS.** `sslmode` (`disable`, `prefer` by default, `require`, `verify-ca`,
//!   `verify-full`) and `sslrootcert`, in the URL or `PGSSLMODE`/`PGSSLROOTCERT`; rustls (see
//!   `tls`).
//! - **Schema.** Tables live in the schema `orchestra` of the database, at a version recorded
//!   in `orchestra.schema_version`; the first connection creates them, and connections that
//!   start together migrate once (an advisory lock, see `schema`).
//! - **Threads.** The `Store` trait is synchronous; each connection lives on a thread of its
//!   own (see `conn`), so a store call blocks its caller, never a runtime. A store holds a small
//!   pool of them (`pool_size`, [`DEFAULT_POOL_SIZE`]), opened as concurrent calls need them;
//!   [`Store::share`] gives handles on the same pool to other threads.
//! - **Durability.** Every write is one transaction, committed when the method returns.

mod conn;
mod ctx;
mod fenced;
mod schema;
mod sessions;
mod steps;
mod tls;
mod trace;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use postgres::Client;
use serde_json::Value;

use orchestra_store::validate;
use orchestra_store::{
    ChatMessageRecord, CheckpointInfo, CheckpointRecord, LeaseOutcome, NewSession, NodeRunRecord,
    Renewal, SessionFilter, SessionPipeline, SessionRecord, SessionStatus, SessionSummary,
    SessionTrace, TaskRecord, TraceRecord,
};
use orchestra_store::{Clock, Fence, Store, StoreError};

use crate::conn::Conn;
use crate::ctx::Ctx;
pub use crate::schema::{SCHEMA, SCHEMA_VERSION};
pub use crate::url::{MAX_POOL_SIZE, PgEnv, is_postgres_url, mask_password, without_password};

/// How many connections a store opens at most when neither the URL (`pool_size`) nor
/// [`PgOptions::pool_size`] says.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// How long connecting waits for the server when the URL sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement waits for a lock another connection holds before failing with
/// [`StoreError::Busy`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of [`PgStore::connect_with`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The password when the URL has none (the CLI passes `PGPASSWORD`).
    pub password: Option<String>,
    /// What the URL leaves out (host, port, user, database, TLS), as libpq takes it.
    pub env: PgEnv,
    /// How long connecting waits when the URL sets no `connect_timeout`.
    pub connect_timeout: Duration,
    /// How long a statement waits for a lock.
    pub lock_timeout: Duration,
    /// The clock for `updated_at` and leases.
    pub clock: Clock,
    /// How many connections the store opens at most (as concurrent calls need them), when the
    /// URL gives no `pool_size`; clamped to 1..=[`MAX_POOL_SIZE`].
    pub pool_size: usize,
}

impl Default for PgOptions {
    /// The password from `PGPASSWORD`, the other `PG*` variables of this process, the default
    /// timeouts, the system clock.
    fn default() -> Self {
        Self {
            password: std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
            env: PgEnv::from_process(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            clock: Clock::system(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

/// The PostgreSQL implementation of [`Store`]: a small pool of connections, each on a thread
/// of its own. Open one per process ([`Store::share`] for more threads); processes coordinate
/// through the server.
#[derive(Debug)]
pub struct PgStore {
    conn: Arc<Conn>,
    database: String,
    clock: Clock,
    pool_size: usize,
}

impl PgStore {
    /// Connects to the database at `url` (what it leaves out from the `PG*` variables, the
    /// password from the URL or `PGPASSWORD`) and brings its schema up to date.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PgOptions::default())
    }

    /// Connects with `options`.
    ///
    /// Fails with [`StoreError::Unreachable`] when the server cannot be reached or refuses the
    /// connection (naming `host:port` and why), [`StoreError::TooNew`] for a schema written by
    /// a newer orchestra and [`StoreError::Corrupt`] when the schema `orchestra` holds another
    /// program's tables.
    pub fn connect_with(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let database = mask_password(url);
        let bad = |reason: String| StoreError::Unreachable {
            database: database.clone(),
            reason,
            source: None,
        };
        let (config, tls, url_pool_size) = url::config(
            url,
            options.password.as_deref(),
            &options.env,
            options.connect_timeout,
        )
        .map_err(|e| bad(e.to_string()))?;
        let connector = tls::connector(&tls).map_err(|e| bad(e.to_string()))?;
        let ctx = Ctx::new(database.clone(), &config, tls.mode, options.lock_timeout);
        let lock_ms = options.lock_timeout.as_millis();
        let pool_size = url_pool_size.unwrap_or(options.pool_size.clamp(1, MAX_POOL_SIZE));
        let conn = Conn::start(ctx, pool_size, move |ctx| {
            let mut client: Client = config
                .connect(connector.clone())
                .map_err(ctx.err(ctx::CONNECT))?;
            client
                .batch_execute(&format!("SET lock_timeout = {lock_ms}"))
                .map_err(ctx.err("set the lock timeout"))?;
            schema::migrate(&mut client, ctx)?;
            tracing::debug!(database = %ctx.database, "connected to the session database");
            Ok(client)
        })?;
        Ok(Self {
            conn: Arc::new(conn),
            database,
            clock: options.clock,
            pool_size,
        })
    }

    /// Uses `clock` for `updated_at` and lease expiry.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The database URL, without its password.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// How many connections the store opens at most.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Opens the pool's connections now, rather than as concurrent calls need them; fails with
    /// the error of one that could not be opened.
    pub fn open_connections(&self) -> Result<(), StoreError> {
        self.conn.open_all()
    }

    /// How many connections are open now (they are opened as concurrent calls need them).
    pub fn connections(&self) -> usize {
        self.conn.connections()
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

impl Store for PgStore {
    fn share(&self) -> Option<Box<dyn Store>> {
        Some(Box::new(Self {
            conn: Arc::clone(&self.conn),
            database: self.database.clone(),
            clock: self.clock.clone(),
            pool_size: self.pool_size,
        }))
    }

    fn parallelism(&self) -> usize {
        self.pool_size
    }

    fn create_session(&mut self, s: &NewSession) -> Result<(), StoreError> {
        validate::new_session(s)?;
        let (s, now) = (s.clone(), self.now());
        self.conn
            .call(move |c, cx| sessions::create(c, cx, &s, now))
    }

    fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.conn.call(move |c, cx| sessions::get(c, cx, &id))
    }

    fn find_session(&self, id_or_prefix: &str) -> Result<SessionRecord, StoreError> {
        let q = id_or_prefix.to_owned();
        self.conn.call(move |c, cx| sessions::find(c, cx, &q))
    }

    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError> {
        let (f, now) = (filter.clone(), self.now());
        self.conn.call(move |c, cx| sessions::list(c, cx, &f, now))
    }

    fn set_status(
        &mut self,
        id: &str,
        status: SessionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, error, now) = (id.to_owned(), error.map(str::to_owned), self.now());
        self.conn
            .call(move |c, cx| sessions::set_status(c, cx, &id, status, error.as_deref(), now))
    }

    fn set_session_pipeline(&mut self, id: &str, p: &SessionPipeline) -> Result<(), StoreError> {
        let (id, p, now) = (id.to_owned(), p.clone(), self.now());
        self.conn
            .call(move |c, cx| sessions::set_pipeline(c, cx, &id, &p, now))
    }

    fn set_session_meta(&mut self, id: &str, key: &str, value: &Value) -> Result<(), StoreError> {
        let (id, key, value, now) = (id.to_owned(), key.to_owned(), value.clone(), self.now());
        self.conn
            .call(move |c, cx| sessions::set_meta(c, cx, &id, &key, &value, now))
    }

    fn acquire_lease(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let now = self.now();
        let until = validate::lease_until(now, ttl);
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.conn
            .call(move |c, cx| sessions::acquire_lease(c, cx, &id, &owner, now, until))
    }

    fn claim_session(
        &mut self,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        let until = validate::lease_until(now, ttl);
        let owner = owner.to_owned();
        self.conn
            .call(move |c, cx| sessions::claim(c, cx, &owner, now, until))
    }

    fn renew_lease(&mut self, id: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.renew_lease_checked(id, owner, ttl)? != Renewal::Lost)
    }

    fn renew_lease_checked(
        &mut self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Renewal, StoreError> {
        let until = validate::lease_until(self.now(), ttl);
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.conn
            .call(move |c, cx| sessions::renew_lease(c, cx, &id, &owner, until))
    }

    fn release_lease(&mut self, id: &str, owner: &str) -> Result<(), StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.conn
            .call(move |c, cx| sessions::release_lease(c, cx, &id, &owner))
    }

    fn record_results(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
    ) -> Result<(), StoreError> {
        let (tasks, runs) = (tasks.to_vec(), runs.to_vec());
        self.conn
            .call(move |c, cx| steps::record_results(c, cx, &tasks, &runs))
    }

    fn task_records(
        &self,
        session: &str,
        steps: RangeInclusive<u64>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let session = session.to_owned();
        let (lo, hi) = steps.into_inner();
        self.conn
            .call(move |c, cx| steps::task_records(c, cx, &session, lo, hi))
    }

    fn commit_checkpoint(&mut self, cp: &CheckpointRecord) -> Result<(), StoreError> {
        validate::checkpoint(cp)?;
        let (cp, now) = (cp.clone(), self.now());
        self.conn
            .call(move |c, cx| steps::commit_checkpoint(c, cx, &cp, now))
    }

    fn commit_step(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        cp: &CheckpointRecord,
    ) -> Result<(), StoreError> {
        let (tasks, runs, cp, now) = (tasks.to_vec(), runs.to_vec(), cp.clone(), self.now());
        self.conn
            .call(move |c, cx| steps::commit_step(c, cx, &tasks, &runs, &cp, now))
    }

    fn commit_fenced(
        &mut self,
        fence: Fence<'_>,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
        cp: Option<&CheckpointRecord>,
    ) -> Result<(), StoreError> {
        let owner = fence.owner.to_owned();
        let (tasks, runs, trace) = (tasks.to_vec(), runs.to_vec(), trace.to_vec());
        let (cp, now) = (cp.cloned(), self.now());
        self.conn.call(move |c, cx| {
            let fence = Fence { owner: &owner };
            let records = (&tasks[..], &runs[..], &trace[..]);
            fenced::commit_fenced(c, cx, fence, records, cp.as_ref(), now)
        })
    }

    fn checkpoints(&self, session: &str) -> Result<Vec<CheckpointInfo>, StoreError> {
        let session = session.to_owned();
        self.conn
            .call(move |c, cx| steps::checkpoints(c, cx, &session))
    }

    fn checkpoint(&self, session: &str, step: u64) -> Result<Option<CheckpointRecord>, StoreError> {
        let session = session.to_owned();
        self.conn
            .call(move |c, cx| steps::checkpoint(c, cx, &session, step, false))
    }

    fn latest_snapshot_at_or_before(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        let session = session.to_owned();
        self.conn
            .call(move |c, cx| steps::checkpoint(c, cx, &session, step, true))
    }

    fn node_runs(&self, session: &str) -> Result<Vec<NodeRunRecord>, StoreError> {
        let session = session.to_owned();
        self.conn
            .call(move |c, cx| steps::node_runs(c, cx, &session))
    }

    fn record_trace(&mut self, trace: &[TraceRecord]) -> Result<(), StoreError> {
        let trace = trace.to_vec();
        self.conn
            .call(move |c, cx| trace::record(c, cx, &[], &[], &trace))
    }

    fn record_results_traced(
        &mut self,
        tasks: &[TaskRecord],
        runs: &[NodeRunRecord],
        trace: &[TraceRecord],
    ) -> Result<(), StoreError> {
        let (tasks, runs, trace) = (tasks.to_vec(), runs.to_vec(), trace.to_vec());
        self.conn
            .call(move |c, cx| trace::record(c, cx, &tasks, &runs, &trace))
    }

    fn trace(&self, session: &str) -> Result<SessionTrace, StoreError> {
        let session = session.to_owned();
        self.conn.call(move |c, cx| trace::read(c, cx, &session))
    }

    fn append_message(&mut self, m: &ChatMessageRecord) -> Result<(), StoreError> {
        let m = m.clone();
        self.conn
            .call(move |c, cx| steps::append_message(c, cx, &m))
    }

    fn messages(&self, session: &str, node: &str) -> Result<Vec<ChatMessageRecord>, StoreError> {
        let (session, node) = (session.to_owned(), node.to_owned());
        self.conn
            .call(move |c, cx| steps::messages(c, cx, &session, &node))
    }

    fn delete_session(&mut self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.conn.call(move |c, cx| sessions::delete(c, cx, &id))
    }
}
