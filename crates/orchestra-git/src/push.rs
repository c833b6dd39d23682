//! Pushing session branches to a repository's remote, and deleting them there, with
//! force-with-lease semantics: a remote branch is only changed when it still points where this
//! clone last saw it (its remote-tracking branch, or nowhere), so a branch that another process
//! advanced is never overwritten. The expected commit is checked in libgit2's push negotiation
//! and sent to the server as the update's old value, which the server checks again under its
//! ref lock.

use std::cell::RefCell;
use std::path::Path;

use git2::{Direction, Oid, PushOptions, Remote, Repository};

use crate::cleanup::Removed;
use crate::error::{Context as _, GitError, Result};
use crate::remote::{ORIGIN, callbacks, remote_error, shown_url, sync_clone, tracking_ref};

/// One change of a remote branch: set it to `new` (None: delete it), expecting it at `old`.
struct Update {
    branch: String,
    old: Option<Oid>,
    new: Option<Oid>,
}

/// Pushes `branch` of the clone at `clone` to its remote `url`, unless the remote already has
/// it. Fails with [`GitError::PushRejected`] when the remote branch is not where this clone last
/// saw it (another process advanced or deleted it), and with [`GitError::Remote`] /
/// [`GitError::PushFailed`] when the remote cannot be reached or refuses the update.
pub fn push_branch(clone: &Path, url: &str, branch: &str) -> Result<()> {
    let repo = Repository::open(clone).ctx("open repository", clone)?;
    let local = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .ctx(format!("look up branch {branch}"), clone)?;
    let tracking = tracking_ref(branch);
    let old = repo.refname_to_id(&tracking).ok();
    if old == Some(local) {
        return Ok(());
    }
    let update = Update {
        branch: branch.to_owned(),
        old,
        new: Some(local),
    };
    push(&repo, url, &[update])?;
    repo.reference(&tracking, local, true, "orchestra: pushed")
        .ctx(format!("record the push of {branch}"), clone)?;
    tracing::debug!(branch, sha = %local, url = %shown_url(url), "pushed");
    Ok(())
}

/// Deletes remote branches of the clone at `clone` that this clone knows (its remote-tracking
/// branches), each only if it is still where this clone last saw it. Unknown ones are skipped.
pub fn delete_remote_branches(clone: &Path, url: &str, branches: &[String]) -> Result<()> {
    let repo = Repository::open(clone).ctx("open repository", clone)?;
    let updates: Vec<Update> = branches
        .iter()
        .filter_map(|b| {
            let old = repo.refname_to_id(&tracking_ref(b)).ok()?;
            Some(Update {
                branch: b.clone(),
                old: Some(old),
                new: None,
            })
        })
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    push(&repo, url, &updates)?;
    for u in &updates {
        if let Ok(mut r) = repo.find_reference(&tracking_ref(&u.branch)) {
            r.delete()
                .ctx(format!("forget the remote {}", u.branch), clone)?;
        }
    }
    Ok(())
}

/// The remote's branches of one session: `branch` and its parallel writers' `branch+...`, with
/// their commits (a listing of the remote: nothing is fetched or changed).
pub fn remote_session_branches(url: &str, branch: &str) -> Result<Vec<(String, String)>> {
    let mut remote = Remote::create_detached(url).map_err(remote_error("read", url))?;
    let conn = remote
        .connect_auth(Direction::Fetch, Some(callbacks()), None)
        .map_err(remote_error("connect to", url))?;
    let heads = conn
        .list()
        .map_err(remote_error("list the branches of", url))?;
    let full = format!("refs/heads/{branch}");
    let mut out: Vec<(String, String)> = heads
        .iter()
        .filter_map(|h| {
            let rest = h.name().strip_prefix(&full)?;
            (rest.is_empty() || rest.starts_with('+'))
                .then(|| (format!("{branch}{rest}"), h.oid().to_string()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Removes a session's branches from the remote `url` (`cleanup`): lists them, and unless
/// `dry_run`, fetches into the clone at `clone` (cloning it on first use) and deletes each that
/// is still at the listed commit.
pub fn remove_remote_session(
    clone: &Path,
    url: &str,
    branch: &str,
    dry_run: bool,
) -> Result<Vec<Removed>> {
    let listed = remote_session_branches(url, branch)?;
    let removed: Vec<Removed> = listed
        .iter()
        .map(|(name, sha)| Removed::RemoteBranch {
            url: shown_url(url),
            name: name.clone(),
            sha: sha.clone(),
        })
        .collect();
    if dry_run || listed.is_empty() {
        return Ok(removed);
    }
    sync_clone(clone, url)?;
    let names: Vec<String> = listed.into_iter().map(|(n, _)| n).collect();
    delete_remote_branches(clone, url, &names)?;
    Ok(removed)
}

/// Pushes `updates` to `url` through the clone's `origin`, each only while the remote branch is
/// at its `old` commit.
fn push(repo: &Repository, url: &str, updates: &[Update]) -> Result<()> {
    let mut remote = repo
        .find_remote(ORIGIN)
        .map_err(remote_error("push to", url))?;
    let stale: RefCell<Option<GitError>> = RefCell::new(None);
    let refused: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let refspecs: Vec<String> = updates
        .iter()
        .map(|u| match u.new {
            Some(_) => format!("+refs/heads/{0}:refs/heads/{0}", u.branch),
            None => format!(":refs/heads/{}", u.branch),
        })
        .collect();
    let result = {
        let mut cb = callbacks();
        cb.push_negotiation(|proposed| {
            for p in proposed {
                let Some(u) = proposed_update(updates, p.dst_refname().ok()) else {
                    continue;
                };
                let expected = u.old.unwrap_or(Oid::ZERO_SHA1);
                if p.src() != expected {
                    *stale.borrow_mut() = Some(GitError::PushRejected {
                        branch: u.branch.clone(),
                        url: shown_url(url),
                        expected: u
                            .old
                            .map_or_else(|| "nowhere".to_owned(), |o| o.to_string()),
                        found: if p.src().is_zero() {
                            "nowhere".to_owned()
                        } else {
                            p.src().to_string()
                        },
                    });
                    return Err(git2::Error::from_str("the remote branch moved"));
                }
            }
            Ok(())
        });
        cb.push_update_reference(|refname, status| {
            if let Some(reason) = status {
                refused
                    .borrow_mut()
                    .push((refname.to_owned(), reason.to_owned()));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        remote.push(&specs, Some(&mut opts))
    };
    if let Some(e) = stale.into_inner() {
        return Err(e);
    }
    result.map_err(remote_error("push to", url))?;
    if let Some((refname, reason)) = refused.into_inner().into_iter().next() {
        return Err(GitError::PushFailed {
            refname,
            url: shown_url(url),
            reason,
        });
    }
    Ok(())
}

fn proposed_update<'u>(updates: &'u [Update], dst: Option<&str>) -> Option<&'u Update> {
    let branch = dst?.strip_prefix("refs/heads/")?;
    updates.iter().find(|u| u.branch == branch)
}
