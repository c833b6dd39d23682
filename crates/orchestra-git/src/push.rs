//! Pushing session branches to a repository's remote, and deleting them there, with
//! force-with-lease semantics: a remote branch is only changed when it still points where this
//! clone last saw it (its remote-tracking branch, or nowhere), so a branch that another process
//! advanced is never overwritten. The pushes are `git push --force-with-lease=REF:EXPECTED`
//! (`--atomic` for several branches): git compares the remote's value with the expected one and
//! sends it as the update's old value, which the server checks again under its ref lock.

use std::path::Path;

use git2::{Oid, Repository};

use crate::cleanup::Removed;
use crate::error::{Context as _, GitError, Result};
use crate::net::Net;
use crate::remote::{ORIGIN, shown_url, sync_clone, tracking_ref};

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
    let heads = list_heads(&Net::new("list the branches of", url, None), url)?;
    let mut out: Vec<(String, String)> = heads
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(branch)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `git ls-remote --heads REMOTE`: each branch (without `refs/heads/`) and its commit.
fn list_heads(net: &Net<'_>, remote: &str) -> Result<Vec<(String, String)>> {
    let listed = net.run(["ls-remote", "--heads", "--", remote])?;
    Ok(listed
        .lines()
        .filter_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            let name = name.trim().strip_prefix("refs/heads/")?;
            Some((name.to_owned(), sha.trim().to_owned()))
        })
        .collect())
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
/// at its `old` commit (all or none of them, when there are several).
fn push(repo: &Repository, url: &str, updates: &[Update]) -> Result<()> {
    let clone = repo.workdir().unwrap_or_else(|| repo.path());
    let net = Net::new("push to", url, Some(clone));
    let mut args = vec!["push".to_owned(), "--porcelain".to_owned()];
    if updates.len() > 1 {
        args.push("--atomic".to_owned());
    }
    for u in updates {
        let expected = u.old.map(|o| o.to_string()).unwrap_or_default();
        args.push(format!(
            "--force-with-lease=refs/heads/{}:{expected}",
            u.branch
        ));
    }
    args.push(ORIGIN.to_owned());
    for u in updates {
        args.push(match u.new {
            Some(new) => format!("{new}:refs/heads/{}", u.branch),
            None => format!(":refs/heads/{}", u.branch),
        });
    }
    let out = net.output(&args)?;
    let rejected = rejections(&out.stdout.text());
    // A stale lease first: the branch another process moved (the others of an atomic push are
    // only refused with it).
    if let Some((u, _)) = rejected
        .iter()
        .filter_map(|(r, reason)| Some((proposed_update(updates, Some(r))?, reason)))
        .find(|(_, reason)| reason.as_str() == "stale info")
    {
        let found = list_heads(&Net::new("read", url, Some(clone)), ORIGIN)?
            .into_iter()
            .find(|(name, _)| *name == u.branch)
            .map_or_else(|| "nowhere".to_owned(), |(_, sha)| sha);
        return Err(GitError::PushRejected {
            branch: u.branch.clone(),
            url: shown_url(url),
            expected: u
                .old
                .map_or_else(|| "nowhere".to_owned(), |o| o.to_string()),
            found,
        });
    }
    if let Some((refname, reason)) = rejected
        .iter()
        .find(|(_, reason)| reason.as_str() != "atomic push failed")
        .or(rejected.first())
    {
        return Err(GitError::PushFailed {
            refname: refname.clone(),
            url: shown_url(url),
            reason: crate::remote::mask_secrets(reason, url),
        });
    }
    if !out.success() {
        return Err(net.failed(&out));
    }
    Ok(())
}

/// The refused refs of `git push --porcelain`'s report (`!<TAB>from:to<TAB>[rejected] (why)`):
/// the remote ref and why.
fn rejections(report: &str) -> Vec<(String, String)> {
    report
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            if parts.next()? != "!" {
                return None;
            }
            let to = parts.next()?.rsplit(':').next()?.to_owned();
            let summary = parts.next().unwrap_or_default().trim();
            let reason = match (summary.find('('), summary.rfind(')')) {
                (Some(a), Some(b)) if a < b => &summary[a + 1..b],
                _ => summary,
            };
            Some((to, reason.to_owned()))
        })
        .collect()
}

fn proposed_update<'u>(updates: &'u [Update], dst: Option<&str>) -> Option<&'u Update> {
    let branch = dst?.strip_prefix("refs/heads/")?;
    updates.iter().find(|u| u.branch == branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_from_the_porcelain_report() {
        let report = "To /srv/app.git\n\
            !\trefs/heads/a:refs/heads/a\t[rejected] (stale info)\n\
            !\t:refs/heads/b\t[remote rejected] (pre-receive hook declined)\n\
            =\trefs/heads/c:refs/heads/c\t[up to date]\n\
            Done\n";
        assert_eq!(
            rejections(report),
            [
                ("refs/heads/a".to_owned(), "stale info".to_owned()),
                (
                    "refs/heads/b".to_owned(),
                    "pre-receive hook declined".to_owned()
                ),
            ]
        );
    }
}
