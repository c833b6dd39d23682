//! Merge conflicts: what is reported about each conflicted file, checking that a paused conflict
//! was really resolved, and aborting a merge.

use std::fs;
use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{Index, IndexEntry, Repository, ResetType};

use crate::error::{Context as _, Result};

/// One file both sides changed incompatibly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictFile {
    /// The path inside the repository.
    pub path: String,
    /// The common ancestor's text (None: the file did not exist there).
    pub base: Option<String>,
    /// The session branch's text (None: deleted or absent there).
    pub ours: Option<String>,
    /// The fork's text (None: deleted or absent there).
    pub theirs: Option<String>,
    /// The file as written in the session worktree, with `<<<<<<<`/`=======`/`>>>>>>>` markers
    /// (None when the merge left no file there).
    pub with_markers: Option<String>,
}

/// One fork's merge that conflicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The fork's agent.
    pub agent: String,
    /// The step the agent ran in.
    pub step: u64,
    /// The fork's branch.
    pub branch: String,
    /// The conflicted files, in path order.
    pub files: Vec<ConflictFile>,
}

impl Conflict {
    /// The conflicted paths.
    pub fn paths(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.path.as_str()).collect()
    }
}

/// Reads the conflicts of `index` (after a merge into the worktree at `workdir`).
pub(crate) fn conflict_files(
    repo: &Repository,
    workdir: &Path,
    index: &Index,
) -> Result<Vec<ConflictFile>> {
    let mut files = Vec::new();
    for conflict in index.conflicts().ctx("read the conflicts", workdir)? {
        let conflict = conflict.ctx("read a conflict", workdir)?;
        let Some(path) = [&conflict.our, &conflict.their, &conflict.ancestor]
            .into_iter()
            .flatten()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .next()
        else {
            continue;
        };
        let with_markers = fs::read(workdir.join(&path))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        files.push(ConflictFile {
            base: blob_text(repo, workdir, conflict.ancestor.as_ref())?,
            ours: blob_text(repo, workdir, conflict.our.as_ref())?,
            theirs: blob_text(repo, workdir, conflict.their.as_ref())?,
            with_markers,
            path,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn blob_text(
    repo: &Repository,
    workdir: &Path,
    entry: Option<&IndexEntry>,
) -> Result<Option<String>> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    let blob = repo
        .find_blob(entry.id)
        .ctx("read a conflicting blob", workdir)?;
    Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
}

/// The paths of a merge in progress that are still unresolved: conflicted in the index, or
/// listed as conflicts in MERGE_MSG and still holding conflict markers.
pub(crate) fn unresolved(repo: &Repository, workdir: &Path) -> Result<Vec<String>> {
    let index = repo.index().ctx("read the index", workdir)?;
    let mut paths: Vec<String> = Vec::new();
    for conflict in index.conflicts().ctx("read the conflicts", workdir)? {
        let conflict = conflict.ctx("read a conflict", workdir)?;
        if let Some(e) = [&conflict.our, &conflict.their, &conflict.ancestor]
            .into_iter()
            .flatten()
            .next()
        {
            paths.push(String::from_utf8_lossy(&e.path).into_owned());
        }
    }
    let msg = fs::read_to_string(repo.path().join("MERGE_MSG")).unwrap_or_default();
    paths.extend(merge_msg_conflicts(&msg));
    paths.sort();
    paths.dedup();
    // A conflicted path is resolved once its file has no markers left, or is gone (deleting
    // it is a resolution too).
    paths.retain(|p| fs::read(workdir.join(p)).is_ok_and(|bytes| has_markers(&bytes)));
    Ok(paths)
}

/// The paths listed under `Conflicts:` in a MERGE_MSG (libgit2 and git both write `#\tpath`).
fn merge_msg_conflicts(msg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_list = false;
    for line in msg.lines() {
        let body = line.trim_start_matches('#').trim();
        if body == "Conflicts:" {
            in_list = true;
        } else if in_list {
            match line.strip_prefix("#\t") {
                Some(path) => out.push(path.to_owned()),
                None if body.is_empty() => {}
                None => in_list = false,
            }
        }
    }
    out
}

/// Whether a file still has conflict markers at the start of a line.
pub(crate) fn has_markers(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let mut open = false;
    for line in text.lines() {
        if line.starts_with("<<<<<<< ") || line == "<<<<<<<" {
            open = true;
        } else if open && (line.starts_with(">>>>>>> ") || line == ">>>>>>>") {
            return true;
        }
    }
    false
}

/// Abandons a merge in progress: clears MERGE_HEAD and puts the index and files back at HEAD.
/// (The worktree was clean before the merge, so nothing of the user's or an agent's is lost.)
pub(crate) fn abort(repo: &Repository, workdir: &Path) -> Result<()> {
    repo.cleanup_state().ctx("clear the merge state", workdir)?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .ctx("resolve HEAD", workdir)?;
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repo.reset(head.as_object(), ResetType::Hard, Some(&mut checkout))
        .ctx("reset to HEAD", workdir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_only_as_a_pair_at_line_starts() {
        assert!(has_markers(b"a\n<<<<<<< HEAD\nx\n=======\ny\n>>>>>>> b\n"));
        assert!(!has_markers(b"just text with <<<<<<< inside\n"));
        assert!(!has_markers(b"<<<<<<< only an opener\n"));
    }

    #[test]
    fn merge_msg_conflict_lists_are_parsed() {
        let libgit2 = "Merge branch 'x'\n#Conflicts:\n#\ta.txt\n#\tdir/b.txt\n";
        assert_eq!(merge_msg_conflicts(libgit2), ["a.txt", "dir/b.txt"]);
        let git = "Merge branch 'x'\n\n# Conflicts:\n#\ta.txt\n#\n# It looks like...\n";
        assert_eq!(merge_msg_conflicts(git), ["a.txt"]);
        assert!(merge_msg_conflicts("Merge branch 'x'\n").is_empty());
    }
}
