//! The session's git side: a session branch and worktree for every writable repository (the
//! user's checkout is never touched), an auto-commit after each step, and the `{repo: sha}` of
//! each checkpoint where a repo changed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use orchestra_git::{
    CommitInfo, GitSettings, SessionRepo, commit_all, open_session, restore_fork, start_session,
};
use orchestra_graph::Compiled;
use orchestra_store::SessionRecord;

use crate::executor::StepHooks;
use crate::runner::BoxFuture;

/// The writable repositories of a session, each on its session branch and worktree.
#[derive(Clone, Debug, Default)]
pub struct GitWorkspace {
    repos: Vec<SessionRepo>,
    settings: GitSettings,
}

fn settings_of(compiled: &Compiled) -> GitSettings {
    let g = &compiled.project.git;
    GitSettings {
        prefix: g.prefix.clone(),
        worktrees_dir: g.worktrees.clone(),
        author_name: g.author_name.clone(),
        author_email: g.author_email.clone(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("git task failed: {e}"))?
}

impl GitWorkspace {
    /// Creates the session branches and worktrees at each writable repo's HEAD.
    pub async fn start(compiled: &Compiled, session: &str) -> Result<Self, String> {
        Self::create(compiled, session, |_| None).await
    }

    /// Creates a forked session's branches and worktrees at the given SHAs (`{repo: sha}`).
    pub async fn fork(
        compiled: &Compiled,
        session: &str,
        shas: &Map<String, Value>,
    ) -> Result<Self, String> {
        Self::create(compiled, session, |repo| {
            shas.get(repo).and_then(Value::as_str).map(str::to_owned)
        })
        .await
    }

    async fn create(
        compiled: &Compiled,
        session: &str,
        at: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let settings = settings_of(compiled);
        let mut repos = Vec::new();
        for r in compiled.repos.iter().filter(|r| r.write) {
            let (path, name, pipeline, sid, st, sha) = (
                r.path.clone(),
                r.name.clone(),
                compiled.name.clone(),
                session.to_owned(),
                settings.clone(),
                at(&r.name),
            );
            let repo = blocking(move || {
                let res = match sha {
                    Some(sha) => restore_fork(&path, &name, &pipeline, &sid, &sha, &st),
                    None => start_session(&path, &name, &pipeline, &sid, &st),
                };
                res.map_err(|e| format!("repository `{name}`: {e}"))
            })
            .await?;
            repos.push(repo);
        }
        Ok(GitWorkspace { repos, settings })
    }

    /// Reopens the worktrees of an existing session (on resume).
    pub async fn reopen(compiled: &Compiled, rec: &SessionRecord) -> Result<Self, String> {
        let settings = settings_of(compiled);
        let mut repos = Vec::new();
        for r in compiled.repos.iter().filter(|r| r.write) {
            let (path, name, pipeline, sid, st) = (
                r.path.clone(),
                r.name.clone(),
                compiled.name.clone(),
                rec.id.clone(),
                settings.clone(),
            );
            let repo = blocking(move || {
                open_session(&path, &name, &pipeline, &sid, &st)
                    .map_err(|e| format!("repository `{name}`: {e}"))
            })
            .await?;
            repos.push(repo);
        }
        Ok(GitWorkspace { repos, settings })
    }

    /// The directories tools act on, per writable repo (its worktree).
    pub fn roots(&self) -> HashMap<String, PathBuf> {
        self.repos
            .iter()
            .map(|r| (r.repo_name.clone(), r.work_dir()))
            .collect()
    }

    /// What the session row records: branch, worktree and base of each repo.
    pub fn meta(&self) -> Option<Value> {
        if self.repos.is_empty() {
            return None;
        }
        let m: Map<String, Value> = self
            .repos
            .iter()
            .map(|r| {
                (
                    r.repo_name.clone(),
                    json!({ "branch": r.branch, "worktree": r.worktree, "base": r.base_sha, "repo_path": r.repo_path }),
                )
            })
            .collect();
        Some(Value::Object(m))
    }

    /// `{repo: sha}` at the start (checkpoint 0 or a fork's first checkpoint).
    pub fn initial_shas(&self) -> Option<Value> {
        if self.repos.is_empty() {
            return None;
        }
        Some(Value::Object(
            self.repos
                .iter()
                .map(|r| (r.repo_name.clone(), json!(r.base_sha)))
                .collect(),
        ))
    }

    /// The checkpoint hooks that auto-commit, if there is any writable repo.
    pub fn hooks(&self, compiled: &Compiled, session: &str) -> Option<Arc<dyn StepHooks>> {
        if self.repos.is_empty() {
            return None;
        }
        let writers: HashMap<String, Vec<String>> = self
            .repos
            .iter()
            .map(|r| {
                let names = compiled
                    .agents
                    .iter()
                    .filter(|a| a.write_repos.contains(&r.repo_name))
                    .map(|a| a.name.clone())
                    .collect();
                (r.repo_name.clone(), names)
            })
            .collect();
        Some(Arc::new(GitHooks {
            repos: self.repos.clone(),
            writers,
            settings: self.settings.clone(),
            session: session.to_owned(),
            pipeline: compiled.name.clone(),
        }))
    }
}

struct GitHooks {
    repos: Vec<SessionRepo>,
    writers: HashMap<String, Vec<String>>,
    settings: GitSettings,
    session: String,
    pipeline: String,
}

impl StepHooks for GitHooks {
    fn before_checkpoint<'a>(
        &'a self,
        step: u64,
        nodes: &'a [String],
    ) -> BoxFuture<'a, Result<Option<Value>, String>> {
        Box::pin(async move {
            let mut jobs = Vec::new();
            for r in &self.repos {
                let writers = self.writers.get(&r.repo_name).cloned().unwrap_or_default();
                let in_step: Vec<&String> = nodes.iter().filter(|n| writers.contains(n)).collect();
                let agent = if in_step.is_empty() {
                    nodes.join("+")
                } else {
                    in_step
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("+")
                };
                jobs.push((r.repo_name.clone(), r.work_dir(), agent));
            }
            let (settings, session, pipeline) = (
                self.settings.clone(),
                self.session.clone(),
                self.pipeline.clone(),
            );
            blocking(move || {
                let mut shas = Map::new();
                for (name, dir, agent) in jobs {
                    let info = CommitInfo {
                        agent: &agent,
                        session: &session,
                        pipeline: &pipeline,
                        step,
                    };
                    if let Some(sha) = commit_all(&dir, &info, &settings)
                        .map_err(|e| format!("auto-commit in `{name}`: {e}"))?
                    {
                        shas.insert(name, json!(sha));
                    }
                }
                Ok((!shas.is_empty()).then_some(Value::Object(shas)))
            })
            .await
        })
    }
}
