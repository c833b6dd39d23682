//! Sessions end to end: start a run of a compiled pipeline, resume one, fork one at a checkpoint
//! (replay); the lease that lets one process drive a session; statuses and outcomes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use orchestra_graph::Compiled;
use orchestra_graph::scheduler::{Outcome, Scheduler};
use orchestra_graph::state::State;
use orchestra_store::{
    CheckpointRecord, LeaseOutcome, NewSession, SessionRecord, SessionStatus, SqliteStore,
    StoreError,
};
use orchestra_tools::Registry;

use crate::events::{Event, EventSink};
use crate::executor::{ExecLimits, Executor, Finish, Position, Router, routing, scheduler_record};
use crate::gitws::GitWorkspace;
use crate::harness::Harness;
use crate::plan::{ConditionFn, ConditionRouter, agent_plans, build_providers, build_tools};
use crate::restore::{RestoreError, restore};
use crate::store_worker::{StoreHandle, WorkerError};

/// How long a lease lasts without renewal; it is renewed every third of that.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// Why a session could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] WorkerError),
    /// Another process drives the session.
    #[error(
        "session `{session}` is being driven by another process ({owner}); wait for it to finish or stop it first"
    )]
    Busy {
        /// Session.
        session: String,
        /// Who holds the lease.
        owner: String,
    },
    /// The session cannot go on (completed, or its state cannot be restored).
    #[error("{0}")]
    Refused(String),
    /// Restoring a checkpoint failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// Setting up providers, tools or git failed.
    #[error("{0}")]
    Setup(String),
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        RuntimeError::Store(WorkerError::Store(e))
    }
}

/// A process's connection to the session database.
#[derive(Clone, Debug)]
pub struct Engine {
    store: StoreHandle,
    owner: String,
}

impl Engine {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self, RuntimeError> {
        let store = SqliteStore::open(path)?;
        Ok(Engine {
            store: StoreHandle::spawn(Box::new(store))?,
            owner: lease_owner(),
        })
    }

    /// An engine over any store (tests use `MemoryStore`).
    pub fn with_store(store: StoreHandle) -> Self {
        Engine {
            store,
            owner: lease_owner(),
        }
    }

    /// The store.
    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Who this engine takes leases as (`pid@host`).
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Closes the database cleanly (call before the process exits).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Looks up an environment variable (API keys); tests pass a fixed map.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a run is driven.
#[derive(Clone)]
pub struct DriveOptions {
    /// Show model text as it arrives.
    pub stream: bool,
    /// Progress events.
    pub events: Arc<dyn EventSink>,
    /// Becomes true on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
    /// Environment lookup (API keys).
    pub env: EnvLookup,
    /// Tools registered through the library.
    pub tools: Registry,
    /// Conditions registered through the library.
    pub conditions: HashMap<String, ConditionFn>,
    /// Base delay of node retries.
    pub retry_base: Duration,
    /// Limits that replace the pipeline's for this drive (to go on after a limit stopped it).
    pub limits: LimitOverrides,
    /// Where interactive agents find a human (a terminal, an attach client); `None`: they
    /// pause the session.
    pub human: Option<Arc<dyn crate::interactive::Interaction>>,
}

impl std::fmt::Debug for DriveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveOptions")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Session limits given for one drive, replacing the pipeline's `limits:` (e.g. `orchestra
/// resume --max-steps 400` after the session stopped at `max_steps`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// Replaces `limits.max_steps` (the session's total, not this drive's).
    pub max_steps: Option<u32>,
    /// Replaces `limits.max_tokens` (the session's total, not this drive's).
    pub max_tokens: Option<u64>,
}

/// What a drive of a session ended with.
#[derive(Clone, Debug)]
pub struct SessionOutcome {
    /// Session id.
    pub session: String,
    /// How it ended.
    pub finish: Finish,
    /// Completed steps.
    pub steps: u64,
    /// Tokens used in the whole session.
    pub tokens: u64,
    /// The final state.
    pub state: State,
    /// The output files written (when the session completed).
    pub outputs: Vec<std::path::PathBuf>,
}

/// A new session id: UTC date and time plus random hex, e.g. `20261120-223145-a1b2c3`.
pub fn new_session_id() -> String {
    let secs = orchestra_store::system_now_ms() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let suffix: u32 = rand::random::<u32>() & 0x00ff_ffff;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{suffix:06x}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (UTC).
pub fn date_of_days(days: u64) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `pid@host` of this process.
fn lease_owner() -> String {
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy().into_owned();
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    };
    format!("{}@{host}", std::process::id())
}

/// Whether the lease owner `pid@host` is a process of this machine that no longer exists.
pub fn owner_is_dead(owner: &str) -> bool {
    let Some((pid, host)) = owner.split_once('@') else {
        return false;
    };
    let this = lease_owner();
    let this_host = this.split_once('@').map(|(_, h)| h).unwrap_or_default();
    if host != this_host {
        return false;
    }
    let Some(pid) = pid
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Measures and hashes (FNV-1a, 64 bit: enough to notice a changed pipeline) the JSON written
/// to it, without keeping it.
struct JsonDigest {
    len: usize,
    hash: u64,
}

impl JsonDigest {
    fn of(compiled: &Compiled) -> Result<Self, serde_json::Error> {
        let mut d = JsonDigest {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        };
        serde_json::to_writer(&mut d, compiled)?;
        Ok(d)
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

impl std::io::Write for JsonDigest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x100_0000_01b3);
        }
        self.len += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash stored with a session for a compiled pipeline (of its resolved JSON).
pub fn pipeline_hash(compiled: &Compiled) -> String {
    JsonDigest::of(compiled)
        .map(|d| d.hex())
        .unwrap_or_default()
}

/// The resolved JSON of `compiled` (in a string of exactly its size: a megabyte for a thousand
/// agents) and its hash.
fn resolved_json(compiled: &Compiled) -> Result<(String, String), RuntimeError> {
    let setup = |e: &dyn std::fmt::Display| RuntimeError::Setup(e.to_string());
    let digest = JsonDigest::of(compiled).map_err(|e| setup(&e))?;
    let mut text = Vec::with_capacity(digest.len);
    serde_json::to_writer(&mut text, compiled).map_err(|e| setup(&e))?;
    let text = String::from_utf8(text).map_err(|e| setup(&e))?;
    Ok((text, digest.hex()))
}

impl Engine {
    /// Takes the lease of `session` (taking it over from a dead process of this machine).
    pub(crate) async fn acquire(&self, session: &str) -> Result<(), RuntimeError> {
        let (id, owner) = (session.to_owned(), self.owner.clone());
        let outcome = self
            .store
            .call(move |s| s.acquire_lease(&id, &owner, LEASE_TTL))
            .await?;
        match outcome {
            LeaseOutcome::Acquired { .. } => Ok(()),
            LeaseOutcome::HeldBy { owner, .. } if owner_is_dead(&owner) => {
                let (id, me, dead) = (session.to_owned(), self.owner.clone(), owner.clone());
                let again = self
                    .store
                    .call(move |s| {
                        s.release_lease(&id, &dead)?;
                        s.acquire_lease(&id, &me, LEASE_TTL)
                    })
                    .await?;
                match again {
                    LeaseOutcome::Acquired { .. } => Ok(()),
                    LeaseOutcome::HeldBy { owner, .. } => Err(RuntimeError::Busy {
                        session: session.to_owned(),
                        owner,
                    }),
                }
            }
            LeaseOutcome::HeldBy { owner, .. } => Err(RuntimeError::Busy {
                session: session.to_owned(),
                owner,
            }),
        }
    }

    /// Starts a new session of `compiled` and drives it.
    pub async fn run(
        &self,
        compiled: Arc<Compiled>,
        inputs: Map<String, Value>,
        name: Option<String>,
        opts: &DriveOptions,
    ) -> Result<SessionOutcome, RuntimeError> {
        self.run_as(new_session_id(), compiled, inputs, name, opts)
            .await
    }

    /// [`Engine::run`] with a session id chosen by the caller (see [`new_session_id`]), for
    /// callers that set things up under the id before the run starts (an attach socket).
    pub async fn run_as(
        &self,
        id: String,
        compiled: Arc<Compiled>,
        inputs: Map<String, Value>,
        name: Option<String>,
        opts: &DriveOptions,
    ) -> Result<SessionOutcome, RuntimeError> {
        // Measured and hashed in one pass, then written into a string of exactly that size.
        let (resolved, hash) = resolved_json(&compiled)?;
        let new = NewSession {
            id: id.clone(),
            name,
            pipeline: compiled.name.clone(),
            pipeline_path: compiled.pipeline_path.display().to_string(),
            pipeline_source: compiled.source.text.to_string(),
            pipeline_hash: hash,
            resolved,
            inputs: Value::Object(inputs.clone()),
            parent_session: None,
            parent_checkpoint: None,
            created_at: orchestra_store::system_now_ms(),
        };
        self.store.call(move |s| s.create_session(&new)).await?;
        self.acquire(&id).await?;
        let git = match GitWorkspace::start(&compiled, &id).await {
            Ok(g) => g,
            Err(e) => return self.fail_setup(&id, e).await,
        };
        self.begin(compiled, &id, inputs, git, opts).await
    }

    /// Commits checkpoint 0 (the initial state and the edges out of `START`) of a new session
    /// and drives it.
    async fn begin(
        &self,
        compiled: Arc<Compiled>,
        id: &str,
        inputs: Map<String, Value>,
        git: GitWorkspace,
        opts: &DriveOptions,
    ) -> Result<SessionOutcome, RuntimeError> {
        let id = id.to_owned();
        self.store_git_meta(&id, &git).await?;
        let router = ConditionRouter::new(Arc::clone(&compiled), opts.conditions.clone());
        let may_block = router.may_block();
        let (c, start_inputs) = (Arc::clone(&compiled), inputs.clone());
        let started = routing(may_block, move || {
            let state = c.initial_state();
            let started = Scheduler::new(&c.topology)
                .start(|_, edge| router.route(edge, &state, &start_inputs, 0))
                .map_err(|e| e.to_string());
            (state, started)
        })
        .await;
        let (state, started) = match started {
            Ok(s) => s,
            Err(e) => (compiled.initial_state(), Err(e)),
        };
        let (sched, outcome) = match started {
            Ok(s) => s,
            Err(e) => {
                // A condition on an edge out of `START` failed: a recorded failure, like any
                // later step's.
                let error = format!("step 0: {e}");
                let (sid, owner, msg) = (id.clone(), self.owner.clone(), error.clone());
                self.store
                    .call(move |s| {
                        s.set_status(&sid, SessionStatus::Failed, Some(&msg))?;
                        s.release_lease(&sid, &owner)
                    })
                    .await?;
                return Ok(SessionOutcome {
                    session: id,
                    finish: Finish::Failed { error },
                    steps: 0,
                    tokens: 0,
                    state,
                    outputs: Vec::new(),
                });
            }
        };
        let mut pos = Position {
            state,
            sched,
            runs: vec![0; compiled.agents.len()],
            ..Position::default()
        };
        pos.snapshot_bytes = crate::executor::approx_bytes(&Value::Object(pos.state.clone()));
        let cp = CheckpointRecord {
            session: id.clone(),
            step: 0,
            parent_step: None,
            scheduler: scheduler_record(&pos, true),
            snapshot: Some(Value::Object(pos.state.clone())),
            repo_shas: git.initial_shas(),
            nodes: Vec::new(),
            created_at: orchestra_store::system_now_ms(),
        };
        self.store.call(move |s| s.commit_checkpoint(&cp)).await?;
        opts.events.emit(Event::SessionStarted {
            session: id.clone(),
            pipeline: compiled.name.clone(),
            from_step: None,
        });
        if let Outcome::Done { .. } = outcome {
            pos.sched.ready.clear();
        }
        self.drive(compiled, &id, pos, inputs, git, opts).await
    }

    /// Loads the pipeline a session ran with (as stored with it).
    pub async fn session_pipeline(
        &self,
        session: &str,
    ) -> Result<(SessionRecord, Arc<Compiled>), RuntimeError> {
        let id = session.to_owned();
        let rec = self.store.call(move |s| s.find_session(&id)).await?;
        let compiled: Compiled = serde_json::from_str(&rec.resolved).map_err(|e| {
            RuntimeError::Refused(format!(
                "session `{}` was stored by an incompatible version of orchestra ({e})",
                rec.id
            ))
        })?;
        Ok((rec, Arc::new(compiled)))
    }

    /// Continues an interrupted, failed or paused session from its last checkpoint.
    pub async fn resume(
        &self,
        session: &str,
        opts: &DriveOptions,
    ) -> Result<SessionOutcome, RuntimeError> {
        let (rec, compiled) = self.session_pipeline(session).await?;
        let completed = |rec: &SessionRecord| {
            RuntimeError::Refused(format!(
                "session `{}` is already completed; use `orchestra replay {} --checkpoint N` to fork it",
                rec.id, rec.id
            ))
        };
        if rec.status == SessionStatus::Completed {
            return Err(completed(&rec));
        }
        self.acquire(&rec.id).await?;
        // Another process may have driven it to the end between the check and the lease.
        let (id, owner) = (rec.id.clone(), self.owner.clone());
        let now = self
            .store
            .call(move |s| {
                let now = s.find_session(&id)?;
                if now.status == SessionStatus::Completed {
                    s.release_lease(&id, &owner)?;
                }
                Ok(now)
            })
            .await?;
        if now.status == SessionStatus::Completed {
            return Err(completed(&now));
        }
        let rec = now;
        let id = rec.id.clone();
        let cps = self.store.call(move |s| s.checkpoints(&id)).await?;
        let Some(last) = cps.last().map(|c| c.step) else {
            // The process that created the session stopped before its first checkpoint: start
            // it now (nothing had run yet).
            let git = match GitWorkspace::reopen(&compiled, &rec).await {
                Ok(g) => g,
                Err(_) => match GitWorkspace::start(&compiled, &rec.id).await {
                    Ok(g) => g,
                    Err(e) => return self.fail_setup(&rec.id, e).await,
                },
            };
            let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
            return self.begin(compiled, &rec.id, inputs, git, opts).await;
        };
        let mut pos = self.restore_at(&rec.id, last, &compiled).await?;
        // What was spent after the checkpoint counts too: tasks that finished before an
        // interruption (they are reused, not run again) and failed attempts.
        let (sid, after) = (rec.id.clone(), last);
        let spent_after = self
            .store
            .call(move |s| {
                Ok(s.node_runs(&sid)?
                    .iter()
                    .filter(|r| r.step > after)
                    .map(|r| r.tokens_in.saturating_add(r.tokens_out))
                    .fold(0, u64::saturating_add))
            })
            .await?;
        pos.tokens = pos.tokens.saturating_add(spent_after);
        let git = match GitWorkspace::reopen(&compiled, &rec).await {
            Ok(g) => g,
            Err(e) => return self.fail_setup(&rec.id, e).await,
        };
        opts.events.emit(Event::SessionStarted {
            session: rec.id.clone(),
            pipeline: compiled.name.clone(),
            from_step: Some(last),
        });
        let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
        self.drive(compiled, &rec.id, pos, inputs, git, opts).await
    }

    /// Forks `session` at checkpoint `step` into a new session whose state (and repos) are
    /// those of that checkpoint. Returns the new session's id; drive it with [`Engine::resume`].
    pub async fn fork(&self, session: &str, step: u64) -> Result<String, RuntimeError> {
        let (rec, compiled) = self.session_pipeline(session).await?;
        let pos = self.restore_at(&rec.id, step, &compiled).await?;
        let id = new_session_id();
        let new = NewSession {
            id: id.clone(),
            name: rec.name.clone(),
            pipeline: rec.pipeline.clone(),
            pipeline_path: rec.pipeline_path.clone(),
            pipeline_source: rec.pipeline_source.clone(),
            resolved: rec.resolved.clone(),
            pipeline_hash: rec.pipeline_hash.clone(),
            inputs: rec.inputs.clone(),
            parent_session: Some(rec.id.clone()),
            parent_checkpoint: Some(step),
            created_at: orchestra_store::system_now_ms(),
        };
        self.store.call(move |s| s.create_session(&new)).await?;
        let shas = self.shas_at(&rec, step).await?;
        let git = match GitWorkspace::fork(&compiled, &id, &shas).await {
            Ok(g) => g,
            Err(e) => {
                let _ = self.fail_setup::<()>(&id, e).await;
                return Err(RuntimeError::Setup(format!(
                    "cannot restore the repositories of checkpoint {step}"
                )));
            }
        };
        self.store_git_meta(&id, &git).await?;
        let cp = CheckpointRecord {
            session: id.clone(),
            step,
            parent_step: None,
            scheduler: scheduler_record(&pos, true),
            snapshot: Some(Value::Object(pos.state.clone())),
            repo_shas: git.initial_shas(),
            nodes: Vec::new(),
            created_at: orchestra_store::system_now_ms(),
        };
        let fid = id.clone();
        self.store
            .call(move |s| {
                s.commit_checkpoint(&cp)?;
                s.set_status(&fid, SessionStatus::Paused, Some("forked; not yet run"))
            })
            .await?;
        Ok(id)
    }

    /// `{repo: sha}` of `session` at checkpoint `step`: the latest recorded SHA of each repo.
    pub async fn shas_at(
        &self,
        rec: &SessionRecord,
        step: u64,
    ) -> Result<Map<String, Value>, RuntimeError> {
        self.repo_shas_at(&rec.id, step).await
    }

    async fn repo_shas_at(
        &self,
        session: &str,
        step: u64,
    ) -> Result<Map<String, Value>, RuntimeError> {
        let id = session.to_owned();
        let cps = self.store.call(move |s| s.checkpoints(&id)).await?;
        let mut shas = Map::new();
        for info in cps.iter().filter(|c| c.step <= step && c.has_repo_shas) {
            let (id, st) = (session.to_owned(), info.step);
            if let Some(cp) = self.store.call(move |s| s.checkpoint(&id, st)).await?
                && let Some(Value::Object(m)) = cp.repo_shas
            {
                shas.extend(m);
            }
        }
        Ok(shas)
    }

    async fn restore_at(
        &self,
        session: &str,
        step: u64,
        compiled: &Arc<Compiled>,
    ) -> Result<Position, RuntimeError> {
        let (id, c) = (session.to_owned(), Arc::clone(compiled));
        let pos = self
            .store
            .call(move |s| Ok(restore(&*s, &id, step, &c.topology, &c.channels)))
            .await??;
        Ok(pos)
    }

    async fn store_git_meta(&self, id: &str, git: &GitWorkspace) -> Result<(), RuntimeError> {
        if let Some(meta) = git.meta() {
            let id = id.to_owned();
            self.store
                .call(move |s| s.set_session_meta(&id, "git", &meta))
                .await?;
        }
        Ok(())
    }

    async fn fail_setup<T>(&self, id: &str, e: String) -> Result<T, RuntimeError> {
        let (sid, msg, owner) = (id.to_owned(), e.clone(), self.owner.clone());
        self.store
            .call(move |s| {
                s.set_status(&sid, SessionStatus::Failed, Some(&msg))?;
                s.release_lease(&sid, &owner)
            })
            .await?;
        Err(RuntimeError::Setup(e))
    }

    async fn drive(
        &self,
        compiled: Arc<Compiled>,
        id: &str,
        mut pos: Position,
        inputs: Map<String, Value>,
        git: GitWorkspace,
        opts: &DriveOptions,
    ) -> Result<SessionOutcome, RuntimeError> {
        let setup = (|| {
            // CLI agents run where the session's changes go: the worktree of the only writable
            // repository, else the project root (never the user's checkout of a writable repo).
            let roots = git.roots();
            let workdir = match roots.values().next() {
                Some(dir) if roots.len() == 1 => dir.clone(),
                _ => compiled.project_root.clone(),
            };
            let providers = build_providers(&compiled, &*opts.env, &workdir)?;
            let tools = build_tools(&compiled, &git.roots(), opts.tools.clone())?;
            let plans = agent_plans(&compiled, &providers, &tools)?;
            Harness::new(
                Arc::clone(&compiled),
                plans,
                Arc::new(tools),
                Arc::clone(&opts.events),
                opts.stream,
            )
            .map(|h| {
                h.with_chat(crate::harness::ChatSetup {
                    human: opts.human.clone(),
                    store: Some(self.store.clone()),
                    channels: Arc::clone(&compiled.channels),
                })
            })
        })();
        let harness = match setup {
            Ok(h) => h,
            Err(e) => return self.fail_setup(id, e).await,
        };
        let sid = id.to_owned();
        self.store
            .call(move |s| s.set_status(&sid, SessionStatus::Running, None))
            .await?;
        let (sid, owner) = (id.to_owned(), self.owner.clone());
        // Cancel on Ctrl-C, or when the lease is lost.
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut user_cancel = opts.cancel.clone();
        let store = self.store.clone();
        let watcher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_TTL / 3);
            tick.tick().await;
            // A dropped cancel sender means "never cancelled": stop watching it, keep renewing.
            let mut watch_user = true;
            loop {
                tokio::select! {
                    changed = user_cancel.changed(), if watch_user => {
                        if changed.is_err() { watch_user = false; continue; }
                        if *user_cancel.borrow() { let _ = cancel_tx.send(true); return; }
                    }
                    _ = tick.tick() => {
                        let (sid, o) = (sid.clone(), owner.clone());
                        let held = store.call(move |s| s.renew_lease(&sid, &o, LEASE_TTL)).await;
                        if !matches!(held, Ok(true)) {
                            tracing::warn!("lost the session lease; stopping");
                            let _ = cancel_tx.send(true);
                            return;
                        }
                    }
                }
            }
        });
        let limits = ExecLimits {
            max_steps: opts.limits.max_steps.unwrap_or(compiled.limits.max_steps),
            max_failures: compiled.limits.max_failures,
            max_parallel: compiled.limits.max_parallel,
            max_tokens: opts.limits.max_tokens.or(compiled.limits.max_tokens),
            per_agent: compiled
                .agents
                .iter()
                .map(|a| {
                    // A chat waits for a human as long as it takes; its agent turns are timed
                    // by the harness.
                    let timeout = match a.mode {
                        orchestra_spec::Mode::Interactive => Duration::MAX,
                        orchestra_spec::Mode::Autonomous => a.timeout.0,
                    };
                    (timeout, a.retries)
                })
                .collect(),
            retry_base: opts.retry_base,
            snapshot_every: compiled.project.snapshot_every,
        };
        let router: Arc<dyn Router> = Arc::new(ConditionRouter::new(
            Arc::clone(&compiled),
            opts.conditions.clone(),
        ));
        let last_shas = if git.is_empty() {
            Map::new()
        } else {
            self.repo_shas_at(id, pos.sched.step).await?
        };
        let (runner, hooks) = git.attach(
            &compiled,
            id,
            Arc::new(harness),
            opts.tools.clone(),
            Arc::clone(&opts.events),
            &last_shas,
        );
        let exec = Executor {
            session: id.to_owned(),
            topo: Arc::clone(&compiled.topology),
            channels: Arc::clone(&compiled.channels),
            limits,
            runner,
            router,
            hooks,
            store: self.store.clone(),
            events: Arc::clone(&opts.events),
            inputs: Arc::new(inputs.clone()),
            cancel: cancel_rx,
        };
        // Driven from a task of the runtime rather than from here: the agents it spawns then
        // start on the same worker thread, so a step of one agent involves no hand-off between
        // threads.
        let driven = tokio::spawn(async move {
            let finish = exec.run(&mut pos).await;
            (finish, pos)
        })
        .await;
        watcher.abort();
        let (finish, driven_pos) = match driven {
            Ok(done) => done,
            // A panic goes on as if the executor had run here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(RuntimeError::Setup(format!(
                    "the session's executor was stopped: {e}"
                )));
            }
        };
        pos = driven_pos;
        let finish = finish?;
        let mut outputs = Vec::new();
        let finish = match finish {
            Finish::Completed { .. } => {
                match crate::outputs::write_outputs(&compiled, id, &inputs, &pos.state) {
                    Ok(paths) => {
                        outputs = paths;
                        finish
                    }
                    Err(e) => Finish::Failed {
                        error: format!(
                            "the session completed but its outputs could not be written: {e}"
                        ),
                    },
                }
            }
            other => other,
        };
        let (status, error) = match &finish {
            Finish::Completed { .. } => (SessionStatus::Completed, None),
            Finish::Failed { error } => (SessionStatus::Failed, Some(error.clone())),
            Finish::Stopped { reason } => {
                (SessionStatus::Failed, Some(format!("stopped: {reason}")))
            }
            Finish::Paused { node, reason } => (
                SessionStatus::Paused,
                Some(format!("waiting at `{node}`: {reason}")),
            ),
            Finish::Interrupted => (
                SessionStatus::Failed,
                Some("interrupted; resume it to go on".to_owned()),
            ),
        };
        let (sid, owner) = (id.to_owned(), self.owner.clone());
        let meta_finish = json!({ "steps": pos.sched.step, "tokens": pos.tokens });
        self.store
            .call(move |s| {
                s.set_status(&sid, status, error.as_deref())?;
                s.set_session_meta(&sid, "last_drive", &meta_finish)?;
                s.release_lease(&sid, &owner)
            })
            .await?;
        Ok(SessionOutcome {
            session: id.to_owned(),
            finish,
            steps: pos.sched.step,
            tokens: pos.tokens,
            state: pos.state,
            outputs,
        })
    }
}
