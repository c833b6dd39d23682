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

/// The patch of one commit against its first parent, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPatch {
    /// Unified diff: file headers, `@@` hunk headers, and each line prefixed with `+`, `-` or a
    /// space (readable without colour). Cut at a line boundary when [`CommitPatch::cut`].
    pub text: String,
    /// Whether the patch was longer than asked for.
    pub cut: bool,
    /// The length in bytes of the whole patch (when `cut`, at least the cut length).
    pub bytes: usize,
}

/// The patch of commit `sha` of the repository at `repo_path` against its first parent (the
/// empty tree for a root commit), at most `max_bytes` of it. `None` when the repository has no
/// such commit.
pub fn commit_patch(repo_path: &Path, sha: &str, max_bytes: usize) -> Result<Option<CommitPatch>> {
    let repo = Repository::open(repo_path).ctx("open repository", repo_path)?;
    let Ok(oid) = Oid::from_str(sha) else {
        return Ok(None);
    };
    let commit = match repo.find_commit(oid) {
        Ok(c) => c,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(format!("read commit {sha}"), repo_path),
    };
    let tree = commit.tree().ctx("read tree", repo_path)?;
    let parent = match commit.parent(0) {
        Ok(p) => Some(p.tree().ctx("read tree", repo_path)?),
        Err(_) => None,
    };
    let diff = repo
        .diff_tree_to_tree(parent.as_ref(), Some(&tree), None)
        .ctx("diff commit", repo_path)?;
    let mut text = String::new();
    let mut bytes = 0usize;
    let mut cut = false;
    let printed = diff.print(git2::DiffFormat::Patch, |_, _, line| {
        let content = String::from_utf8_lossy(line.content());
        let origin = line.origin();
        let mut piece = String::with_capacity(content.len() + 1);
        if matches!(origin, '+' | '-' | ' ') {
            piece.push(origin);
        }
        piece.push_str(&content);
        if !piece.ends_with('\n') {
            piece.push('\n');
        }
        bytes = bytes.saturating_add(piece.len());
        if text.len() + piece.len() > max_bytes {
            cut = true;
            // Stop walking the diff: the rest is not shown.
            return false;
        }
        text.push_str(&piece);
        true
    });
    if !cut {
        printed.ctx("diff commit", repo_path)?;
    }
    Ok(Some(CommitPatch { text, cut, bytes }))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[test]
    fn a_commit_patch_has_prefixed_lines_and_is_cut_when_long() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        git(p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join("a.txt"), "one\ntwo\n").unwrap();
        git(p, &["add", "."]);
        git(p, &["commit", "-q", "-m", "first"]);
        std::fs::write(p.join("a.txt"), "one\nthree\n").unwrap();
        std::fs::write(p.join("b.txt"), "x\n".repeat(500)).unwrap();
        git(p, &["add", "."]);
        git(p, &["commit", "-q", "-m", "second"]);
        let head = crate::head_sha(p).unwrap();

        let whole = commit_patch(p, &head, 1 << 20).unwrap().unwrap();
        assert!(!whole.cut);
        assert_eq!(whole.bytes, whole.text.len());
        assert!(
            whole.text.contains("diff --git a/a.txt b/a.txt\n"),
            "{}",
            whole.text
        );
        assert!(whole.text.contains("\n-two\n+three\n"), "{}", whole.text);
        assert!(whole.text.contains("@@ "), "{}", whole.text);
        assert!(whole.text.contains("+++ b/b.txt\n"), "{}", whole.text);

        let part = commit_patch(p, &head, 200).unwrap().unwrap();
        assert!(part.cut);
        assert!(part.text.len() <= 200, "{}", part.text.len());
        assert!(part.text.ends_with('\n'));
        assert!(whole.text.starts_with(&part.text));

        assert_eq!(commit_patch(p, &"0".repeat(40), 100).unwrap(), None);
        assert_eq!(commit_patch(p, "not-a-sha", 100).unwrap(), None);
    }
}
