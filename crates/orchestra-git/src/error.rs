//! The crate's error type: what went wrong, on which repository or worktree, with the cause.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::net::{NetError, TIMEOUT_ENV};

/// An error from a git operation of Orchestra.
///
/// Messages are lowercase and name the repository, worktree or branch involved so the CLI can
/// print them as they are.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GitError {
    /// A libgit2 call failed.
    #[error("cannot {op} in {}", path.display())]
    Git {
        /// What was being done ("create branch orchestra/p/s", "open repository", ...).
        op: String,
        /// The repository or worktree it was done in.
        path: PathBuf,
        /// What libgit2 said.
        #[source]
        source: LibError,
    },
    /// A file operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done ("write", "create directory", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The repository is bare: sessions need a working directory.
    #[error("repository {} is bare; orchestra needs a repository with a working directory", path.display())]
    Bare {
        /// The repository.
        path: PathBuf,
    },
    /// The repository has no commit yet, so there is nothing to branch from.
    #[error(
        "repository {} has no commits yet (unborn HEAD); commit something before starting a session",
        path.display()
    )]
    UnbornHead {
        /// The repository.
        path: PathBuf,
    },
    /// A name cannot be used in a branch or worktree name.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// What the name is ("session id", "branch name", ...).
        what: &'static str,
        /// The name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The session branch to create exists already.
    #[error("branch {branch} already exists in {}", path.display())]
    BranchExists {
        /// The branch.
        branch: String,
        /// The repository.
        path: PathBuf,
    },
    /// A branch Orchestra expected is missing.
    #[error("branch {branch} does not exist in {}", path.display())]
    BranchNotFound {
        /// The branch.
        branch: String,
        /// The repository.
        path: PathBuf,
    },
    /// The worktree directory to create exists already.
    #[error("worktree directory {} already exists", path.display())]
    WorktreeExists {
        /// The directory.
        path: PathBuf,
    },
    /// A commit (for replay) cannot be found.
    #[error("commit `{rev}` not found in {}", path.display())]
    CommitNotFound {
        /// The revision asked for.
        rev: String,
        /// The repository.
        path: PathBuf,
        /// What libgit2 said.
        #[source]
        source: LibError,
    },
    /// An operation that only makes sense in an Orchestra worktree was asked of another checkout.
    #[error("{} is not an orchestra worktree: {reason}", path.display())]
    NotSessionWorktree {
        /// The directory.
        path: PathBuf,
        /// Why it is not one.
        reason: String,
    },
    /// The session worktree has uncommitted changes where a clean tree is needed (before a merge).
    #[error("worktree {} has uncommitted changes: {}", path.display(), files.join(", "))]
    DirtyWorktree {
        /// The worktree.
        path: PathBuf,
        /// The changed files (at most a few).
        files: Vec<String>,
    },
    /// An operation on a repository's remote (`url:`) failed: the `git` program it runs is
    /// missing, timed out, or failed.
    #[error("cannot {op} {url}")]
    Remote {
        /// What was being done ("clone", "fetch from", "push to", ...).
        op: &'static str,
        /// The remote (a password in it shown as `***`).
        url: String,
        /// What went wrong, with the end of git's stderr.
        #[source]
        source: NetError,
    },
    /// `ORCHESTRA_GIT_TIMEOUT` is not a number of seconds.
    #[error("{TIMEOUT_ENV} is `{value}`, not a whole number of seconds above 0 (such as 120)")]
    BadTimeout {
        /// The value found.
        value: String,
    },
    /// The directory meant for the clone of a remote holds something else.
    #[error("{} is not a clone of {url}: {}", path.display(), match found {
        None => "it exists and is not a git repository (give the clone another `path:`, or empty it)".to_owned(),
        Some(f) if f.is_empty() => "it is a git repository without an `origin` remote".to_owned(),
        Some(f) => format!("its origin is {f}"),
    })]
    CloneConflict {
        /// The clone's directory.
        path: PathBuf,
        /// The remote it should be a clone of.
        url: String,
        /// Its `origin` (empty: none; None: not a git repository).
        found: Option<String>,
    },
    /// A push was not made because the remote branch moved since this clone last saw it.
    #[error(
        "not pushing {branch} to {url}: the remote branch is at {found}, not at {expected} where this clone last saw it (another process moved it); nothing was overwritten"
    )]
    PushRejected {
        /// The branch.
        branch: String,
        /// The remote.
        url: String,
        /// Where this clone last saw it.
        expected: String,
        /// Where it is.
        found: String,
    },
    /// The remote refused to update a branch.
    #[error("{url} refused to update {refname}: {reason}")]
    PushFailed {
        /// The remote ref.
        refname: String,
        /// The remote.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// A commit a checkpoint recorded is neither in this clone nor on the remote.
    #[error(
        "commit {sha} is neither in this clone nor on {url}: it was never pushed (its process stopped before pushing it, or the session ran without `url:`)"
    )]
    CommitNotPushed {
        /// The commit.
        sha: String,
        /// The remote.
        url: String,
    },
    /// A session branch to resume is neither in this clone nor on the remote.
    #[error("branch {branch} is neither in this clone nor on {url}")]
    NotOnRemote {
        /// The branch.
        branch: String,
        /// The remote.
        url: String,
    },
    /// A paused merge is being continued but conflict markers are still in files.
    #[error("conflicts are not resolved in {}: {}", path.display(), files.join(", "))]
    UnresolvedConflicts {
        /// The session worktree.
        path: PathBuf,
        /// The files that still have conflict markers.
        files: Vec<String>,
    },
}

/// An error reported by libgit2 (kept opaque so git2 types stay inside this crate).
#[derive(Debug)]
pub struct LibError(git2::Error);

impl LibError {
    /// Whether libgit2 reported that something was not found.
    pub fn is_not_found(&self) -> bool {
        self.0.code() == git2::ErrorCode::NotFound
    }
}

impl fmt::Display for LibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for LibError {}

impl From<git2::Error> for LibError {
    fn from(err: git2::Error) -> Self {
        LibError(err)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// Attaches what was being done, and where, to a libgit2 error.
pub(crate) trait Context<T> {
    /// Wraps the error into [`GitError::Git`].
    fn ctx(self, op: impl Into<String>, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, git2::Error> {
    fn ctx(self, op: impl Into<String>, path: &Path) -> Result<T> {
        self.map_err(|source| GitError::Git {
            op: op.into(),
            path: path.to_path_buf(),
            source: LibError(source),
        })
    }
}

/// Builds a [`GitError::Io`].
pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError {
    let path = path.to_path_buf();
    move |source| GitError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_errors_name_the_operation_and_path_and_keep_the_cause() {
        let err: Result<()> =
            Err(git2::Error::from_str("boom")).ctx("create branch x", Path::new("/r"));
        let Err(err) = err else {
            panic!("expected an error");
        };
        assert_eq!(err.to_string(), "cannot create branch x in /r");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("boom"));
    }
}
