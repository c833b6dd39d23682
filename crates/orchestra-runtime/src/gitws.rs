//! The session's git side: a session branch and worktree for every writable repository (the
//! user's checkout is never touched), made at session start, reopened on resume and forked at a
//! checkpoint's SHAs for replay. [`GitWorkspace::attach`] wires the per-node commits, the
//! parallel writers' worktrees and the merges at the join into a drive (see `gitstep`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use orchestra_git::{
    GitSettings, SessionRepo, ensure_excluded, fork_remote_session, open_session, recover_session,
    reopen_remote_session, restore_fork, start_remote_session, start_session, uncommitted_files,
};
use orchestra_graph::Compiled;
use orchestra_store::{SessionRecord, SessionStatus};
use orchestra_tools::Registry;

use crate::error::SetupError;
use crate::events::EventSink;
use crate::executor::StepHooks;
use crate::gitstep::{GitRunner, GitStep};
use crate::runner::NodeRunner;

/// The writable repositories of a session, each on its session branch and worktree.
#[derive(Clone, Debug, Default)]
pub struct GitWorkspace {
    repos: Vec<SessionRepo>,
    /// Per repository of `repos`: its remote (`url:`) and where its clone is, relative to the
    /// project root (`meta.git` keeps both, so cleanup finds this machine's clone).
    remotes: Vec<Option<(String, PathBuf)>>,
    settings: GitSettings,
    /// For a session started at the user's HEAD: what its agents will not see, per repository
    /// (a warning each; see [`GitWorkspace::unseen_changes`]).
    unseen: Vec<String>,
}

/// The git settings of a compiled pipeline's project (`git:` of orchestra.yaml).
pub fn settings_of(compiled: &Compiled) -> GitSettings {
    let g = &compiled.project.git;
    GitSettings {
        prefix: g.prefix.clone(),
        worktrees_dir: g.worktrees.clone(),
        author_name: g.author_name.clone(),
        author_email: g.author_email.clone(),
    }
}

/// The warning for a session started at the HEAD of `repo`'s checkout when that checkout has
/// uncommitted changes (None when it has none).
fn unseen_warning(name: &str, repo: &SessionRepo) -> Option<String> {
    // git2's working directory ends with `/`; shown without it.
    let path: PathBuf = repo.repo_path.components().collect();
    let path = path.display();
    match uncommitted_files(&repo.repo_path) {
        Ok(0) => None,
        Ok(n) => Some(format!(
            "repository `{name}` ({path}) has {n} changed file(s) not committed (modified, staged or untracked): the agents start from its last commit and will not see them; commit them first if they should"
        )),
        Err(e) => Some(format!(
            "could not check repository `{name}` ({path}) for uncommitted changes: {e}"
        )),
    }
}

/// Runs blocking git work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SetupError> + Send + 'static,
) -> Result<T, SetupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(SetupError::GitTask)?
}

impl GitWorkspace {
    /// Creates the session branches and worktrees at each writable repo's HEAD.
    pub async fn start(compiled: &Compiled, session: &str) -> Result<Self, SetupError> {
        Self::create(compiled, session, |_| None).await
    }

    /// Creates a forked session's branches and worktrees at the given SHAs (`{repo: sha}`).
    pub async fn fork(
        compiled: &Compiled,
        session: &str,
        shas: &Map<String, Value>,
    ) -> Result<Self, SetupError> {
        Self::create(compiled, session, |repo| {
            shas.get(repo).and_then(Value::as_str).map(str::to_owned)
        })
        .await
    }

    async fn create(
        compiled: &Compiled,
        session: &str,
        at: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SetupError> {
        let settings = settings_of(compiled);
        // `database:` may be written `sqlite:PATH` or `sqlite://PATH` (see the CLI's
        // `store::locate`); only the file matters here, to keep it out of `git status`.
        let db = &compiled.project.database;
        let file = db
            .strip_prefix("sqlite://")
            .or_else(|| db.strip_prefix("sqlite:"))
            .unwrap_or(db);
        let database = compiled.project_root.join(file);
        let mut repos = Vec::new();
        let mut unseen = Vec::new();
        for r in compiled.repos.iter().filter(|r| r.write) {
            let (path, name, pipeline, sid, st, sha, db, url) = (
                r.path.clone(),
                r.name.clone(),
                compiled.name.clone(),
                session.to_owned(),
                settings.clone(),
                at(&r.name),
                database.clone(),
                r.url.clone(),
            );
            let (repo, warning) = blocking(move || {
                // A clone of a remote is Orchestra's own: no user's changes to warn about.
                let from_head = sha.is_none() && url.is_none();
                let res = match (sha, &url) {
                    (Some(sha), Some(url)) => {
                        fork_remote_session(&path, url, &name, &pipeline, &sid, &sha, &st)
                    }
                    (None, Some(url)) => {
                        start_remote_session(&path, url, &name, &pipeline, &sid, &st)
                    }
                    (Some(sha), None) => restore_fork(&path, &name, &pipeline, &sid, &sha, &st),
                    (None, None) => start_session(&path, &name, &pipeline, &sid, &st),
                };
                let repo = res.map_err(|source| SetupError::Git {
                    repo: name.clone(),
                    source,
                })?;
                exclude_database(&repo.repo_path, &db);
                let warning = from_head.then(|| unseen_warning(&name, &repo)).flatten();
                Ok((repo, warning))
            })
            .await?;
            repos.push(repo);
            unseen.extend(warning);
        }
        Ok(GitWorkspace {
            remotes: remotes_of(compiled, &repos),
            repos,
            settings,
            unseen,
        })
    }

    /// Warnings about uncommitted changes in the user's checkout that a session started at its
    /// HEAD does not see (one per repository that has any).
    pub fn unseen_changes(&self) -> &[String] {
        &self.unseen
    }

    /// Reopens the worktrees of an existing session (on resume, holding its lease). Unless the
    /// session is paused (its worktree may hold a human's work, such as a resolved conflict),
    /// what a killed run left of its git state is repaired first ([`recover_session`]): stale
    /// locks, half-made forks, an interrupted merge (reset to `last_shas`, the repos' SHAs at
    /// the checkpoint the resume starts from, when no work is lost that way).
    pub async fn reopen(
        compiled: &Compiled,
        rec: &SessionRecord,
        last_shas: &Map<String, Value>,
    ) -> Result<Self, SetupError> {
        let settings = settings_of(compiled);
        let recover = rec.status != SessionStatus::Paused;
        let mut repos = Vec::new();
        for r in compiled.repos.iter().filter(|r| r.write) {
            let (path, name, pipeline, sid, st, url) = (
                r.path.clone(),
                r.name.clone(),
                compiled.name.clone(),
                rec.id.clone(),
                settings.clone(),
                r.url.clone(),
            );
            let last = last_shas
                .get(&r.name)
                .and_then(Value::as_str)
                .map(str::to_owned);
            let repo = blocking(move || {
                let failed = |source| SetupError::Git {
                    repo: name.clone(),
                    source,
                };
                if let Some(url) = &url {
                    // Another process may have driven the session: its pushed commits first.
                    reopen_remote_session(&path, url, &name, &pipeline, &sid, &st, last.as_deref())
                        .map_err(failed)?;
                }
                if recover {
                    recover_session(&path, &name, &pipeline, &sid, &st, last.as_deref())
                        .map_err(failed)?;
                }
                open_session(&path, &name, &pipeline, &sid, &st).map_err(failed)
            })
            .await?;
            repos.push(repo);
        }
        Ok(GitWorkspace {
            remotes: remotes_of(compiled, &repos),
            repos,
            settings,
            unseen: Vec::new(),
        })
    }

    /// The session branch of each writable repository.
    pub fn branches(&self) -> Vec<crate::outcome::SessionBranch> {
        self.repos
            .iter()
            .zip(&self.remotes)
            .map(|(r, remote)| crate::outcome::SessionBranch {
                repo: r.repo_name.clone(),
                repo_path: r.repo_path.clone(),
                branch: r.branch.clone(),
                url: remote
                    .as_ref()
                    .map(|(url, _)| orchestra_git::shown_url(url)),
            })
            .collect()
    }

    /// Whether the session has any writable repository.
    pub fn is_empty(&self) -> bool {
        self.repos.is_empty()
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
            .zip(&self.remotes)
            .map(|(r, remote)| {
                let mut m = json!({ "branch": r.branch, "worktree": r.worktree, "base": r.base_sha, "repo_path": r.repo_path });
                if let Some((url, clone)) = remote {
                    m["url"] = json!(url);
                    m["clone"] = json!(clone);
                }
                (r.repo_name.clone(), m)
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

    /// Wires git into a drive: returns the runner to give the executor (it commits each writing
    /// agent's changes after it finishes, and gives parallel writers of one repository their
    /// own worktrees) and the step hooks (they merge the parallel writers back at the end of
    /// the step and report the `{repo: sha}` of each checkpoint). Without writable repos, the
    /// runner is `inner` itself and there are no hooks: nothing is added to a step.
    ///
    /// `tools` are the tools registered through the library (for the parallel writers' own
    /// registries); `last_shas` is `{repo: sha}` as of the checkpoint the drive starts from.
    pub fn attach(
        &self,
        compiled: &Arc<Compiled>,
        session: &str,
        inner: Arc<dyn NodeRunner>,
        tools: Registry,
        events: Arc<dyn EventSink>,
        last_shas: &Map<String, Value>,
    ) -> (Arc<dyn NodeRunner>, Option<Arc<dyn StepHooks>>) {
        if self.repos.is_empty() {
            return (inner, None);
        }
        let step = Arc::new(GitStep::new(
            self.repos.clone(),
            self.settings.clone(),
            Arc::clone(compiled),
            session,
            self.roots(),
            tools,
            events,
            last_shas,
        ));
        let runner = Arc::new(GitRunner::new(inner, Arc::clone(&step)));
        (runner, Some(step))
    }
}

/// The remote and the clone (relative to the project root) of each of `repos` with `url:`.
fn remotes_of(compiled: &Compiled, repos: &[SessionRepo]) -> Vec<Option<(String, PathBuf)>> {
    repos
        .iter()
        .map(|s| {
            let r = compiled.repo(&s.repo_name)?;
            let url = r.url.clone()?;
            let clone = r
                .path
                .strip_prefix(&compiled.project_root)
                .map_or_else(|_| r.path.clone(), Path::to_path_buf);
            Some((url, clone))
        })
        .collect()
}

/// Keeps the session database out of the user's `git status` when it lies inside the
/// repository (the default `.orchestra/orchestra.db` does), through `.git/info/exclude`.
fn exclude_database(repo_path: &Path, database: &Path) {
    let (Ok(top), Some(dir), Some(file)) = (
        repo_path.canonicalize(),
        database.parent().and_then(|d| d.canonicalize().ok()),
        database.file_name(),
    ) else {
        return;
    };
    let Ok(rel) = dir.join(file).strip_prefix(&top).map(Path::to_path_buf) else {
        return;
    };
    let Some(rel) = rel.to_str().filter(|r| !r.is_empty()) else {
        return;
    };
    // `orchestra.db*` also covers SQLite's `-wal` and `-shm` files.
    if let Err(e) = ensure_excluded(repo_path, &format!("/{rel}*")) {
        tracing::warn!(error = %e, "cannot hide the session database from git status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_excluded_only_inside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".orchestra")).unwrap();
        let status = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        exclude_database(&repo, &repo.join(".orchestra/orchestra.db"));
        exclude_database(&repo, &dir.path().join("elsewhere.db"));
        let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
        assert!(exclude.contains("/.orchestra/orchestra.db*"), "{exclude}");
        assert!(!exclude.contains("elsewhere"), "{exclude}");
    }
}
