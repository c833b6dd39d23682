//! The commits of a session branch, oldest first, with the step and agent of their Orchestra
//! trailers and their diffstat against the first parent (for `orchestra report`).

use std::path::Path;

use git2::{Oid, Repository, Sort};

use crate::error::{Context as _, Result};

/// One commit of a session branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchCommit {
    /// The commit id.
    pub sha: String,
    /// The first line of its message.
    pub subject: String,
    /// `Orchestra-Step:` (absent on commits Orchestra did not make, such as merges of forks).
    pub step: Option<u64>,
    /// `Orchestra-Agent:`.
    pub agent: Option<String>,
    /// Files changed against the first parent.
    pub files_changed: usize,
    /// Lines added.
    pub insertions: usize,
    /// Lines removed.
    pub deletions: usize,
    /// Each changed file with its added and removed lines.
    pub files: Vec<(String, usize, usize)>,
}

/// The commits on `branch` since `base` (exclusive), oldest first. `None` when the branch is
/// gone (removed by `orchestra cleanup`).
pub fn branch_commits(
    repo_path: &Path,
    branch: &str,
    base: &str,
) -> Result<Option<Vec<BranchCommit>>> {
    let repo = Repository::open(repo_path).ctx("open repository", repo_path)?;
    let tip = match repo.find_branch(branch, git2::BranchType::Local) {
        Ok(b) => b
            .get()
            .peel_to_commit()
            .ctx(format!("resolve branch {branch}"), repo_path)?,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(format!("find branch {branch}"), repo_path),
    };
    let mut walk = repo.revwalk().ctx("walk history", repo_path)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .ctx("walk history", repo_path)?;
    walk.push(tip.id()).ctx("walk history", repo_path)?;
    if let Ok(base) = Oid::from_str(base) {
        // A base that is not in the repository any more hides nothing.
        let _ = walk.hide(base);
    }
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.ctx("walk history", repo_path)?;
        let commit = repo.find_commit(oid).ctx("read commit", repo_path)?;
        let message = commit.message().unwrap_or("");
        let trailer = |key: &str| {
            message
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
        };
        let tree = commit.tree().ctx("read tree", repo_path)?;
        let parent = match commit.parent(0) {
            Ok(p) => Some(p.tree().ctx("read tree", repo_path)?),
            Err(_) => None,
        };
        let diff = repo
            .diff_tree_to_tree(parent.as_ref(), Some(&tree), None)
            .ctx("diff commit", repo_path)?;
        let stats = diff.stats().ctx("diff commit", repo_path)?;
        let mut files = Vec::new();
        for i in 0..diff.deltas().len() {
            let Ok(Some(patch)) = git2::Patch::from_diff(&diff, i) else {
                continue;
            };
            let path = patch
                .delta()
                .new_file()
                .path()
                .or_else(|| patch.delta().old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (_, added, removed) = patch.line_stats().ctx("diff commit", repo_path)?;
            files.push((path, added, removed));
        }
        out.push(BranchCommit {
            sha: oid.to_string(),
            subject: message.lines().next().unwrap_or("").to_owned(),
            step: trailer("Orchestra-Step:").and_then(|s| s.parse().ok()),
            agent: trailer("Orchestra-Agent:"),
            files_changed: stats.files_changed(),
            insertions: stats.insertions(),
            deletions: stats.deletions(),
            files,
        });
    }
    Ok(Some(out))
}
