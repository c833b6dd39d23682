//! Fork worktrees for parallel writers: each agent that writes in parallel gets its own branch
//! and worktree from the session branch's tip, merged back at the join.

use std::path::{Path, PathBuf};

use git2::{Repository, StatusOptions};

use crate::error::{Context as _, GitError, Result};
use crate::names::{GitSettings, check_branch, fork_worktree_path, record_name};
use crate::session::SessionRepo;
use crate::worktree::UserRepo;

/// A parallel writer's branch and worktree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentWorktree {
    /// The agent.
    pub agent: String,
    /// The step it runs in.
    pub step: u64,
    /// Its branch, `{prefix}{pipeline}/{session}+{agent}-{step}`.
    pub branch: String,
    /// Its worktree, next to the session's: `{worktrees_dir}/{session}/{repo_name}+{agent}-{step}`.
    pub path: PathBuf,
    /// Where the pipeline's repo path lies inside the repository (as [`SessionRepo::subdir`]).
    pub subdir: PathBuf,
    /// The session branch's tip the fork started from.
    pub base_sha: String,
}

impl AgentWorktree {
    /// The names and paths of `agent`'s fork at `step`, without creating anything (for example
    /// to find a fork again after a restart).
    pub fn describe(
        session: &SessionRepo,
        agent: &str,
        step: u64,
        settings: &GitSettings,
    ) -> AgentWorktree {
        let root = settings.worktrees_root(&session.repo_path);
        AgentWorktree {
            agent: agent.to_owned(),
            step,
            branch: settings.fork_branch(&session.pipeline, &session.session, agent, step),
            path: fork_worktree_path(&root, &session.session, &session.repo_name, agent, step),
            subdir: session.subdir.clone(),
            base_sha: String::new(),
        }
    }

    /// The directory the agent sees as the repository.
    pub fn work_dir(&self) -> PathBuf {
        self.path.join(&self.subdir)
    }

    /// git's record name of this worktree.
    pub(crate) fn record(&self, session: &str) -> String {
        let leaf = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        record_name(session, &leaf)
    }
}

/// Creates `agent`'s fork for `step`: a branch at the session branch's tip and a worktree for it.
///
/// A fork left over from an interrupted run of the same agent and step is removed first (its
/// uncommitted work belonged to the interrupted attempt), so a re-run starts from the session's
/// current tip.
pub fn fork_worktree(
    session: &SessionRepo,
    agent: &str,
    step: u64,
    settings: &GitSettings,
) -> Result<AgentWorktree> {
    let user = UserRepo::open(&session.repo_path)?;
    let mut fork = AgentWorktree::describe(session, agent, step, settings);
    check_branch(&fork.branch)?;
    let Some(tip) = user.branch_tip(&session.branch)? else {
        return Err(GitError::BranchNotFound {
            branch: session.branch.clone(),
            path: user.workdir.clone(),
        });
    };
    let root = settings.worktrees_root(&user.workdir);
    if user
        .remove_worktree(&fork.record(&session.session), &root, false)?
        .is_some()
    {
        tracing::info!(
            branch = fork.branch,
            "removed a leftover fork before re-running the agent"
        );
    }
    user.delete_branch(&fork.branch)?;
    user.create_branch(&fork.branch, tip)?;
    if let Err(err) = user.add_worktree(&fork.record(&session.session), &fork.path, &fork.branch) {
        if let Err(cleanup) = user.delete_branch(&fork.branch) {
            tracing::warn!(branch = fork.branch, error = %cleanup, "could not delete the branch of a failed fork");
        }
        return Err(err);
    }
    fork.base_sha = tip.to_string();
    tracing::debug!(agent, step, branch = fork.branch, "fork worktree ready");
    Ok(fork)
}

/// Removes a fork's worktree and branch (after its work was merged, or to discard it).
pub fn remove_fork(
    session: &SessionRepo,
    fork: &AgentWorktree,
    settings: &GitSettings,
) -> Result<()> {
    let user = UserRepo::open(&session.repo_path)?;
    remove_fork_in(&user, session, fork, settings)
}

/// [`remove_fork`] with the repository already open.
pub(crate) fn remove_fork_in(
    user: &UserRepo,
    session: &SessionRepo,
    fork: &AgentWorktree,
    settings: &GitSettings,
) -> Result<()> {
    let root = settings.worktrees_root(&user.workdir);
    user.remove_worktree(&fork.record(&session.session), &root, false)?;
    user.delete_branch(&fork.branch)?;
    Ok(())
}

/// The files with uncommitted changes (untracked included, ignored excluded) in a worktree.
pub(crate) fn dirty_files(repo: &Repository, path: &Path) -> Result<Vec<String>> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .ctx("read the status", path)?;
    Ok(statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT)
        .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
        .collect())
}

/// Fails with [`GitError::DirtyWorktree`] when the worktree at `path` has uncommitted changes.
pub(crate) fn ensure_clean(repo: &Repository, path: &Path) -> Result<()> {
    let files = dirty_files(repo, path)?;
    if files.is_empty() {
        Ok(())
    } else {
        Err(GitError::DirtyWorktree {
            path: path.to_path_buf(),
            files: files.into_iter().take(10).collect(),
        })
    }
}
