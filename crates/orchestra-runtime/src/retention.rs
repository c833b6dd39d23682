//! Retention (`orchestra cleanup`): removes the git branches and worktrees of finished sessions
//! that have been idle longer than a threshold, and prunes git's records of Orchestra worktrees
//! whose directories are gone; for a repository with `url:`, the session's branches on the remote
//! too (from any machine: the local clone is this project's). A running session (live lease) or a paused one is never touched,
//! nor is any branch outside the configured prefix; the sessions' records stay in the database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use orchestra_git::{CleanupOptions as GitCleanup, GitSettings};
use orchestra_store::{SessionFilter, SessionRecord, SessionStatus, system_now_ms};

pub use orchestra_git::Removed;

use crate::engine::Engine;
use crate::error::{RuntimeError, error_chain};
use crate::lease::owner_is_dead;

/// The session meta key set once a session's branches and worktrees were removed.
pub const CLEANUP_META: &str = "git_cleanup";

/// What to clean up.
#[derive(Clone, Copy, Debug)]
pub struct CleanupOptions {
    /// Only sessions idle (no status change or checkpoint) for longer than this.
    pub older_than: Duration,
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
}

/// Why a session with branches was left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kept {
    /// A process drives it.
    Running {
        /// The lease holder (`pid@host`).
        owner: String,
    },
    /// It waits for a human (or was forked and not run yet).
    Paused,
    /// It was idle for less than the threshold.
    TooRecent {
        /// How long it has been idle.
        idle: Duration,
    },
}

/// One session cleanup looked at.
#[derive(Clone, Debug)]
pub struct SessionCleanup {
    /// The session id.
    pub session: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its status.
    pub status: SessionStatus,
    /// How long it has been idle.
    pub idle: Duration,
    /// Why it was kept, if it was.
    pub kept: Option<Kept>,
    /// What was removed (or, in a dry run, would be).
    pub removed: Vec<Removed>,
    /// What went wrong removing it (the other sessions are still cleaned up).
    pub error: Option<String>,
}

/// What [`Engine::cleanup`] did.
#[derive(Clone, Debug, Default)]
pub struct CleanupReport {
    /// Every session that has (or had) git branches, newest first.
    pub sessions: Vec<SessionCleanup>,
    /// Stale worktree records pruned, per repository.
    pub pruned: Vec<(PathBuf, Removed)>,
}

/// One repository of a session, as its `meta.git` entry has it.
struct SessionGit {
    /// The top of the working tree: the user's, or this machine's clone of the remote.
    path: PathBuf,
    /// For a repository with `url:`: the remote and the session branch.
    remote: Option<(String, String)>,
}

/// The repositories of a session (`meta.git`). A repository with a remote is looked for in this
/// machine's clone (`clone`, relative to the project root `root`), whichever machine drove it.
fn session_repos(rec: &SessionRecord, root: &Path) -> Vec<SessionGit> {
    let Some(Value::Object(git)) = rec.meta.get("git") else {
        return Vec::new();
    };
    let field = |g: &Value, k: &str| g.get(k).and_then(Value::as_str).map(str::to_owned);
    git.values()
        .filter_map(|g| {
            let remote = field(g, "url").zip(field(g, "branch"));
            let path = match (&remote, field(g, "clone")) {
                (Some(_), Some(clone)) => root.join(clone),
                _ => PathBuf::from(field(g, "repo_path")?),
            };
            Some(SessionGit { path, remote })
        })
        .collect()
}

/// The git settings the session ran with (from its stored pipeline).
fn settings(rec: &SessionRecord) -> GitSettings {
    let g = crate::stored::git_config(&rec.resolved);
    GitSettings {
        prefix: g.prefix,
        worktrees_dir: g.worktrees,
        author_name: g.author_name,
        author_email: g.author_email,
    }
}

impl Engine {
    /// Removes the branches and worktrees of completed, failed and interrupted sessions idle for
    /// longer than `opts.older_than`; see the module documentation.
    pub async fn cleanup(&self, opts: &CleanupOptions) -> Result<CleanupReport, RuntimeError> {
        let now = system_now_ms();
        let records: Vec<SessionRecord> = self
            .store()
            .call(|s| {
                let mut out = Vec::new();
                for summary in s.list_sessions(&SessionFilter::default())? {
                    if let Some(rec) = s.session(&summary.id)? {
                        out.push(rec);
                    }
                }
                Ok(out)
            })
            .await?;
        let mut report = CleanupReport::default();
        let mut repos: BTreeMap<PathBuf, GitSettings> = BTreeMap::new();
        for rec in records {
            let paths = session_repos(&rec, self.root());
            if paths.is_empty() {
                continue;
            }
            for p in &paths {
                repos
                    .entry(p.path.clone())
                    .or_insert_with(|| settings(&rec));
            }
            if rec.meta.contains_key(CLEANUP_META) {
                continue;
            }
            let idle = Duration::from_millis(now.saturating_sub(rec.updated_at));
            let mut entry = SessionCleanup {
                session: rec.id.clone(),
                pipeline: rec.pipeline.clone(),
                status: rec.status,
                idle,
                kept: classify(&rec, now, idle, opts.older_than),
                removed: Vec::new(),
                error: None,
            };
            if entry.kept.is_none() {
                self.remove(&rec, &paths, opts.dry_run, &mut entry).await?;
            }
            report.sessions.push(entry);
        }
        for (repo, st) in repos {
            if !repo.exists() {
                continue;
            }
            let (path, dry_run) = (repo.clone(), opts.dry_run);
            let pruned = git(move || {
                let keep_all = |_: &str| true;
                let options = GitCleanup {
                    older_than: None,
                    keep: &keep_all,
                    dry_run,
                    now: UNIX_EPOCH + Duration::from_millis(now),
                };
                orchestra_git::cleanup(&path, &st, &options)
            })
            .await;
            match pruned {
                Ok(items) => report
                    .pruned
                    .extend(items.into_iter().map(|r| (repo.clone(), r))),
                Err(e) => {
                    tracing::warn!(repo = %repo.display(), error = %e, "cannot prune worktree records")
                }
            }
        }
        Ok(report)
    }

    /// Removes one session's branches and worktrees in each of its repositories, holding its
    /// lease so that it cannot be resumed meanwhile.
    async fn remove(
        &self,
        rec: &SessionRecord,
        paths: &[SessionGit],
        dry_run: bool,
        entry: &mut SessionCleanup,
    ) -> Result<(), RuntimeError> {
        if !dry_run {
            match self.acquire(&rec.id).await {
                Ok(()) => {}
                Err(RuntimeError::Busy { owner, .. }) => {
                    entry.kept = Some(Kept::Running { owner });
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let st = settings(rec);
        let mut errors = Vec::new();
        for SessionGit { path, remote } in paths {
            if let Some((url, branch)) = remote {
                // The remote's branches go whichever machine made them; this clone's below.
                let (p, u, b) = (path.clone(), url.clone(), branch.clone());
                let removed =
                    git(move || orchestra_git::remove_remote_session(&p, &u, &b, dry_run)).await;
                match removed {
                    Ok(items) => entry.removed.extend(items),
                    Err(e) => errors.push(e),
                }
                if !path.exists() {
                    continue;
                }
            } else if !path.exists() {
                errors.push(format!("repository {} no longer exists", path.display()));
                continue;
            }
            let (p, id, s) = (path.clone(), rec.id.clone(), st.clone());
            let removed = git(move || orchestra_git::remove_session(&p, &id, &s, dry_run)).await;
            match removed {
                Ok(items) => entry.removed.extend(items),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            entry.error = Some(errors.join("; "));
        }
        if !dry_run {
            let (id, owner) = (rec.id.clone(), self.owner().to_owned());
            let done = (errors.is_empty())
                .then(|| json!({ "at": system_now_ms(), "removed": entry.removed.len() }));
            self.store()
                .call(move |s| {
                    if let Some(done) = &done {
                        s.set_session_meta(&id, CLEANUP_META, done)?;
                    }
                    s.release_lease(&id, &owner)
                })
                .await?;
        }
        Ok(())
    }
}

/// Why a session must be kept, if it must.
fn classify(rec: &SessionRecord, now: u64, idle: Duration, older_than: Duration) -> Option<Kept> {
    if let Some(owner) = rec.lease_holder(now)
        && !owner_is_dead(owner)
    {
        return Some(Kept::Running {
            owner: owner.to_owned(),
        });
    }
    if rec.status == SessionStatus::Paused {
        return Some(Kept::Paused);
    }
    if idle < older_than {
        return Some(Kept::TooRecent { idle });
    }
    None
}

/// Runs git work on the blocking pool; its error as text with libgit2's reason.
async fn git<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, orchestra_git::GitError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| error_chain(&e)),
        Err(e) => Err(format!("a git task did not finish: {e}")),
    }
}
