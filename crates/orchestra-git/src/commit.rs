//! Auto-commit of an agent's changes in its worktree, with the agent, session and step in the
//! message and as trailers.
//!
//! Staging goes through the index's stat cache and a cache of directory mtimes (see `scan`), and
//! the tree is written from the index with its tree cache, so the cost grows with the number of
//! changed files plus one lstat per tracked file, as `git commit -a` does.

use std::path::Path;

use git2::{Oid, Repository, RepositoryState, Signature};

use crate::error::{Context as _, GitError, Result};
use crate::names::GitSettings;

/// What an auto-commit is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitInfo<'a> {
    /// The agent whose changes these are.
    pub agent: &'a str,
    /// The session id.
    pub session: &'a str,
    /// The pipeline name.
    pub pipeline: &'a str,
    /// The step (checkpoint id) the agent ran in.
    pub step: u64,
}

impl CommitInfo<'_> {
    /// The commit message: `{agent}: step {step} of {pipeline}` and the Orchestra trailers.
    pub fn message(&self) -> String {
        format!(
            "{agent}: step {step} of {pipeline}\n\n{trailers}",
            agent = self.agent,
            step = self.step,
            pipeline = self.pipeline,
            trailers = self.trailers(),
        )
    }

    /// The trailer lines (`Orchestra-Session:`, `Orchestra-Agent:`, `Orchestra-Step:`), each
    /// ending with a newline.
    pub fn trailers(&self) -> String {
        format!(
            "Orchestra-Session: {}\nOrchestra-Agent: {}\nOrchestra-Step: {}\n",
            self.session, self.agent, self.step
        )
    }
}

/// Stages everything in the worktree (additions, modifications, deletions; ignored files stay
/// out) and commits it on the worktree's branch. Returns the new commit's id, or `None` when
/// nothing changed.
///
/// If the worktree is in the middle of a merge (a paused conflict being finished), the commit is
/// the merge commit and the merge state is cleared. Refuses to run anywhere but an Orchestra
/// worktree: a linked worktree whose HEAD is a branch under the configured prefix.
pub fn commit_all(
    worktree: &Path,
    info: &CommitInfo<'_>,
    settings: &GitSettings,
) -> Result<Option<String>> {
    let repo = open_session_worktree(worktree, settings)?;
    let oid = commit_staged_all(&repo, worktree, &info.message(), settings)?;
    if let Some(oid) = oid {
        tracing::debug!(agent = info.agent, step = info.step, sha = %oid, "auto-commit");
    }
    Ok(oid.map(|o| o.to_string()))
}

/// The commit id the worktree's HEAD is at.
pub fn head_sha(worktree: &Path) -> Result<String> {
    let repo = Repository::open(worktree).ctx("open worktree", worktree)?;
    let commit = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .ctx("resolve HEAD", worktree)?;
    Ok(commit.id().to_string())
}

/// Opens `worktree` and checks it is one of ours: a linked worktree on a prefixed branch.
pub(crate) fn open_session_worktree(worktree: &Path, settings: &GitSettings) -> Result<Repository> {
    let repo = Repository::open(worktree).ctx("open worktree", worktree)?;
    let not_ours = |reason: String| GitError::NotSessionWorktree {
        path: worktree.to_path_buf(),
        reason,
    };
    if !repo.is_worktree() {
        return Err(not_ours(
            "it is a main checkout, not a linked worktree".to_owned(),
        ));
    }
    let on_prefix = {
        let head = repo.head().ctx("read HEAD", worktree)?;
        head.name()
            .ok()
            .and_then(|n| n.strip_prefix("refs/heads/"))
            .is_some_and(|b| b.starts_with(&settings.prefix))
    };
    if !on_prefix {
        return Err(not_ours(format!(
            "HEAD is not on a branch under `{}`",
            settings.prefix
        )));
    }
    Ok(repo)
}

/// The signature of Orchestra's commits, stamped now.
pub(crate) fn signature(settings: &GitSettings, path: &Path) -> Result<Signature<'static>> {
    Signature::now(&settings.author_name, &settings.author_email)
        .ctx("make the commit signature", path)
}

/// Stages all changes and commits them on HEAD (with MERGE_HEAD as extra parents when a merge
/// is in progress). None when the tree did not change and no merge is being concluded.
pub(crate) fn commit_staged_all(
    repo: &Repository,
    path: &Path,
    message: &str,
    settings: &GitSettings,
) -> Result<Option<Oid>> {
    let mut index = repo.index().ctx("read the index", path)?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .ctx("resolve HEAD", path)?;
    let merge_heads = merge_heads(repo, path)?;
    let staged = crate::scan::stage_all(repo, &mut index, path)?;
    let incremental =
        merge_heads.is_empty() && !index.has_conflicts() && staged.in_sync_with == Some(head.id());
    let tree_id = if incremental {
        let base = head.tree().ctx("read HEAD's tree", path)?;
        crate::tree::update(repo, &base, &index, &staged.paths, path)?
    } else {
        index.write_tree().ctx("write the tree", path)?
    };
    index.write().ctx("write the index", path)?;
    if merge_heads.is_empty() && head.tree_id() == tree_id {
        staged.save(head.id())?;
        return Ok(None);
    }
    let mut parents = vec![head];
    for oid in merge_heads {
        parents.push(repo.find_commit(oid).ctx("find the merged commit", path)?);
    }
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let tree = repo.find_tree(tree_id).ctx("find the tree", path)?;
    let sig = signature(settings, path)?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &parent_refs)
        .ctx("commit", path)?;
    if repo.state() != RepositoryState::Clean {
        repo.cleanup_state().ctx("clear the merge state", path)?;
    }
    staged.save(oid)?;
    Ok(Some(oid))
}

/// The commits of MERGE_HEAD when a merge is in progress (empty otherwise).
pub(crate) fn merge_heads(repo: &Repository, path: &Path) -> Result<Vec<Oid>> {
    if repo.state() != RepositoryState::Merge {
        return Ok(Vec::new());
    }
    let file = repo.path().join("MERGE_HEAD");
    let text = std::fs::read_to_string(&file).map_err(crate::error::io_error("read", &file))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Oid::from_str(l.trim()).ctx("parse MERGE_HEAD", path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_a_subject_and_trailers() {
        let info = CommitInfo {
            agent: "writer",
            session: "s1",
            pipeline: "p",
            step: 4,
        };
        assert_eq!(
            info.message(),
            "writer: step 4 of p\n\nOrchestra-Session: s1\nOrchestra-Agent: writer\nOrchestra-Step: 4\n"
        );
        let trailers = git2::message_trailers_strs(&info.message()).unwrap();
        let pairs: Vec<_> = trailers.iter().collect();
        assert_eq!(
            pairs,
            [
                ("Orchestra-Session", "s1"),
                ("Orchestra-Agent", "writer"),
                ("Orchestra-Step", "4")
            ]
        );
    }
}
