//! Low-level worktree plumbing: opening the user's repository without touching its checkout,
//! adding and removing linked worktrees, reading git's worktree records, and the exclude entry
//! that keeps the worktrees directory out of the user's `git status`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use git2::{BranchType, Repository, WorktreeAddOptions, WorktreePruneOptions};

use crate::error::{Context as _, GitError, Result, io_error};
use crate::names::{RECORD_PREFIX, is_inside};

/// The user's repository, opened for metadata only: refs, objects and worktree records. Its
/// HEAD, index and working tree are never written through it.
pub(crate) struct UserRepo {
    pub(crate) repo: Repository,
    /// The top of the working tree.
    pub(crate) workdir: PathBuf,
    /// Where the path asked for lies inside the working tree (empty for the top).
    pub(crate) subdir: PathBuf,
}

impl UserRepo {
    /// Opens the repository containing `path` (which may be a subdirectory of it).
    pub(crate) fn open(path: &Path) -> Result<UserRepo> {
        let repo = Repository::discover(path).ctx("open repository", path)?;
        let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
            return Err(GitError::Bare {
                path: path.to_path_buf(),
            });
        };
        let record = repo
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if repo.is_worktree() && record.starts_with(RECORD_PREFIX) {
            return Err(GitError::NotSessionWorktree {
                path: workdir,
                reason: "it is an orchestra worktree, not the user's repository".to_owned(),
            });
        }
        let canonical = path.canonicalize().map_err(io_error("resolve", path))?;
        let workdir_canonical = workdir.canonicalize().unwrap_or_else(|_| workdir.clone());
        let subdir = canonical
            .strip_prefix(&workdir_canonical)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(UserRepo {
            repo,
            workdir,
            subdir,
        })
    }

    /// Where git keeps data shared by all worktrees (`.git` of the main checkout).
    pub(crate) fn commondir(&self) -> &Path {
        self.repo.commondir()
    }

    /// The commit a branch points at, as an id.
    pub(crate) fn branch_tip(&self, branch: &str) -> Result<Option<git2::Oid>> {
        match self.repo.find_branch(branch, BranchType::Local) {
            Ok(b) => {
                let commit = b
                    .get()
                    .peel_to_commit()
                    .ctx(format!("resolve {branch}"), &self.workdir)?;
                Ok(Some(commit.id()))
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e).ctx(format!("look up branch {branch}"), &self.workdir),
        }
    }

    /// Creates `branch` at `commit`; fails when it exists.
    pub(crate) fn create_branch(&self, branch: &str, commit: git2::Oid) -> Result<()> {
        if self.branch_tip(branch)?.is_some() {
            return Err(GitError::BranchExists {
                branch: branch.to_owned(),
                path: self.workdir.clone(),
            });
        }
        let commit = self
            .repo
            .find_commit(commit)
            .ctx("find commit", &self.workdir)?;
        self.repo
            .branch(branch, &commit, false)
            .ctx(format!("create branch {branch}"), &self.workdir)?;
        Ok(())
    }

    /// Deletes `branch` if it exists; returns the commit it pointed at.
    pub(crate) fn delete_branch(&self, branch: &str) -> Result<Option<git2::Oid>> {
        let mut found = match self.repo.find_branch(branch, BranchType::Local) {
            Ok(b) => b,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(format!("look up branch {branch}"), &self.workdir),
        };
        let tip = found.get().target();
        found
            .delete()
            .ctx(format!("delete branch {branch}"), &self.workdir)?;
        Ok(tip)
    }

    /// Adds a linked worktree named `record` at `path` with `branch` checked out.
    pub(crate) fn add_worktree(&self, record: &str, path: &Path, branch: &str) -> Result<()> {
        if path.exists() {
            return Err(GitError::WorktreeExists {
                path: path.to_path_buf(),
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        let reference = self
            .repo
            .find_reference(&format!("refs/heads/{branch}"))
            .ctx(format!("look up branch {branch}"), &self.workdir)?;
        let mut opts = WorktreeAddOptions::new();
        opts.reference(Some(&reference));
        let mut attempt = 0;
        loop {
            let result = {
                let _guard = worktree_lock();
                self.repo.worktree(record, path, Some(&opts))
            };
            match result {
                Ok(_) => break,
                // libgit2 reports any branch as "already checked out" when it meets another
                // worktree being created or removed at that moment (by another process: ours
                // are serialised); the check runs before anything is written, so try again.
                Err(e)
                    if attempt < 5
                        && e.message().contains("already checked out")
                        && !self.checked_out(branch)? =>
                {
                    attempt += 1;
                    tracing::debug!(
                        branch,
                        attempt,
                        "worktree add raced another worktree change"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(e) => {
                    let op = format!("add worktree {} for {branch}", path.display());
                    return Err(e).ctx(op, &self.workdir);
                }
            }
        }
        tracing::debug!(worktree = %path.display(), branch, "added worktree");
        Ok(())
    }

    /// Whether `branch` is checked out in a linked worktree, from git's records.
    fn checked_out(&self, branch: &str) -> Result<bool> {
        Ok(self
            .records()?
            .iter()
            .any(|r| r.branch.as_deref() == Some(branch)))
    }

    /// Git's records of linked worktrees.
    pub(crate) fn records(&self) -> Result<Vec<Record>> {
        let names = self.repo.worktrees().ctx("list worktrees", &self.workdir)?;
        let mut out = Vec::new();
        for name in names.iter().filter_map(|n| n.ok().flatten()) {
            let wt = match self.repo.find_worktree(name) {
                Ok(wt) => wt,
                Err(e) => {
                    tracing::warn!(record = name, error = %e, "unreadable worktree record");
                    continue;
                }
            };
            let head =
                fs::read_to_string(self.commondir().join("worktrees").join(name).join("HEAD"))
                    .unwrap_or_default();
            let branch = head
                .trim()
                .strip_prefix("ref: refs/heads/")
                .map(ToOwned::to_owned);
            out.push(Record {
                name: name.to_owned(),
                path: wt.path().to_path_buf(),
                branch,
                valid: wt.validate().is_ok(),
            });
        }
        Ok(out)
    }

    /// Removes the worktree record `record` and its directory, which must lie inside `root`.
    /// Returns the directory when something was (or, with `dry_run`, would be) removed.
    pub(crate) fn remove_worktree(
        &self,
        record: &str,
        root: &Path,
        dry_run: bool,
    ) -> Result<Option<PathBuf>> {
        let wt = match self.repo.find_worktree(record) {
            Ok(wt) => wt,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(format!("open worktree record {record}"), &self.workdir),
        };
        let path = wt.path().to_path_buf();
        if !is_inside(&path, root) {
            return Err(GitError::NotSessionWorktree {
                path,
                reason: format!("it is outside {}; remove it by hand", root.display()),
            });
        }
        if dry_run {
            return Ok(Some(path));
        }
        let mut opts = WorktreePruneOptions::new();
        opts.valid(true).locked(false).working_tree(true);
        {
            let _guard = worktree_lock();
            wt.prune(Some(&mut opts))
                .ctx(format!("remove worktree {}", path.display()), &self.workdir)?;
        }
        // libgit2 leaves the directory when the record was already stale; finish the job.
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
        }
        if let Some(parent) = path.parent().filter(|p| is_inside(p, root)) {
            // The per-session directory goes when its last worktree went; not empty = keep.
            let _ = fs::remove_dir(parent);
        }
        tracing::debug!(worktree = %path.display(), "removed worktree");
        Ok(Some(path))
    }

    /// Prunes the stale record `record` (its directory is gone), like `git worktree prune`.
    pub(crate) fn prune_record(&self, record: &str) -> Result<()> {
        let wt = self
            .repo
            .find_worktree(record)
            .ctx(format!("open worktree record {record}"), &self.workdir)?;
        let _guard = worktree_lock();
        wt.prune(None)
            .ctx(format!("prune worktree record {record}"), &self.workdir)
    }

    /// Makes sure `pattern` is a line of `.git/info/exclude` (git metadata, not the user's files),
    /// so the worktrees directory does not show up as untracked in the user's checkout.
    pub(crate) fn ensure_excluded(&self, pattern: &str) -> Result<()> {
        let info = self.commondir().join("info");
        let file = info.join("exclude");
        let current = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error("read", &file)(e)),
        };
        if current.lines().any(|line| line.trim() == pattern) {
            return Ok(());
        }
        fs::create_dir_all(&info).map_err(io_error("create directory", &info))?;
        let mut out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(io_error("open", &file))?;
        let sep = if current.is_empty() || current.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        write!(out, "{sep}# orchestra session worktrees\n{pattern}\n")
            .map_err(io_error("write", &file))?;
        Ok(())
    }
}

/// Serialises adding and removing worktrees in this process: libgit2's check that a branch is
/// not checked out elsewhere fails spuriously while another worktree is half made or removed.
fn worktree_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// git's record of one linked worktree.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// The record's name (`.git/worktrees/{name}`).
    pub(crate) name: String,
    /// The worktree's directory.
    pub(crate) path: PathBuf,
    /// The branch checked out there, if HEAD is a branch.
    pub(crate) branch: Option<String>,
    /// Whether the directory still exists and points back to the record.
    pub(crate) valid: bool,
}

/// The exclude pattern for the worktrees directory, when it lies inside the working tree.
pub(crate) fn exclude_pattern(workdir: &Path, root: &Path) -> Option<String> {
    let rel = root.strip_prefix(workdir).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str().map(ToOwned::to_owned),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if parts.is_empty() {
        return None;
    }
    Some(format!("/{}/", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_pattern_is_anchored_and_only_inside_the_tree() {
        let w = Path::new("/r");
        assert_eq!(
            exclude_pattern(w, &w.join(".orchestra/worktrees")).as_deref(),
            Some("/.orchestra/worktrees/")
        );
        assert_eq!(exclude_pattern(w, Path::new("/elsewhere/wt")), None);
        assert_eq!(exclude_pattern(w, &w.join("../up")), None);
    }
}
