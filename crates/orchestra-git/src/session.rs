//! Session branches and worktrees: start a session at the user's HEAD, fork a replayed session
//! at a checkpoint's commit, and reopen a session's worktree on resume.

use std::path::{Path, PathBuf};

use crate::error::{Context as _, GitError, Result};
use crate::names::{
    GitSettings, check_branch, check_session, component, record_name, session_worktree_path,
};
use crate::worktree::{UserRepo, exclude_pattern};

/// One writable repository of a session: its branch and the worktree agents work in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRepo {
    /// The repository's name in the pipeline (`workspace.repos` key).
    pub repo_name: String,
    /// The top of the user's working tree (never written to, except the worktrees directory).
    pub repo_path: PathBuf,
    /// Where the pipeline's repo path lies inside the repository (empty for the top); the same
    /// place inside the worktree is [`SessionRepo::work_dir`].
    pub subdir: PathBuf,
    /// The pipeline name.
    pub pipeline: String,
    /// The session id.
    pub session: String,
    /// The session branch, `{prefix}{pipeline}/{session}`.
    pub branch: String,
    /// The session worktree, `{repo}/{worktrees_dir}/{session}/{repo_name}`.
    pub worktree: PathBuf,
    /// The commit the session branch started at.
    pub base_sha: String,
}

impl SessionRepo {
    /// The directory agents see as the repository: the worktree, or the subdirectory of it that
    /// corresponds to the pipeline's repo path.
    pub fn work_dir(&self) -> PathBuf {
        self.worktree.join(&self.subdir)
    }
}

/// Starts a session in the repository at `repo_path`: creates the branch
/// `{prefix}{pipeline}/{session}` at the user's HEAD commit and checks it out in a new worktree
/// under the worktrees directory. The user's HEAD, index and working tree are not touched.
///
/// Fails on an unborn HEAD (no commit to branch from), on a bare repository, and when the
/// branch or worktree directory already exists.
pub fn start_session(
    repo_path: &Path,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    let user = UserRepo::open(repo_path)?;
    let head = match user.repo.head() {
        Ok(head) => head,
        Err(e)
            if matches!(
                e.code(),
                git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
            ) =>
        {
            return Err(GitError::UnbornHead {
                path: user.workdir.clone(),
            });
        }
        Err(e) => return Err(e).ctx("read HEAD", &user.workdir),
    };
    let commit = head
        .peel_to_commit()
        .ctx("resolve HEAD to a commit", &user.workdir)?;
    create(&user, repo_name, pipeline, session, commit.id(), settings)
}

/// How many files of the user's working tree at `repo_path` differ from its HEAD commit:
/// modified, staged, deleted or untracked (ignored files do not count). A session starts from
/// HEAD, so its agents do not see them. Only read: nothing of the checkout is written.
pub fn uncommitted_files(repo_path: &Path) -> Result<usize> {
    let user = UserRepo::open(repo_path)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = user
        .repo
        .statuses(Some(&mut opts))
        .ctx("read the status of the working tree", &user.workdir)?;
    Ok(statuses
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT && !s.status().is_ignored())
        .count())
}

/// Forks a session for replay: creates the branch `{prefix}{pipeline}/{new_session}` at `sha`
/// (a checkpoint's commit; an abbreviated id or any revision git understands) and its worktree.
pub fn restore_fork(
    repo_path: &Path,
    repo_name: &str,
    pipeline: &str,
    new_session: &str,
    sha: &str,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    let user = UserRepo::open(repo_path)?;
    let commit = user
        .repo
        .revparse_single(sha)
        .and_then(|obj| obj.peel_to_commit())
        .map_err(|source| GitError::CommitNotFound {
            rev: sha.to_owned(),
            path: user.workdir.clone(),
            source: source.into(),
        })?;
    create(
        &user,
        repo_name,
        pipeline,
        new_session,
        commit.id(),
        settings,
    )
}

/// Reopens an existing session (for resume): the branch must exist; its worktree is recreated
/// from the branch when the directory or git's record of it is gone.
pub fn open_session(
    repo_path: &Path,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    check_session(session)?;
    let user = UserRepo::open(repo_path)?;
    let branch = settings.session_branch(pipeline, session);
    let Some(tip) = user.branch_tip(&branch)? else {
        return Err(GitError::BranchNotFound {
            branch,
            path: user.workdir.clone(),
        });
    };
    let root = settings.worktrees_root(&user.workdir);
    let worktree = session_worktree_path(&root, session, repo_name);
    let record = record_name(session, &component(repo_name));
    let current = user.records()?.into_iter().find(|r| r.name == record);
    match current {
        Some(r) if r.valid && r.branch.as_deref() == Some(branch.as_str()) => {}
        other => {
            if other.is_some() {
                tracing::info!(record, "worktree record is stale; recreating the worktree");
                user.prune_record(&record)?;
            }
            user.add_worktree(&record, &worktree, &branch)?;
        }
    }
    let base = first_reflog_target(&user, &branch).unwrap_or(tip);
    Ok(SessionRepo {
        repo_name: repo_name.to_owned(),
        repo_path: user.workdir.clone(),
        subdir: user.subdir.clone(),
        pipeline: pipeline.to_owned(),
        session: session.to_owned(),
        branch,
        worktree,
        base_sha: base.to_string(),
    })
}

/// Creates the session branch at `commit` and its worktree (the shared part of start and fork).
fn create(
    user: &UserRepo,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    commit: git2::Oid,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    check_session(session)?;
    let branch = settings.session_branch(pipeline, session);
    check_branch(&branch)?;
    let root = settings.worktrees_root(&user.workdir);
    let worktree = session_worktree_path(&root, session, repo_name);
    if worktree.exists() {
        return Err(GitError::WorktreeExists { path: worktree });
    }
    if let Some(pattern) = exclude_pattern(&user.workdir, &root) {
        user.ensure_excluded(&pattern)?;
    }
    user.create_branch(&branch, commit)?;
    let record = record_name(session, &component(repo_name));
    if let Err(err) = user.add_worktree(&record, &worktree, &branch) {
        // Leave nothing half-made behind: the branch goes with the failed worktree.
        if let Err(cleanup) = user.delete_branch(&branch) {
            tracing::warn!(branch, error = %cleanup, "could not delete the branch of a failed session start");
        }
        return Err(err);
    }
    tracing::info!(branch, worktree = %worktree.display(), sha = %commit, "session worktree ready");
    Ok(SessionRepo {
        repo_name: repo_name.to_owned(),
        repo_path: user.workdir.clone(),
        subdir: user.subdir.clone(),
        pipeline: pipeline.to_owned(),
        session: session.to_owned(),
        branch,
        worktree,
        base_sha: commit.to_string(),
    })
}

/// The commit a branch was created at, from the oldest entry of its reflog.
fn first_reflog_target(user: &UserRepo, branch: &str) -> Option<git2::Oid> {
    let reflog = user.repo.reflog(&format!("refs/heads/{branch}")).ok()?;
    let oldest = reflog.iter().next_back()?;
    Some(oldest.id_new())
}
