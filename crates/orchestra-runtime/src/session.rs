//! Sessions end to end: start a run of a compiled pipeline, resume one, fork one at a
//! checkpoint (replay).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use orchestra_graph::Compiled;
use orchestra_graph::scheduler::{Outcome as Scheduled, Scheduler};
use orchestra_store::{CheckpointRecord, CostTally, NewSession, SessionRecord, SessionStatus};

use crate::edit::{Edit, carried, edit_error, with_defaults};
use crate::engine::{DriveOptions, Engine};
use crate::error::{RuntimeError, SetupError};
use crate::events::Event;
use crate::executor::{Position, Router as _, routing, scheduler_record};
use crate::gitws::GitWorkspace;
use crate::ids::new_session_id;
use crate::outcome::{Finish, Outcome};
use crate::plan::ConditionRouter;
use crate::stored::{load_pipeline, stored_pipeline};

impl Engine {
    /// Starts a new session of `compiled` and drives it.
    pub async fn run(
        &self,
        compiled: Arc<Compiled>,
        inputs: Map<String, Value>,
        name: Option<String>,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
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
    ) -> Result<Outcome, RuntimeError> {
        self.run_linked(id, compiled, inputs, name, None, opts)
            .await
    }

    /// [`Engine::run_as`] of a child session when `parent` is `(parent session, call node)`.
    pub(crate) async fn run_linked(
        &self,
        id: String,
        compiled: Arc<Compiled>,
        inputs: Map<String, Value>,
        name: Option<String>,
        parent: Option<(String, String)>,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
        let new = self.new_session(&id, &compiled, &inputs, name, parent)?;
        self.store.call(move |s| s.create_session(&new)).await?;
        let started = std::time::Instant::now();
        self.acquire(&id).await?;
        let driven = async {
            let git = match GitWorkspace::start(&compiled, &id).await {
                Ok(g) => g,
                Err(e) => return self.fail_setup(&id, e).await,
            };
            self.begin(compiled, &id, inputs, git, opts).await
        }
        .await;
        self.report_finished(&id, started, &driven, opts).await;
        driven
    }

    /// The record of a new session `id` of `compiled` (its pipeline stored with it, paths
    /// relative to the project root).
    pub(crate) fn new_session(
        &self,
        id: &str,
        compiled: &Compiled,
        inputs: &Map<String, Value>,
        name: Option<String>,
        parent: Option<(String, String)>,
    ) -> Result<NewSession, RuntimeError> {
        let (parent_session, parent_node) = parent.unzip();
        let (resolved, hash) =
            stored_pipeline(compiled).map_err(|source| RuntimeError::Stored {
                session: id.to_owned(),
                source,
            })?;
        Ok(NewSession {
            id: id.to_owned(),
            name,
            pipeline: compiled.name.clone(),
            pipeline_path: self.relative(&compiled.pipeline_path),
            pipeline_source: compiled.source.text.to_string(),
            pipeline_hash: hash,
            resolved,
            inputs: Value::Object(inputs.clone()),
            parent_session,
            parent_checkpoint: None,
            parent_node,
            created_at: orchestra_store::system_now_ms(),
        })
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
    ) -> Result<Outcome, RuntimeError> {
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
                return Ok(Outcome {
                    session: id,
                    finish: Finish::Failed { error },
                    steps: 0,
                    tokens: 0,
                    cost: CostTally::default(),
                    inherited_tokens: 0,
                    state,
                    outputs: Vec::new(),
                    branches: git.branches(),
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
        for message in git.unseen_changes() {
            opts.events.emit(Event::Warning {
                message: message.clone(),
            });
        }
        if let Scheduled::Done { .. } = outcome {
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
        let compiled =
            load_pipeline(&rec.resolved, &self.root).map_err(|source| RuntimeError::Stored {
                session: rec.id.clone(),
                source,
            })?;
        Ok((rec, Arc::new(compiled)))
    }

    /// Continues an interrupted, failed or paused session from its last checkpoint.
    pub async fn resume(
        &self,
        session: &str,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
        self.resume_edited(session, &Edit::default(), opts).await
    }

    /// [`Engine::resume`] after `edit`: the session goes on with its pipeline and state edited
    /// (see [`crate::edit`]). An edit that cannot apply is refused with
    /// [`RuntimeError::Edit`] and changes nothing.
    pub async fn resume_edited(
        &self,
        session: &str,
        edit: &Edit,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
        self.resume_from(session, edit, opts, true).await
    }

    /// [`Engine::resume_edited`]; `withdraw_stop`: whether a pending stop request is withdrawn
    /// (someone resumes it) or kept (a worker's claim: the drive stops at its first renewal).
    pub(crate) async fn resume_from(
        &self,
        session: &str,
        edit: &Edit,
        opts: &DriveOptions,
        withdraw_stop: bool,
    ) -> Result<Outcome, RuntimeError> {
        let (rec, compiled) = self.session_pipeline(session).await?;
        let completed = |rec: &SessionRecord| RuntimeError::Completed {
            session: rec.id.clone(),
        };
        if rec.status == SessionStatus::Completed {
            return Err(completed(&rec));
        }
        self.acquire(&rec.id).await?;
        // Another process may have driven it to the end between the check and the lease.
        let (id, owner) = (rec.id.clone(), self.owner.clone());
        let now = self
            .store
            .call_for(&rec.id, move |s| {
                let now = s.find_session(&id)?;
                if now.status == SessionStatus::Completed {
                    s.release_lease(&id, &owner)?;
                } else if withdraw_stop {
                    crate::stop_request::withdraw(s, &now)?;
                }
                Ok(now)
            })
            .await?;
        if now.status == SessionStatus::Completed {
            return Err(completed(&now));
        }
        let (now, compiled) = if edit.is_empty() {
            (now, compiled)
        } else {
            if let Err(e) = self.edit_leased(&now, edit).await {
                let (id, owner) = (now.id.clone(), self.owner.clone());
                self.store
                    .call(move |s| s.release_lease(&id, &owner))
                    .await?;
                return Err(e);
            }
            self.session_pipeline(&now.id).await?
        };
        let started = std::time::Instant::now();
        let driven = self.resume_leased(now, compiled, opts).await;
        self.report_finished(&rec.id, started, &driven, opts).await;
        driven
    }

    /// [`Engine::resume`] once the session's lease is held.
    async fn resume_leased(
        &self,
        rec: SessionRecord,
        compiled: Arc<Compiled>,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
        let id = rec.id.clone();
        let cps = self
            .store
            .call_for(&rec.id, move |s| s.checkpoints(&id))
            .await?;
        let Some(last) = cps.last().map(|c| c.step) else {
            // The process that created the session stopped before its first checkpoint: start
            // it now (nothing had run yet).
            let git = match GitWorkspace::reopen(&compiled, &rec, &Map::new()).await {
                Ok(g) => g,
                Err(_) => match GitWorkspace::start(&compiled, &rec.id).await {
                    Ok(g) => g,
                    Err(e) => return self.fail_setup(&rec.id, e).await,
                },
            };
            let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
            return self.begin(compiled, &rec.id, inputs, git, opts).await;
        };
        let (mut pos, made_by, current) = self.restore_in(&rec, last, &compiled).await?;
        // What was spent after the checkpoint counts too: tasks that finished before an
        // interruption (they are reused, not run again) and failed attempts.
        let (sid, after) = (rec.id.clone(), last);
        let (spent_after, cost_after) = self
            .store
            .call_for(&rec.id, move |s| {
                let mut spent = (0u64, CostTally::default());
                for r in s.node_runs(&sid)?.iter().filter(|r| r.step > after) {
                    spent.0 = spent
                        .0
                        .saturating_add(r.tokens_in.saturating_add(r.tokens_out));
                    spent.1.add(r.cost_usd);
                }
                Ok(spent)
            })
            .await?;
        pos.tokens = pos.tokens.saturating_add(spent_after);
        pos.cost.merge(&cost_after);
        // An edited pipeline or state: checkpoint `last + 1` carries it.
        let edited = self
            .apply_edits(&rec, last, (&made_by, current), &compiled, &mut pos)
            .await?;
        pos.inherited_tokens = inherited_tokens(&rec.meta);
        pos.inherited_cost = inherited_cost(&rec.meta);
        // The repos as the checkpoint recorded them: an interrupted merge is redone from there.
        let last_shas = self.repo_shas_at(&rec.id, last).await?;
        let git = match GitWorkspace::reopen(&compiled, &rec, &last_shas).await {
            Ok(g) => g,
            Err(e) => return self.fail_setup(&rec.id, e).await,
        };
        // Where the repositories and worktrees are now (the project may have moved): cleanup
        // reads them from here.
        self.store_git_meta(&rec.id, &git).await?;
        opts.events.emit(Event::SessionStarted {
            session: rec.id.clone(),
            pipeline: compiled.name.clone(),
            from_step: Some(if edited { last + 1 } else { last }),
        });
        let inputs = with_defaults(&compiled, &rec.inputs);
        self.drive(compiled, &rec.id, pos, inputs, git, opts).await
    }

    /// Forks `session` at checkpoint `step` into a new session whose state (and repos) are
    /// those of that checkpoint. Returns the new session's id; drive it with [`Engine::resume`].
    pub async fn fork(&self, session: &str, step: u64) -> Result<String, RuntimeError> {
        self.fork_edited(session, step, &Edit::default()).await
    }

    /// [`Engine::fork`] with `edit` applied to the new session: it goes on with the edited
    /// pipeline (the original session keeps its own) from the checkpoint's state with the
    /// `set`s applied. An edit that cannot apply is refused with [`RuntimeError::Edit`]
    /// before anything is created.
    pub async fn fork_edited(
        &self,
        session: &str,
        step: u64,
        edit: &Edit,
    ) -> Result<String, RuntimeError> {
        let (rec, compiled) = self.session_pipeline(session).await?;
        let (pos, made_by, current) = self.restore_in(&rec, step, &compiled).await?;
        let target = edit
            .pipeline
            .clone()
            .unwrap_or_else(|| Arc::clone(&made_by));
        let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
        let pos = carried(&made_by, &target, step, pos, &edit.set, &inputs)
            .map_err(|errors| edit_error(&rec.id, step, errors))?;
        let (pipeline_path, pipeline_source, resolved, pipeline_hash) =
            if current && edit.pipeline.is_none() {
                (
                    rec.pipeline_path.clone(),
                    rec.pipeline_source.clone(),
                    rec.resolved.clone(),
                    rec.pipeline_hash.clone(),
                )
            } else {
                let (resolved, hash) =
                    stored_pipeline(&target).map_err(|source| RuntimeError::Stored {
                        session: rec.id.clone(),
                        source,
                    })?;
                (
                    self.relative(&target.pipeline_path),
                    target.source.text.to_string(),
                    resolved,
                    hash,
                )
            };
        let compiled = target;
        let id = new_session_id();
        let new = NewSession {
            id: id.clone(),
            name: rec.name.clone(),
            pipeline: compiled.name.clone(),
            pipeline_path,
            pipeline_source,
            resolved,
            pipeline_hash,
            inputs: rec.inputs.clone(),
            parent_session: Some(rec.id.clone()),
            parent_checkpoint: Some(step),
            parent_node: None,
            created_at: orchestra_store::system_now_ms(),
        };
        self.store.call(move |s| s.create_session(&new)).await?;
        let shas = self.shas_at(&rec, step).await?;
        let git = match GitWorkspace::fork(&compiled, &id, &shas).await {
            Ok(g) => g,
            Err(source) => {
                let error = RuntimeError::Fork { step, source };
                self.record_failure(&id, &error).await?;
                return Err(error);
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
        let mut meta = json!({ "tokens": pos.tokens, "cost": pos.cost });
        if !edit.is_empty() {
            meta["edit"] = json!({
                "pipeline_path": edit.pipeline.as_ref().map(|p| self.relative(&p.pipeline_path)),
                "set": edit.set.iter().cloned().collect::<Map<String, Value>>(),
            });
        }
        let fid = id.clone();
        self.store
            .call(move |s| {
                s.commit_checkpoint(&cp)?;
                s.set_session_meta(&fid, FORK_META, &meta)?;
                s.set_status(&fid, SessionStatus::Paused, Some("forked; not yet run"))
            })
            .await?;
        Ok(id)
    }

    /// The state of `session` at checkpoint `step` (exactly as the run had it).
    pub async fn state_at(
        &self,
        session: &str,
        step: u64,
    ) -> Result<orchestra_graph::state::State, RuntimeError> {
        let (rec, compiled) = self.session_pipeline(session).await?;
        Ok(self.restore_in(&rec, step, &compiled).await?.0.state)
    }

    /// `{repo: sha}` of `session` at checkpoint `step`: the latest recorded SHA of each repo.
    pub async fn shas_at(
        &self,
        rec: &SessionRecord,
        step: u64,
    ) -> Result<Map<String, Value>, RuntimeError> {
        self.repo_shas_at(&rec.id, step).await
    }

    pub(crate) async fn repo_shas_at(
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

    async fn store_git_meta(&self, id: &str, git: &GitWorkspace) -> Result<(), RuntimeError> {
        if let Some(meta) = git.meta() {
            let sid = id.to_owned();
            self.store
                .call_for(id, move |s| s.set_session_meta(&sid, "git", &meta))
                .await?;
        }
        Ok(())
    }

    /// Records that setting the session up failed (it can be resumed once the cause is
    /// fixed), and returns the error.
    pub(crate) async fn fail_setup<T>(&self, id: &str, e: SetupError) -> Result<T, RuntimeError> {
        let error = RuntimeError::Setup(e);
        self.record_failure(id, &error).await?;
        Err(error)
    }

    /// Stores `error` as why the session failed and releases its lease; refused with
    /// `LeaseLost` (nothing written) when another process took the lease over.
    pub(crate) async fn record_failure(
        &self,
        id: &str,
        error: &RuntimeError,
    ) -> Result<(), RuntimeError> {
        if error.is_connection_lost() {
            // Not the session's failure: the database went away. It stays as it was recorded
            // (running, under a lease that expires), resumable or claimed again once the
            // server is back, rather than failed should the server be back by now.
            return Ok(());
        }
        let (sid, owner, ttl) = (id.to_owned(), self.owner.clone(), self.lease_ttl);
        let msg = crate::error::error_chain(error);
        self.store
            .call_for(id, move |s| {
                // A session driven under a lease is failed only by its holder (a fork, never
                // leased, has none).
                if s.find_session(&sid)?.lease_owner.is_some() {
                    crate::lease::still_ours(s, &sid, &owner, ttl)?;
                }
                s.set_status(&sid, SessionStatus::Failed, Some(&msg))?;
                s.release_lease(&sid, &owner)
            })
            .await?;
        Ok(())
    }

    /// `path` as stored: relative to the project root when it is under it.
    pub(crate) fn relative(&self, path: &std::path::Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Session meta key of a fork: `{"tokens": N, "cost": CostTally}`, what its parent spent
/// before the fork.
pub const FORK_META: &str = "fork";

/// The tokens a fork inherited from its parent, from its session meta (0 for other sessions).
pub fn inherited_tokens(meta: &Map<String, Value>) -> u64 {
    meta.get(FORK_META)
        .and_then(|f| f.get("tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// What a fork's parent's runs cost before the fork, from its session meta (nothing for other
/// sessions, and for forks made before the meta kept it).
pub fn inherited_cost(meta: &Map<String, Value>) -> CostTally {
    meta.get(FORK_META)
        .and_then(|f| f.get("cost"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}
