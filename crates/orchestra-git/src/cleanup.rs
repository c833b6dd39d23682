//! Listing and removing sessions' branches and worktrees. Only branches under the prefix that
//! parse as Orchestra's, and only worktrees inside the worktrees directory, are ever removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::BranchType;

use crate::error::{Context as _, Result};
use crate::names::{GitSettings, is_inside, parse_branch};
use crate::worktree::{Record, UserRepo};

/// One of Orchestra's branches in a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchInfo {
    /// The full branch name.
    pub name: String,
    /// The pipeline part of the name.
    pub pipeline: String,
    /// The session id.
    pub session: String,
    /// For a parallel writer's fork: the agent and step.
    pub fork: Option<(String, u64)>,
    /// The commit the branch points at.
    pub sha: String,
    /// When the branch last moved (newest reflog entry; the tip's commit time without a reflog).
    pub last_activity: SystemTime,
    /// The worktree the branch is checked out in, if any.
    pub worktree: Option<PathBuf>,
}

/// Something [`remove_session`] or [`cleanup`] removed (or, in a dry run, would remove).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// A worktree directory and git's record of it.
    Worktree {
        /// The directory.
        path: PathBuf,
        /// The branch it had checked out.
        branch: Option<String>,
    },
    /// A branch.
    Branch {
        /// The branch name.
        name: String,
        /// The commit it pointed at (to restore it by hand: `git branch NAME SHA`).
        sha: String,
    },
    /// A branch of the remote of a repository with `url:`.
    RemoteBranch {
        /// The remote (a password in it shown as `***`).
        url: String,
        /// The branch name.
        name: String,
        /// The commit it pointed at.
        sha: String,
    },
    /// git's record of a worktree whose directory was already gone (`git worktree prune`).
    StaleRecord {
        /// The record's name.
        name: String,
    },
}

/// What [`cleanup`] removes.
#[derive(Clone, Copy)]
pub struct CleanupOptions<'a> {
    /// Only sessions whose branches all last moved longer ago than this (None: any age).
    pub older_than: Option<Duration>,
    /// Sessions never removed whatever their age: the running and paused ones.
    pub keep: &'a dyn Fn(&str) -> bool,
    /// List what would go, remove nothing.
    pub dry_run: bool,
    /// The present moment (for the age threshold).
    pub now: SystemTime,
}

impl std::fmt::Debug for CleanupOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanupOptions")
            .field("older_than", &self.older_than)
            .field("dry_run", &self.dry_run)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Orchestra's branches in the repository at `repo_path`, sorted by name.
pub fn list_session_branches(repo_path: &Path, settings: &GitSettings) -> Result<Vec<BranchInfo>> {
    let user = UserRepo::open(repo_path)?;
    let records = user.records()?;
    list_in(&user, &records, settings)
}

/// Removes everything of `session` in the repository at `repo_path`: its worktrees (session and
/// forks) and its branches, then prunes stale worktree records of Orchestra's. With `dry_run`,
/// only reports what would go.
pub fn remove_session(
    repo_path: &Path,
    session: &str,
    settings: &GitSettings,
    dry_run: bool,
) -> Result<Vec<Removed>> {
    let user = UserRepo::open(repo_path)?;
    let records = user.records()?;
    let branches = list_in(&user, &records, settings)?;
    let mut removed = remove_in(&user, &records, &branches, session, settings, dry_run)?;
    let pruned = prune_stale(&user, &records, &removed, settings, dry_run)?;
    removed.extend(pruned);
    Ok(removed)
}

/// Removes the sessions that `options` selects: not kept, and (with `older_than`) idle for
/// longer than the threshold. Then prunes stale worktree records of Orchestra's.
pub fn cleanup(
    repo_path: &Path,
    settings: &GitSettings,
    options: &CleanupOptions<'_>,
) -> Result<Vec<Removed>> {
    let user = UserRepo::open(repo_path)?;
    let records = user.records()?;
    let branches = list_in(&user, &records, settings)?;
    let mut newest: BTreeMap<&str, SystemTime> = BTreeMap::new();
    for b in &branches {
        let entry = newest.entry(b.session.as_str()).or_insert(UNIX_EPOCH);
        *entry = (*entry).max(b.last_activity);
    }
    let mut removed = Vec::new();
    for (session, last) in newest {
        if (options.keep)(session) {
            tracing::debug!(session, "kept: protected");
            continue;
        }
        let idle = options.now.duration_since(last).unwrap_or_default();
        if options.older_than.is_some_and(|min| idle < min) {
            tracing::debug!(session, ?idle, "kept: too recent");
            continue;
        }
        removed.extend(remove_in(
            &user,
            &records,
            &branches,
            session,
            settings,
            options.dry_run,
        )?);
    }
    let pruned = prune_stale(&user, &records, &removed, settings, options.dry_run)?;
    removed.extend(pruned);
    Ok(removed)
}

fn list_in(user: &UserRepo, records: &[Record], settings: &GitSettings) -> Result<Vec<BranchInfo>> {
    let mut out = Vec::new();
    let branches = user
        .repo
        .branches(Some(BranchType::Local))
        .ctx("list branches", &user.workdir)?;
    for branch in branches {
        let (branch, _) = branch.ctx("read a branch", &user.workdir)?;
        let Ok(Some(name)) = branch.name() else {
            continue;
        };
        let Some(parsed) = parse_branch(&settings.prefix, name) else {
            continue;
        };
        let reference = branch.get();
        let Ok(full) = reference.name() else { continue };
        let Ok(commit) = reference.peel_to_commit() else {
            continue;
        };
        let last_activity = user
            .repo
            .reflog(full)
            .ok()
            .and_then(|log| log.get(0).map(|e| e.committer().when().seconds()))
            .unwrap_or_else(|| commit.committer().when().seconds());
        out.push(BranchInfo {
            name: name.to_owned(),
            pipeline: parsed.pipeline,
            session: parsed.session,
            fork: parsed.fork,
            sha: commit.id().to_string(),
            last_activity: UNIX_EPOCH
                + Duration::from_secs(u64::try_from(last_activity).unwrap_or(0)),
            worktree: records
                .iter()
                .find(|r| r.branch.as_deref() == Some(name))
                .map(|r| r.path.clone()),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn remove_in(
    user: &UserRepo,
    records: &[Record],
    branches: &[BranchInfo],
    session: &str,
    settings: &GitSettings,
    dry_run: bool,
) -> Result<Vec<Removed>> {
    let root = settings.worktrees_root(&user.workdir);
    let mut removed = Vec::new();
    for branch in branches.iter().filter(|b| b.session == session) {
        let mut blocked = false;
        for record in records
            .iter()
            .filter(|r| r.branch.as_deref() == Some(branch.name.as_str()))
        {
            if !is_inside(&record.path, &root) {
                tracing::warn!(branch = branch.name, worktree = %record.path.display(),
                    "branch is checked out outside the worktrees directory; left alone");
                blocked = true;
                continue;
            }
            if uncommitted(&record.path)? {
                tracing::warn!(branch = branch.name, worktree = %record.path.display(),
                    "worktree has uncommitted changes; left alone (commit them, or remove it with `git worktree remove --force`)");
                blocked = true;
                continue;
            }
            if let Some(path) = user.remove_worktree(&record.name, &root, dry_run)? {
                removed.push(Removed::Worktree {
                    path,
                    branch: Some(branch.name.clone()),
                });
            }
        }
        if blocked {
            continue;
        }
        if !dry_run {
            user.delete_branch(&branch.name)?;
        }
        tracing::info!(branch = branch.name, dry_run, "removed session branch");
        removed.push(Removed::Branch {
            name: branch.name.clone(),
            sha: branch.sha.clone(),
        });
    }
    if !dry_run {
        // The session directory, if its worktrees were all removed (kept when not empty).
        let _ = std::fs::remove_dir(root.join(session));
    }
    Ok(removed)
}

/// Whether the worktree at `path` holds work git does not have: changed, staged or untracked
/// files (ignored ones aside). A worktree whose directory is gone has none.
fn uncommitted(path: &Path) -> Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    let repo = git2::Repository::open(path).ctx("open the worktree", path)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .ctx("read the worktree's status", path)?;
    Ok(!statuses.is_empty())
}

/// Prunes records of Orchestra's worktrees whose directories are gone (skipping those `done`
/// already lists as removed worktrees).
fn prune_stale(
    user: &UserRepo,
    records: &[Record],
    done: &[Removed],
    settings: &GitSettings,
    dry_run: bool,
) -> Result<Vec<Removed>> {
    let root = settings.worktrees_root(&user.workdir);
    let mut removed = Vec::new();
    for record in records.iter().filter(|r| !r.valid) {
        let ours = record.path.starts_with(&root)
            || record
                .branch
                .as_deref()
                .is_some_and(|b| parse_branch(&settings.prefix, b).is_some());
        let handled = done
            .iter()
            .any(|d| matches!(d, Removed::Worktree { path, .. } if *path == record.path));
        if !ours || handled || record.path.exists() {
            continue;
        }
        if !dry_run {
            user.prune_record(&record.name)?;
        }
        tracing::info!(
            record = record.name,
            dry_run,
            "pruned stale worktree record"
        );
        removed.push(Removed::StaleRecord {
            name: record.name.clone(),
        });
    }
    Ok(removed)
}
