//! Orchestra's git layer: every writable repository of a session gets a branch
//! `{prefix}{pipeline}/{session}` and its own worktree under `.orchestra/worktrees/{session}/`, so
//! the user's checkout (HEAD, index, working tree, untracked files) is never touched.
//!
//! - [`start_session`] / [`restore_fork`] / [`open_session`]: create, fork (for replay) or reopen
//!   (for resume) a session's branch and worktree; [`recover_session`] first repairs what a
//!   killed run left behind.
//! - [`commit_all`]: the auto-commit after each agent node, with Orchestra trailers.
//! - [`fork_worktree`] / [`merge_back`]: parallel writers work in forks that are merged back at
//!   the join, with conflicts handled per [`ConflictMode`].
//! - [`list_session_branches`] / [`remove_session`] / [`cleanup`]: retention.
//! - [`start_remote_session`] / [`fork_remote_session`] / [`reopen_remote_session`] /
//!   [`push_branch`] / [`remove_remote_session`]: repositories that live in a remote (`url:`),
//!   worked on in this process's clone, the session branches pushed with force-with-lease.
//!   Everything that talks to a remote runs the `git` program ([`network_timeout`]), so any
//!   remote git can reach works, with the user's credentials; the rest is libgit2.
//!
//! Everything is synchronous; call it from `spawn_blocking` in async code. Each call
//! opens the repositories it needs, so values here are plain data that can be stored and sent
//! between threads.

mod cleanup;
mod commit;
mod conflict;
mod error;
mod fork;
mod log;
mod merge;
mod names;
mod net;
mod push;
mod recover;
mod remote;
mod scan;
mod session;
mod tree;
mod worktree;

use std::path::Path;

pub use cleanup::{
    BranchInfo, CleanupOptions, Removed, cleanup, list_session_branches, remove_session,
};
pub use commit::{CommitInfo, commit_all, head_sha};
pub use conflict::{Conflict, ConflictFile};
pub use error::{GitError, LibError, Result};
pub use fork::{AgentWorktree, fork_worktree, remove_fork};
pub use log::{BranchCommit, CommitPatch, branch_commits, commit_patch};
pub use merge::{ConflictMode, MergeKind, MergeOutcome, MergedFork, abort_merge, merge_back};
pub use names::GitSettings;
pub use net::{DEFAULT_TIMEOUT, NetError, TIMEOUT_ENV, network_timeout};
pub use push::{
    delete_remote_branches, push_branch, remote_session_branches, remove_remote_session,
};
pub use recover::{Recovery, recover_session};
pub use remote::{
    fork_remote_session, reopen_remote_session, shown_url, start_remote_session, sync_clone,
};
pub use session::{SessionRepo, open_session, restore_fork, start_session, uncommitted_files};

/// Adds `pattern` to the repository's `.git/info/exclude` if it is not there yet (for example
/// `/.orchestra/` to hide the database directory). This is git metadata, not one of the user's
/// files; [`start_session`] does it for the worktrees directory.
pub fn ensure_excluded(repo_path: &Path, pattern: &str) -> Result<()> {
    worktree::UserRepo::open(repo_path)?.ensure_excluded(pattern)
}
