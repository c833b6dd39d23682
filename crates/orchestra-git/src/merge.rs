//! Merging parallel writers' forks back into the session branch at a join: fast-forward when
//! possible, a 3-way merge commit otherwise, and conflicts handled per the repo's `on_conflict`.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{MergeOptions, Oid, Repository};

use crate::commit::{commit_staged_all, merge_heads, open_session_worktree};
use crate::conflict::{Conflict, abort, conflict_files, unresolved};
use crate::error::{Context as _, GitError, Result};
use crate::fork::{AgentWorktree, ensure_clean, remove_fork_in};
use crate::names::GitSettings;
use crate::session::SessionRepo;
use crate::worktree::UserRepo;

/// What to do when a fork's changes conflict with the session branch (the repo's `on_conflict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictMode {
    /// Commit the merge with the conflict markers in the files, go on with the other forks, and
    /// report the conflicts so the next agent can resolve them.
    Agent,
    /// Stop at the conflict and leave the session worktree mid-merge (markers in the files,
    /// MERGE_HEAD set) for a human; calling [`merge_back`] again later finishes it.
    Pause,
    /// Stop at the conflict and abort that merge (the session worktree is back at its tip).
    Fail,
}

/// How one fork came into the session branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// The fork made no commits (or they were already in).
    UpToDate,
    /// The session branch moved forward to the fork's tip.
    FastForward,
    /// A clean 3-way merge commit.
    Merged,
    /// A merge commit with conflict markers committed (see [`ConflictMode::Agent`]).
    Conflicted,
    /// A paused conflict, resolved in the session worktree and committed by this call.
    Resolved,
    /// The fork's branch no longer exists (merged and removed by an earlier call); nothing to do.
    Gone,
}

/// A fork handled by [`merge_back`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedFork {
    /// The fork's agent.
    pub agent: String,
    /// The step it ran in.
    pub step: u64,
    /// How it was merged.
    pub kind: MergeKind,
    /// The session branch's tip afterwards.
    pub sha: String,
}

/// The result of [`merge_back`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Every fork is in the session branch; their worktrees and branches are removed.
    Merged {
        /// The session branch's tip.
        sha: String,
        /// Each fork, in the order given.
        merged: Vec<MergedFork>,
        /// Conflicts committed with markers ([`ConflictMode::Agent`] only; empty otherwise).
        conflicts: Vec<Conflict>,
    },
    /// A fork conflicted and the mode was [`ConflictMode::Pause`] or [`ConflictMode::Fail`].
    Stopped {
        /// The session branch's tip (the forks merged before the conflict are in it).
        sha: String,
        /// The forks merged before the conflict.
        merged: Vec<MergedFork>,
        /// The conflict.
        conflict: Conflict,
        /// The forks not merged yet, the conflicting one first; their worktrees are kept. Pass
        /// them to [`merge_back`] again to continue.
        remaining: Vec<AgentWorktree>,
    },
}

/// Merges each fork's branch into the session branch, in the order given (declaration order),
/// in the session worktree. A fork merged cleanly (or with committed markers) loses its worktree
/// and branch. Before merging, a merge left paused by an earlier call is concluded: it must be
/// resolved (no conflict markers left), and is committed unless the human committed it already.
///
/// Fails with [`GitError::DirtyWorktree`] when the session worktree or a fork's worktree has
/// uncommitted changes (commit them with [`commit_all`](crate::commit_all) first).
pub fn merge_back(
    session: &SessionRepo,
    forks: &[AgentWorktree],
    mode: ConflictMode,
    settings: &GitSettings,
) -> Result<MergeOutcome> {
    let path = session.worktree.as_path();
    let repo = open_session_worktree(path, settings)?;
    let user = UserRepo::open(&session.repo_path)?;
    let resolved = conclude_paused(&repo, path, session, forks, settings)?;
    ensure_clean(&repo, path)?;
    for fork in forks {
        if fork.path.exists() {
            let fork_repo = Repository::open(&fork.path).ctx("open fork worktree", &fork.path)?;
            ensure_clean(&fork_repo, &fork.path)?;
        }
    }

    let mut merged = Vec::new();
    let mut conflicts = Vec::new();
    for (i, fork) in forks.iter().enumerate() {
        let reference = match repo.find_reference(&format!("refs/heads/{}", fork.branch)) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                tracing::warn!(
                    branch = fork.branch,
                    "fork branch is gone; assuming it was merged before"
                );
                merged.push(done(fork, MergeKind::Gone, head_id(&repo, path)?));
                continue;
            }
            Err(e) => return Err(e).ctx(format!("look up branch {}", fork.branch), path),
        };
        let theirs = repo
            .reference_to_annotated_commit(&reference)
            .ctx(format!("resolve {}", fork.branch), path)?;
        let (analysis, _) = repo
            .merge_analysis(&[&theirs])
            .ctx("analyse the merge", path)?;
        let kind = if analysis.is_up_to_date() {
            if resolved == Some(theirs.id()) {
                MergeKind::Resolved
            } else {
                MergeKind::UpToDate
            }
        } else if analysis.is_fast_forward() {
            fast_forward(&repo, path, theirs.id(), &fork.branch)?;
            MergeKind::FastForward
        } else {
            let mut checkout = CheckoutBuilder::new();
            checkout
                .safe()
                .allow_conflicts(true)
                .our_label(&session.branch)
                .their_label(&fork.branch);
            repo.merge(
                &[&theirs],
                Some(&mut MergeOptions::new()),
                Some(&mut checkout),
            )
            .ctx(format!("merge {}", fork.branch), path)?;
            let index = repo.index().ctx("read the index", path)?;
            if !index.has_conflicts() {
                commit_staged_all(
                    &repo,
                    path,
                    &merge_message(session, fork, &[], false),
                    settings,
                )?;
                MergeKind::Merged
            } else {
                let conflict = Conflict {
                    agent: fork.agent.clone(),
                    step: fork.step,
                    branch: fork.branch.clone(),
                    files: conflict_files(&repo, path, &index)?,
                };
                tracing::info!(branch = fork.branch, files = ?conflict.paths(), ?mode, "merge conflict");
                match mode {
                    ConflictMode::Agent => {
                        let message = merge_message(session, fork, &conflict.paths(), false);
                        commit_staged_all(&repo, path, &message, settings)?;
                        conflicts.push(conflict);
                        MergeKind::Conflicted
                    }
                    ConflictMode::Pause | ConflictMode::Fail => {
                        if mode == ConflictMode::Fail {
                            abort(&repo, path)?;
                        }
                        return Ok(MergeOutcome::Stopped {
                            sha: head_id(&repo, path)?,
                            merged,
                            conflict,
                            remaining: forks[i..].to_vec(),
                        });
                    }
                }
            }
        };
        remove_fork_in(&user, session, fork, settings)?;
        merged.push(done(fork, kind, head_id(&repo, path)?));
    }
    Ok(MergeOutcome::Merged {
        sha: head_id(&repo, path)?,
        merged,
        conflicts,
    })
}

/// Abandons a merge left paused in the session worktree: clears the merge state and puts the
/// worktree back at the session branch's tip. The forks stay, so they can be merged again.
pub fn abort_merge(session: &SessionRepo, settings: &GitSettings) -> Result<()> {
    let path = session.worktree.as_path();
    let repo = open_session_worktree(path, settings)?;
    abort(&repo, path)
}

/// Finishes a merge a human resolved after a pause; returns the merged fork's commit id.
fn conclude_paused(
    repo: &Repository,
    path: &Path,
    session: &SessionRepo,
    forks: &[AgentWorktree],
    settings: &GitSettings,
) -> Result<Option<Oid>> {
    let heads = merge_heads(repo, path)?;
    let Some(&merging) = heads.first() else {
        return Ok(None);
    };
    let left = unresolved(repo, path)?;
    if !left.is_empty() {
        return Err(GitError::UnresolvedConflicts {
            path: path.to_path_buf(),
            files: left,
        });
    }
    let fork = forks.iter().find(|f| {
        repo.find_reference(&format!("refs/heads/{}", f.branch))
            .ok()
            .and_then(|r| r.target())
            == Some(merging)
    });
    let message = match fork {
        Some(fork) => merge_message(session, fork, &[], true),
        None => format!(
            "merge {merging} into session {}, resolved by hand\n",
            session.session
        ),
    };
    commit_staged_all(repo, path, &message, settings)?;
    tracing::info!(
        session = session.session,
        "concluded a merge resolved by hand"
    );
    Ok(Some(merging))
}

/// Moves the session branch to `target` and checks it out (the branch is an ancestor of it).
fn fast_forward(repo: &Repository, path: &Path, target: Oid, from: &str) -> Result<()> {
    let commit = repo.find_commit(target).ctx("find the fork's tip", path)?;
    let mut checkout = CheckoutBuilder::new();
    checkout.safe();
    repo.checkout_tree(commit.as_object(), Some(&mut checkout))
        .ctx(format!("check out {from}"), path)?;
    let head = repo.head().ctx("read HEAD", path)?;
    let head = head
        .resolve()
        .ctx("resolve HEAD", path)?
        .set_target(target, &format!("orchestra: fast-forward to {from}"))
        .ctx("move the session branch", path)?;
    drop(head);
    Ok(())
}

fn merge_message(
    session: &SessionRepo,
    fork: &AgentWorktree,
    conflicts: &[&str],
    by_hand: bool,
) -> String {
    let mut msg = format!(
        "merge {} (step {}) into session {}",
        fork.agent, fork.step, session.session
    );
    if by_hand {
        msg.push_str(", conflicts resolved by hand");
    } else if !conflicts.is_empty() {
        msg.push_str(", with conflicts");
    }
    msg.push_str(&format!(
        "\n\nOrchestra-Session: {}\nOrchestra-Agent: {}\nOrchestra-Step: {}\nOrchestra-Merge: {}\n",
        session.session, fork.agent, fork.step, fork.branch
    ));
    for path in conflicts {
        msg.push_str(&format!("Orchestra-Conflict: {path}\n"));
    }
    msg
}

fn head_id(repo: &Repository, path: &Path) -> Result<String> {
    let commit = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .ctx("resolve HEAD", path)?;
    Ok(commit.id().to_string())
}

fn done(fork: &AgentWorktree, kind: MergeKind, sha: String) -> MergedFork {
    MergedFork {
        agent: fork.agent.clone(),
        step: fork.step,
        kind,
        sha,
    }
}
