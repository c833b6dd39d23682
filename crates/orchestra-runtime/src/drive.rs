//! Driving a session: set up its providers, tools and git, run the executor under the lease,
//! write its outputs and store how the drive ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use orchestra_graph::Compiled;
use orchestra_store::{SessionStatus, StoreError};

use crate::call_node::CallNodes;
use crate::command_node::{COMMAND_GRACE, CommandNodes};
use crate::engine::{DriveOptions, Engine};
use crate::error::RuntimeError;
use crate::events::Event;
use crate::executor::{ExecLimits, Executor, Position, Router};
use crate::gitws::GitWorkspace;
use crate::harness::Harness;
use crate::lease::watch_lease;
use crate::outcome::{Finish, Outcome, usd};
use crate::plan::{ConditionRouter, agent_plans, build_providers, build_tools, unpriced_models};

impl Engine {
    /// Drives session `id` from `pos` until it ends, fails, stops, pauses or is cancelled.
    pub(crate) async fn drive(
        &self,
        compiled: Arc<Compiled>,
        id: &str,
        mut pos: Position,
        inputs: Map<String, Value>,
        git: GitWorkspace,
        opts: &DriveOptions,
    ) -> Result<Outcome, RuntimeError> {
        let mcp = Arc::new(crate::plan::mcp_servers(&compiled, Arc::clone(&opts.env)));
        let setup = (|| {
            // CLI agents run where the session's changes go: the worktree of the only writable
            // repository, else the project root (never the user's checkout of a writable repo).
            let roots = git.roots();
            let workdir = match roots.values().next() {
                Some(dir) if roots.len() == 1 => dir.clone(),
                _ => compiled.project_root.clone(),
            };
            let providers = build_providers(
                &compiled,
                &*opts.env,
                &workdir,
                Some(Arc::clone(&opts.events)),
            )?;
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
                h.with_mcp(Arc::clone(&mcp))
                    .with_chat(crate::harness::ChatSetup {
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
            .call_for(id, move |s| {
                s.set_status(&sid, SessionStatus::Running, None)
            })
            .await?;
        // From here on, what the drive writes is fenced on its lease: once another process
        // took the session over, nothing more of this drive is stored.
        self.store.fence(id, Some(self.owner.clone()));
        let _unfence = Unfence(self.store.clone(), id.to_owned());
        // Cancel on Ctrl-C, or when the lease is lost.
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let watcher = watch_lease(
            self.store.clone(),
            id.to_owned(),
            (self.owner.clone(), self.lease_ttl),
            opts.cancel.clone(),
            cancel_tx,
        );
        let limits = ExecLimits {
            max_steps: opts.limits.max_steps.unwrap_or(compiled.limits.max_steps),
            max_failures: compiled.limits.max_failures,
            max_parallel: compiled.limits.max_parallel,
            max_tokens: opts.limits.max_tokens.or(compiled.limits.max_tokens),
            max_cost: opts.limits.max_cost.or(compiled.limits.max_cost),
            replaced_steps: opts.limits.max_steps.map(|_| compiled.limits.max_steps),
            replaced_tokens: opts.limits.max_tokens.map(|_| compiled.limits.max_tokens),
            replaced_cost: opts.limits.max_cost.map(|_| compiled.limits.max_cost),
            per_agent: compiled
                .agents
                .iter()
                .map(|a| {
                    // A chat waits for a human as long as it takes; its agent turns are timed
                    // by the harness.
                    // A command node's program is killed by its own timeout, which names it.
                    // A call node's child times its own nodes.
                    let timeout = match a.mode {
                        orchestra_spec::Mode::Interactive => Duration::MAX,
                        orchestra_spec::Mode::Autonomous if a.is_call() => Duration::MAX,
                        orchestra_spec::Mode::Autonomous if a.is_command() => {
                            a.timeout.0.saturating_add(COMMAND_GRACE)
                        }
                        orchestra_spec::Mode::Autonomous => a.timeout.0,
                    };
                    (timeout, a.retries)
                })
                .collect(),
            retry_base: opts.retry_base,
            snapshot_every: compiled.project.snapshot_every,
        };
        if let Some(max) = limits.max_cost {
            let unpriced = unpriced_models(&compiled);
            if !unpriced.is_empty() {
                opts.events.emit(Event::Warning {
                    message: format!(
                        "limits.max_cost ({}) cannot count the runs of {}: no price is known for \
                         {}; add it under `prices:` (USD per million tokens) in the pipeline or \
                         orchestra.yaml",
                        usd(max),
                        if unpriced.len() == 1 {
                            "this model"
                        } else {
                            "these models"
                        },
                        unpriced
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let router: Arc<dyn Router> = Arc::new(ConditionRouter::new(
            Arc::clone(&compiled),
            opts.conditions.clone(),
        ));
        let last_shas = if git.is_empty() {
            Map::new()
        } else {
            self.repo_shas_at(id, pos.sched.step).await?
        };
        let nodes = CommandNodes::new(Arc::new(harness), Arc::clone(&compiled), git.roots());
        let nodes = CallNodes::wrap(Arc::new(nodes), &compiled, self, opts);
        let (runner, hooks) = git.attach(
            &compiled,
            id,
            nodes,
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
        drop(watcher);
        // The drive's MCP servers stop with it (a drive dropped midway kills their groups as
        // they are dropped).
        mcp.shutdown().await;
        let (finish, driven_pos) = match driven {
            Ok(done) => done,
            // A panic goes on as if the executor had run here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(RuntimeError::Stopped(e)),
        };
        pos = driven_pos;
        let finish = match finish {
            Ok(f) => f,
            Err(e) if e.store_error().is_some_and(StoreError::is_lease_lost) => {
                // Another process drives the session now: its step results are dropped, and
                // nothing of the session (status, lease) is touched.
                return Err(RuntimeError::Store(e));
            }
            Err(e) => {
                // The store failed: record that if it still can (resume redoes the step).
                let error = RuntimeError::Store(e);
                if let Err(also) = self.record_failure(id, &error).await {
                    tracing::error!(session = id, error = %also, "cannot record the session's failure");
                }
                return Err(error);
            }
        };
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
        let (status, error) = (finish.status(), finish.note());
        let (sid, owner, ttl) = (id.to_owned(), self.owner.clone(), self.lease_ttl);
        let meta_finish = json!({ "steps": pos.sched.step, "tokens": pos.tokens, "cost": pos.cost, "outputs": outputs });
        self.store
            .call_for(id, move |s| {
                crate::lease::still_ours(s, &sid, &owner, ttl)?;
                s.set_status(&sid, status, error.as_deref())?;
                s.set_session_meta(&sid, "last_drive", &meta_finish)?;
                s.release_lease(&sid, &owner)
            })
            .await?;
        Ok(Outcome {
            session: id.to_owned(),
            finish,
            steps: pos.sched.step,
            tokens: pos.own_tokens(),
            inherited_tokens: pos.inherited_tokens,
            cost: pos.own_cost(),
            branches: git.branches(),
            state: pos.state,
            outputs,
        })
    }
}

/// Unfences a session's writes when its drive ends, however it ends.
struct Unfence(crate::store_worker::StoreHandle, String);

impl Drop for Unfence {
    fn drop(&mut self) {
        self.0.fence(&self.1, None);
    }
}

impl Engine {
    /// Emits [`Event::SessionFinished`] for a drive of session `id` that began at `started`
    /// (whatever its end: an [`Outcome`], or an error after the session's lease was taken).
    /// Its tokens are the session's, as `status` counts them.
    pub(crate) async fn report_finished(
        &self,
        id: &str,
        started: Instant,
        driven: &Result<Outcome, RuntimeError>,
        opts: &DriveOptions,
    ) {
        let sid = id.to_owned();
        let stored = self
            .store
            .call(move |s| {
                let runs = s.node_runs(&sid)?;
                let last = s.checkpoints(&sid)?.last().map(|c| c.step);
                let sum = |f: fn(&orchestra_store::NodeRunRecord) -> u64| {
                    runs.iter().map(f).fold(0, u64::saturating_add)
                };
                Ok((sum(|r| r.tokens_in), sum(|r| r.tokens_out), last))
            })
            .await;
        let (tokens_in, tokens_out, last) = stored.unwrap_or_else(|e| {
            tracing::warn!(session = id, error = %e, "cannot read the session's tokens");
            (0, 0, None)
        });
        let (status, steps, error) = match driven {
            Ok(out) => (
                out.finish.status().as_str().to_owned(),
                out.steps,
                out.finish.note(),
            ),
            Err(e) => (
                SessionStatus::Failed.as_str().to_owned(),
                last.unwrap_or(0),
                Some(crate::error::error_chain(e)),
            ),
        };
        opts.events.emit(Event::SessionFinished {
            session: id.to_owned(),
            status,
            steps,
            tokens_in,
            tokens_out,
            duration_ms: crate::events::millis(started.elapsed()),
            error,
        });
    }
}
