//! Pushing a session's branches to the remote of a repository with `url:` (see
//! `orchestra_git::push_branch`: force-with-lease, a branch another process moved is never
//! overwritten). A push that fails fails the step: the agent's commit stays in this clone (its
//! task is recorded as failed, so nothing depends on a commit the remote lacks), and `resume`
//! pushes it once the remote takes it.

use orchestra_git::{delete_remote_branches, push_branch};

use super::{Failure, GitStep};

impl GitStep {
    /// Pushes `branch` of repository `idx` when the repository has a remote (a no-op otherwise,
    /// and when the remote has it already).
    pub(super) async fn push(&self, idx: usize, branch: &str) -> Result<(), Failure> {
        let repo = &self.repos[idx];
        let Some(url) = repo.url.clone() else {
            return Ok(());
        };
        let (clone, branch) = (repo.session.repo_path.clone(), branch.to_owned());
        self.on_repo(idx, move || push_branch(&clone, &url, &branch))
            .await
    }

    /// Deletes the merged forks' branches of repository `idx` from its remote (their commits are
    /// on the session branch, pushed first).
    pub(super) async fn forget_forks(
        &self,
        idx: usize,
        branches: Vec<String>,
    ) -> Result<(), Failure> {
        let repo = &self.repos[idx];
        let Some(url) = repo.url.clone() else {
            return Ok(());
        };
        let clone = repo.session.repo_path.clone();
        self.on_repo(idx, move || delete_remote_branches(&clone, &url, &branches))
            .await
    }
}
