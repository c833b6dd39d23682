//! Git within a step: each agent that writes a repository has its changes committed when it
//! finishes (its name, the session and the step in the message and trailers). When two or more
//! writers of one repository run in the same super-step, each works in its own fork worktree
//! (branched from the session branch), and at the end of the step the forks are merged back in
//! declaration order; a conflict is handled per the repository's `on_conflict`:
//!
//! - `agent`: the merge is committed with conflict markers and the conflicts go to state as
//!   `metadata.conflicts` (a list of `{repo, agent, step, branch, files: [{path, base, ours,
//!   theirs, with_markers}]}`), for the next agent to resolve; a later clean merge of parallel
//!   writers empties the list;
//! - `pause`: the session pauses with the session worktree mid-merge; a human resolves the files
//!   there and resumes, which concludes the merge;
//! - `fail`: the merge is aborted and the session fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};

use orchestra_git::{
    AgentWorktree, CommitInfo, Conflict, ConflictMode, GitError, GitSettings, MergeOutcome,
    SessionRepo, commit_all, fork_worktree, head_sha, merge_back,
};
use orchestra_graph::Compiled;
use orchestra_graph::state::State;
use orchestra_spec::{Mode, OnConflict};
use orchestra_tools::Registry;

use crate::events::{Event, EventSink};
use crate::hooks::{HookError, StepEffects, StepHooks};
use crate::plan::build_tools;
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner};

mod push;
mod state;

use state::{conflict_json, has_conflicts};

/// One writable repository of the session.
struct RepoGit {
    session: SessionRepo,
    mode: ConflictMode,
    /// The agents that can change it, in declaration order.
    writers: Vec<String>,
    /// Its remote (`url:`): its branches are pushed there after each commit.
    url: Option<String>,
    /// Serializes git work on the repository (held inside the blocking task, so an agent
    /// cut off by a timeout cannot overlap its git work with the next attempt's).
    lock: Arc<Mutex<()>>,
}

/// The git side of a drive, shared by [`GitRunner`] and the step hooks.
pub(crate) struct GitStep {
    repos: Vec<RepoGit>,
    settings: GitSettings,
    compiled: Arc<Compiled>,
    session: String,
    roots: HashMap<String, PathBuf>,
    tools: Registry,
    events: Arc<dyn EventSink>,
    /// This step and the (repo index, agent) pairs that work in fork worktrees.
    forks: Mutex<(u64, Vec<(usize, String)>)>,
    /// `{repo: sha}` as of the last checkpoint.
    last: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GitStep {
    #[expect(clippy::too_many_arguments, reason = "assembled once per drive")]
    pub(crate) fn new(
        repos: Vec<SessionRepo>,
        settings: GitSettings,
        compiled: Arc<Compiled>,
        session: &str,
        roots: HashMap<String, PathBuf>,
        tools: Registry,
        events: Arc<dyn EventSink>,
        last_shas: &Map<String, Value>,
    ) -> Self {
        let repos = repos
            .into_iter()
            .map(|session| {
                let resolved = compiled.repos.iter().find(|r| r.name == session.repo_name);
                let mode = match resolved.map(|r| r.on_conflict) {
                    Some(OnConflict::Agent) => ConflictMode::Agent,
                    Some(OnConflict::Fail) => ConflictMode::Fail,
                    Some(OnConflict::Pause) | None => ConflictMode::Pause,
                };
                let writers = compiled
                    .agents
                    .iter()
                    .filter(|a| a.write_repos.contains(&session.repo_name))
                    .map(|a| a.name.clone())
                    .collect();
                RepoGit {
                    url: resolved.and_then(|r| r.url.clone()),
                    session,
                    mode,
                    writers,
                    lock: Arc::new(Mutex::new(())),
                }
            })
            .collect();
        let last = last_shas
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        GitStep {
            repos,
            settings,
            session: session.to_owned(),
            compiled,
            roots,
            tools,
            events,
            forks: Mutex::new((0, Vec::new())),
            last: Mutex::new(last),
        }
    }

    /// Runs `f` on the blocking pool while holding repository `idx`'s lock.
    async fn on_repo<T: Send + 'static>(
        &self,
        idx: usize,
        f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, Failure> {
        let guard = Arc::clone(&self.repos[idx].lock);
        tokio::task::spawn_blocking(move || {
            let _held = lock(&guard);
            f()
        })
        .await
        .map_err(Failure::Task)?
        .map_err(Failure::Git)
    }

    /// Runs one agent: in fork worktrees where it writes in parallel with others, then commits
    /// its changes in every repository it can write.
    async fn run_agent(
        &self,
        inner: &dyn NodeRunner,
        call: &NodeCall,
    ) -> Result<NodeResult, NodeError> {
        let mine: Vec<usize> = (0..self.repos.len())
            .filter(|&i| self.repos[i].writers.iter().any(|w| **w == *call.agent))
            .collect();
        if mine.is_empty() {
            return inner.run(call).await;
        }
        let forking: Vec<usize> = {
            let plan = lock(&self.forks);
            mine.iter()
                .copied()
                .filter(|&i| plan.0 == call.step && plan.1.contains(&(i, call.agent.to_string())))
                .collect()
        };
        let (agent, step) = (call.agent.to_string(), call.step);
        // An interactive agent's chat is rebuilt from its stored turns without running their
        // tool calls again, so its fork from an earlier attempt (a pause) is kept; any other
        // agent starts over, in a fresh fork at the session branch's tip.
        let keep_fork = self
            .compiled
            .agents
            .get(call.agent_idx)
            .is_some_and(|a| a.mode == Mode::Interactive);
        let mut dirs = Vec::with_capacity(mine.len());
        let mut roots = self.roots.clone();
        for &i in &mine {
            let repo = &self.repos[i];
            if !forking.contains(&i) {
                dirs.push((
                    i,
                    repo.session.worktree.clone(),
                    repo.session.branch.clone(),
                ));
                continue;
            }
            let (sr, a, st) = (repo.session.clone(), agent.clone(), self.settings.clone());
            let fork = self
                .on_repo(i, move || {
                    let earlier = AgentWorktree::describe(&sr, &a, step, &st);
                    if keep_fork && earlier.path.exists() && head_sha(&earlier.path).is_ok() {
                        tracing::debug!(
                            agent = a,
                            step,
                            "continuing in the fork of the earlier attempt"
                        );
                        return Ok(earlier);
                    }
                    fork_worktree(&sr, &a, step, &st)
                })
                .await
                .map_err(|e| {
                    NodeError::Fatal(format!(
                        "cannot make a worktree for `{agent}` in repository `{}`: {e}",
                        repo.session.repo_name
                    ))
                })?;
            roots.insert(repo.session.repo_name.clone(), fork.work_dir());
            dirs.push((i, fork.path, fork.branch));
        }
        // A command-line agent runs in the (first) repository it writes: in its fork, or the
        // session worktree.
        let workdir = mine
            .first()
            .and_then(|&i| roots.get(&self.repos[i].session.repo_name))
            .map(|d| Arc::from(d.as_path()));
        let result = if forking.is_empty() {
            let here = NodeCall {
                workdir,
                ..call.clone()
            };
            inner.run(&here).await?
        } else {
            // Its repository tools act on its fork.
            let registry = build_tools(&self.compiled, &roots, self.tools.clone())
                .map_err(|e| NodeError::Fatal(crate::error::error_chain(&e)))?;
            let forked = NodeCall {
                tools: Some(Arc::new(registry)),
                workdir,
                ..call.clone()
            };
            inner.run(&forked).await?
        };
        for (i, dir, branch) in dirs {
            let (info_agent, session, pipeline) = (
                agent.clone(),
                self.session.clone(),
                self.compiled.name.clone(),
            );
            let settings = self.settings.clone();
            let committed = self
                .on_repo(i, move || {
                    let info = CommitInfo {
                        agent: &info_agent,
                        session: &session,
                        pipeline: &pipeline,
                        step,
                    };
                    commit_all(&dir, &info, &settings)
                })
                .await;
            if let Err(e) = committed {
                return Err(NodeError::Fatal(format!(
                    "cannot commit the changes of `{agent}` in repository `{}`: {e}",
                    self.repos[i].session.repo_name
                )));
            }
            if let Err(e) = self.push(i, &branch).await {
                return Err(NodeError::Fatal(format!(
                    "cannot push the changes of `{agent}` in repository `{}` (they are committed in this clone on {branch}): {e}",
                    self.repos[i].session.repo_name
                )));
            }
        }
        Ok(result)
    }

    /// Merges the forks of repository `idx` written by `writers` at `step`; returns the
    /// conflicts committed with markers (`agent` mode).
    async fn merge(
        &self,
        idx: usize,
        writers: &[String],
        step: u64,
    ) -> Result<Vec<Conflict>, HookError> {
        let repo = &self.repos[idx];
        let forks: Vec<AgentWorktree> = writers
            .iter()
            .map(|a| AgentWorktree::describe(&repo.session, a, step, &self.settings))
            .collect();
        let (sr, mode, st) = (repo.session.clone(), repo.mode, self.settings.clone());
        let name = &repo.session.repo_name;
        match self
            .on_repo(idx, move || merge_back(&sr, &forks, mode, &st))
            .await
        {
            Ok(MergeOutcome::Merged { conflicts, .. }) => Ok(conflicts),
            Ok(MergeOutcome::Stopped { conflict, .. }) => {
                let what = format!(
                    "merge conflict in repository `{name}`: the changes of `{}` (step {}) conflict with the session branch in {}",
                    conflict.agent,
                    conflict.step,
                    quoted(&conflict.paths())
                );
                Err(match mode {
                    ConflictMode::Fail => HookError::Failed(format!(
                        "{what} (on_conflict: fail; the merge was aborted, the agent's work stays on branch {})",
                        conflict.branch
                    )),
                    ConflictMode::Pause | ConflictMode::Agent => HookError::Pause {
                        node: conflict.agent.clone(),
                        reason: format!(
                            "{what}; resolve them in {} (edit the files so no conflict markers are left; committing is optional), then `orchestra resume {}`",
                            repo.session.worktree.display(),
                            self.session
                        ),
                    },
                })
            }
            Err(Failure::Git(GitError::UnresolvedConflicts { path, files })) => {
                Err(HookError::Pause {
                    node: writers.first().cloned().unwrap_or_default(),
                    reason: format!(
                        "the merge conflict in repository `{name}` is not resolved yet: {} still hold conflict markers in {}; resolve them, then `orchestra resume {}`",
                        quoted(&files.iter().map(String::as_str).collect::<Vec<_>>()),
                        path.display(),
                        self.session
                    ),
                })
            }
            Err(e) => Err(HookError::Failed(format!(
                "cannot merge the parallel writers of repository `{name}`: {e}"
            ))),
        }
    }
}

/// Why git work failed: git itself, or the blocking task running it.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Shown with libgit2's reason (the error's causes).
    #[error("{}", crate::error::error_chain(.0))]
    Git(GitError),
    #[error("a git task did not finish: {0}")]
    Task(tokio::task::JoinError),
}

fn quoted(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl StepHooks for GitStep {
    fn before_step<'a>(
        &'a self,
        step: u64,
        nodes: &'a [String],
    ) -> BoxFuture<'a, Result<(), HookError>> {
        let mut forks = Vec::new();
        for (i, repo) in self.repos.iter().enumerate() {
            let writers: Vec<&String> = nodes.iter().filter(|n| repo.writers.contains(n)).collect();
            if writers.len() >= 2 {
                forks.extend(writers.into_iter().map(|a| (i, a.clone())));
            }
        }
        *lock(&self.forks) = (step, forks);
        Box::pin(async { Ok(()) })
    }

    fn before_checkpoint<'a>(
        &'a self,
        step: u64,
        nodes: &'a [String],
        state: &'a State,
    ) -> BoxFuture<'a, Result<StepEffects, HookError>> {
        Box::pin(async move {
            let mut shas = Map::new();
            let mut conflicts = Vec::new();
            let mut merged = false;
            for (i, repo) in self.repos.iter().enumerate() {
                let writers: Vec<String> = nodes
                    .iter()
                    .filter(|n| repo.writers.contains(n))
                    .cloned()
                    .collect();
                if writers.is_empty() {
                    continue;
                }
                let name = repo.session.repo_name.clone();
                if writers.len() >= 2 {
                    merged = true;
                    for c in self.merge(i, &writers, step).await? {
                        self.events.emit(Event::Warning {
                            message: format!(
                                "merge conflict in repository `{name}`: the changes of `{}` conflict in {}; committed with conflict markers for the next agent (state: metadata.conflicts)",
                                c.agent,
                                quoted(&c.paths())
                            ),
                        });
                        conflicts.push(conflict_json(&name, &c));
                    }
                }
                let worktree = repo.session.worktree.clone();
                let head = self
                    .on_repo(i, move || head_sha(&worktree))
                    .await
                    .map_err(|e| HookError::Failed(format!("repository `{name}`: {e}")))?;
                let branch = repo.session.branch.clone();
                self.push(i, &branch).await.map_err(|e| {
                    HookError::Failed(format!(
                        "cannot push {branch} of repository `{name}` (the step's commits are in this clone): {e}"
                    ))
                })?;
                if writers.len() >= 2 {
                    let forks = writers
                        .iter()
                        .map(|a| {
                            AgentWorktree::describe(&repo.session, a, step, &self.settings).branch
                        })
                        .collect();
                    if let Err(e) = self.forget_forks(i, forks).await {
                        // Their commits are on the pushed session branch; cleanup removes them.
                        self.events.emit(Event::Warning {
                            message: format!("cannot delete the merged forks' branches of repository `{name}` from its remote: {e}"),
                        });
                    }
                }
                let mut last = lock(&self.last);
                if last.get(&name) != Some(&head) {
                    shas.insert(name.clone(), json!(head));
                    last.insert(name, head);
                }
            }
            let mut writes = Vec::new();
            if !conflicts.is_empty() {
                writes.push(("metadata".to_owned(), json!({ "conflicts": conflicts })));
            } else if merged && has_conflicts(state) {
                writes.push(("metadata".to_owned(), json!({ "conflicts": [] })));
            }
            Ok(StepEffects {
                repo_shas: (!shas.is_empty()).then_some(Value::Object(shas)),
                writes,
            })
        })
    }
}

/// A [`NodeRunner`] that puts git around another: see the module documentation.
pub(crate) struct GitRunner {
    inner: Arc<dyn NodeRunner>,
    git: Arc<GitStep>,
}

impl GitRunner {
    pub(crate) fn new(inner: Arc<dyn NodeRunner>, git: Arc<GitStep>) -> Self {
        GitRunner { inner, git }
    }
}

impl NodeRunner for GitRunner {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        Box::pin(self.git.run_agent(self.inner.as_ref(), call))
    }
}
