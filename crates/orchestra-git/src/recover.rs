//! Recovery of a session's own git state after its process was killed mid-step (resume calls
//! it while holding the session's lease): stale lock files on the session's refs and worktree
//! records, half-made fork worktrees and branches, and a session worktree left mid-merge.
//!
//! Only the session's refs (`{prefix}{pipeline}/{session}` and its `+{agent}-{step}` forks),
//! its worktree records (`.git/worktrees/orchestra-{session}+{repo}…`) and its directories
//! under the worktrees directory are ever touched: never another ref, record or the user's
//! checkout.

use std::fs;
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{Oid, Repository, ResetType};

use crate::error::{Context as _, GitError, Result, io_error};
use crate::names::{
    GitSettings, RECORD_PREFIX, check_session, component, is_inside, session_worktree_path,
};
use crate::worktree::UserRepo;

/// What [`recover_session`] repaired (all empty when nothing needed it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Stale `*.lock` files removed.
    pub locks: Vec<PathBuf>,
    /// Worktree records (and their directories) removed because they were half made or broken.
    pub records: Vec<String>,
    /// Worktree directories removed because git had no usable record of them.
    pub directories: Vec<PathBuf>,
    /// Fork branches deleted because they did not point at a commit.
    pub branches: Vec<String>,
    /// Fork worktrees made again for fork branches that had lost theirs.
    pub recreated: Vec<PathBuf>,
    /// Where the session worktree was reset to (a merge or a fork's checkout was interrupted).
    pub reset_to: Option<String>,
}

impl Recovery {
    /// Whether anything was repaired.
    pub fn is_empty(&self) -> bool {
        *self == Recovery::default()
    }
}

/// Repairs what a killed run of `session` left behind in the repository at `repo_path`, so the
/// session can be reopened and its interrupted step run again. Call it only while holding the
/// session's lease (no other process works on the session), and not for a session paused on a
/// merge conflict (its worktree holds a human's resolution):
///
/// 1. removes `*.lock` files of the session's branches (and their reflogs) and inside the
///    session's worktree records;
/// 2. removes worktree records of the session that are half made or broken (a missing file, a
///    HEAD pointing at nothing, a directory gone or not pointing back) with their directories,
///    and directories of the session with no record;
/// 3. deletes fork branches that do not point at a commit, and makes the worktree again of each
///    fork branch left without one;
/// 4. when a merge of forks or a checkout was interrupted (a merge in progress, an unreadable
///    or missing index, or a changed session worktree while forks exist), resets the session
///    worktree: to
///    `last_recorded` (the session branch's commit at the checkpoint the resume starts from)
///    when every commit made since is still on a fork branch, else to the branch's tip; merge
///    state, staged and untracked files are cleared.
///
/// The session worktree itself, when its record was broken, is left for
/// [`open_session`](crate::open_session) to make again from the branch.
pub fn recover_session(
    repo_path: &Path,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    settings: &GitSettings,
    last_recorded: Option<&str>,
) -> Result<Recovery> {
    check_session(session)?;
    let user = UserRepo::open(repo_path)?;
    let mut out = Recovery::default();
    let branch = settings.session_branch(pipeline, session);
    let root = settings.worktrees_root(&user.workdir);
    let repo_leaf = component(repo_name);
    let records = session_records(&user, session, &repo_leaf)?;

    remove_locks(&user, &branch, session, &records, &mut out)?;

    // Broken records go, with their directories.
    let mut healthy = Vec::new();
    for (name, leaf) in &records {
        let dir = root.join(session).join(leaf);
        match record_problem(&user, name, &dir) {
            None => healthy.push(leaf.clone()),
            Some(problem) => {
                tracing::info!(record = name, problem, "removing a broken worktree record");
                let record_dir = user.commondir().join("worktrees").join(name);
                fs::remove_dir_all(&record_dir).map_err(io_error("remove", &record_dir))?;
                remove_dir_inside(&dir, &root)?;
                out.records.push(name.clone());
            }
        }
    }
    // Directories of this repo's worktrees that git has no (usable) record of.
    let session_dir = root.join(session);
    if let Ok(entries) = fs::read_dir(&session_dir) {
        for entry in entries.flatten() {
            let leaf = entry.file_name().to_string_lossy().into_owned();
            let ours = leaf == repo_leaf || leaf.starts_with(&format!("{repo_leaf}+"));
            if ours && !healthy.contains(&leaf) && remove_dir_inside(&entry.path(), &root)? {
                tracing::info!(dir = %entry.path().display(), "removing a worktree directory without a record");
                out.directories.push(entry.path());
            }
        }
    }

    let forks = repair_fork_branches(
        &user, &branch, &repo_leaf, session, &root, &healthy, &mut out,
    )?;

    let Some(tip) = user.branch_tip(&branch)? else {
        return Err(GitError::BranchNotFound {
            branch,
            path: user.workdir.clone(),
        });
    };
    let target = match last_recorded.and_then(|s| Oid::from_str(s).ok()) {
        Some(last) if !forks.is_empty() && last != tip && redoable(&user, last, tip, &forks)? => {
            last
        }
        _ => tip,
    };
    let worktree = session_worktree_path(&root, session, repo_name);
    if healthy.contains(&repo_leaf) {
        let repo = Repository::open(&worktree).ctx("open the session worktree", &worktree)?;
        if target != tip || interrupted(&repo, &worktree, !forks.is_empty()) {
            reset_worktree(&repo, &worktree, target)?;
            out.reset_to = Some(target.to_string());
        }
    } else if target != tip {
        // The worktree is made again from the branch by `open_session`.
        user.repo
            .find_reference(&format!("refs/heads/{branch}"))
            .and_then(|mut r| {
                r.set_target(target, "orchestra: recover to the last checkpoint")
                    .map(drop)
            })
            .ctx(format!("move {branch} back to {target}"), &user.workdir)?;
        out.reset_to = Some(target.to_string());
    }
    if !out.is_empty() {
        tracing::info!(session, repo = repo_name, recovery = ?out, "recovered the session's git state");
    }
    Ok(out)
}

/// The session's worktree records of this repo: (record name, worktree directory name).
fn session_records(
    user: &UserRepo,
    session: &str,
    repo_leaf: &str,
) -> Result<Vec<(String, String)>> {
    let dir = user.commondir().join("worktrees");
    let head = format!("{RECORD_PREFIX}{session}+");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("read", &dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(leaf) = name.strip_prefix(&head) else {
            continue;
        };
        if leaf == repo_leaf || leaf.starts_with(&format!("{repo_leaf}+")) {
            out.push((name.clone(), leaf.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes `*.lock` files of the session's refs and reflogs (the branch and its forks) and
/// inside its worktree records. Nothing else holds them while the lease is held.
fn remove_locks(
    user: &UserRepo,
    branch: &str,
    session: &str,
    records: &[(String, String)],
    out: &mut Recovery,
) -> Result<()> {
    let common = user.commondir();
    let (parent, _) = branch.rsplit_once('/').unwrap_or(("", branch));
    let mine = |name: &str| {
        name.strip_suffix(".lock").is_some_and(|stem| {
            stem == session
                || stem
                    .strip_prefix(session)
                    .is_some_and(|r| r.starts_with('+'))
        })
    };
    for base in ["refs/heads", "logs/refs/heads"] {
        let dir = common.join(base).join(parent);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if mine(&entry.file_name().to_string_lossy()) {
                remove_lock(&entry.path(), out)?;
            }
        }
    }
    for (name, _) in records {
        locks_under(&common.join("worktrees").join(name), out)?;
    }
    Ok(())
}

fn locks_under(dir: &Path, out: &mut Recovery) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            locks_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "lock") {
            remove_lock(&path, out)?;
        }
    }
    Ok(())
}

fn remove_lock(path: &Path, out: &mut Recovery) -> Result<()> {
    tracing::info!(lock = %path.display(), "removing a stale lock");
    fs::remove_file(path).map_err(io_error("remove", path))?;
    out.locks.push(path.to_path_buf());
    Ok(())
}

/// Why the record `name` (for the directory `dir`) is unusable, if it is.
fn record_problem(user: &UserRepo, name: &str, dir: &Path) -> Option<&'static str> {
    let record = user.commondir().join("worktrees").join(name);
    let read = |file: &str| fs::read_to_string(record.join(file)).ok();
    if read("commondir").is_none() {
        return Some("no commondir file");
    }
    let Some(gitdir) = read("gitdir") else {
        return Some("no gitdir file");
    };
    let gitdir = PathBuf::from(gitdir.trim());
    if gitdir.parent().map(same_path) != Some(same_path(dir)) {
        return Some("it points at another directory");
    }
    let Ok(dotgit) = fs::read_to_string(dir.join(".git")) else {
        return Some("the worktree directory or its .git file is gone");
    };
    let back = dotgit.trim().strip_prefix("gitdir:").map(str::trim);
    if back.map(|b| same_path(Path::new(b))) != Some(same_path(&record)) {
        return Some("the worktree does not point back to it");
    }
    let Some(head) = read("HEAD") else {
        return Some("no HEAD");
    };
    let head = head.trim();
    let target = match head.strip_prefix("ref: ") {
        Some(refname) => user
            .repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id()),
        None => Oid::from_str(head).and_then(|oid| user.repo.find_commit(oid).map(|c| c.id())),
    };
    if target.is_err() {
        return Some("its HEAD points at nothing");
    }
    None
}

fn same_path(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Removes `dir` when it lies inside `root`; whether something was removed.
fn remove_dir_inside(dir: &Path, root: &Path) -> Result<bool> {
    if !dir.exists() || !is_inside(dir, root) {
        return Ok(false);
    }
    fs::remove_dir_all(dir).map_err(io_error("remove", dir))?;
    Ok(true)
}

/// Deletes fork branches that do not point at a commit and makes the worktree again of those
/// left without one; returns the remaining forks' tips.
fn repair_fork_branches(
    user: &UserRepo,
    branch: &str,
    repo_leaf: &str,
    session: &str,
    root: &Path,
    healthy: &[String],
    out: &mut Recovery,
) -> Result<Vec<Oid>> {
    let prefix = format!("refs/heads/{branch}+");
    let refs = user
        .repo
        .references()
        .ctx("list references", &user.workdir)?;
    let mut names = Vec::new();
    for r in refs {
        match r {
            Ok(r) => {
                if let Some(name) = r.name().ok().filter(|n| n.starts_with(&prefix)) {
                    names.push(name.to_owned());
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable reference skipped"),
        }
    }
    // Loose ref files libgit2 cannot read are not listed above: look at the files too.
    let (parent, leaf) = branch.rsplit_once('/').unwrap_or(("", branch));
    let dir = user.commondir().join("refs/heads").join(parent);
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let name = format!("refs/heads/{parent}/{file}");
            if file.starts_with(&format!("{leaf}+"))
                && !file.ends_with(".lock")
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names.sort();
    let mut tips = Vec::new();
    for name in names {
        let short = name.trim_start_matches("refs/heads/").to_owned();
        let tip = user
            .repo
            .find_reference(&name)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id());
        let Ok(tip) = tip else {
            tracing::info!(
                branch = short,
                "deleting a fork branch that points at nothing"
            );
            let file = user.commondir().join(&name);
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Ok(mut r) = user.repo.find_reference(&name) {
                        r.delete()
                            .ctx(format!("delete branch {short}"), &user.workdir)?;
                    }
                }
                Err(e) => return Err(io_error("remove", &file)(e)),
            }
            out.branches.push(short);
            continue;
        };
        tips.push(tip);
        let fork_leaf = format!("{repo_leaf}+{}", &short[branch.len() + 1..]);
        if !healthy.contains(&fork_leaf) {
            let path = root.join(session).join(&fork_leaf);
            let record = crate::names::record_name(session, &fork_leaf);
            user.add_worktree(&record, &path, &short)?;
            tracing::info!(branch = short, "made the fork's worktree again");
            out.recreated.push(path);
        }
    }
    Ok(tips)
}

/// Whether the session branch can go back from `tip` to `last` and the merges be redone without
/// losing work: `last` is an ancestor of `tip` and every commit since that is not a merge is
/// still on a fork branch.
fn redoable(user: &UserRepo, last: Oid, tip: Oid, forks: &[Oid]) -> Result<bool> {
    let repo = &user.repo;
    if !repo
        .graph_descendant_of(tip, last)
        .ctx("compare commits", &user.workdir)?
    {
        return Ok(false);
    }
    let mut walk = repo.revwalk().ctx("walk the history", &user.workdir)?;
    walk.push(tip).ctx("walk the history", &user.workdir)?;
    walk.hide(last).ctx("walk the history", &user.workdir)?;
    for oid in walk {
        let oid = oid.ctx("walk the history", &user.workdir)?;
        let commit = repo.find_commit(oid).ctx("find a commit", &user.workdir)?;
        if commit.parent_count() > 1 {
            continue;
        }
        let kept = forks
            .iter()
            .any(|&f| f == oid || repo.graph_descendant_of(f, oid).unwrap_or(false));
        if !kept {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the session worktree shows an interrupted merge or checkout: merge state, an
/// unreadable or missing index (every commit and checkout writes one), or (while forks exist,
/// so no agent works in it) changes to its files.
fn interrupted(repo: &Repository, path: &Path, forks: bool) -> bool {
    let git_dir = repo.path();
    if git_dir.join("MERGE_HEAD").exists()
        || !git_dir.join("index").exists()
        || repo.index().is_err()
    {
        return true;
    }
    forks && crate::fork::dirty_files(repo, path).map_or(true, |f| !f.is_empty())
}

/// Puts the session worktree (its branch, index and files) at `target`, with no merge state
/// and no untracked files left.
fn reset_worktree(repo: &Repository, path: &Path, target: Oid) -> Result<()> {
    repo.cleanup_state().ctx("clear the merge state", path)?;
    if repo.index().is_err() {
        let index = repo.path().join("index");
        fs::remove_file(&index).map_err(io_error("remove", &index))?;
    }
    let commit = repo
        .find_commit(target)
        .ctx("find the commit to reset to", path)?;
    repo.reset(commit.as_object(), ResetType::Hard, None)
        .ctx(format!("reset the session worktree to {target}"), path)?;
    // A hard reset keeps untracked files: those of a half-done checkout go too.
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repo.checkout_head(Some(&mut checkout))
        .ctx("remove untracked files", path)?;
    crate::scan::forget(repo);
    tracing::info!(worktree = %path.display(), sha = %target, "reset the session worktree");
    Ok(())
}
