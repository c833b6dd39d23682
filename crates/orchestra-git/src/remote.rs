//! Repositories that live in a git remote (a repo's `url:`): each process keeps its own clone,
//! fetches before a session starts, resumes or forks, and works in session worktrees of that
//! clone; the session branch is pushed after every commit (`push.rs`), so another process can
//! take the session over from the pushed commits.
//!
//! - [`start_remote_session`] / [`fork_remote_session`]: clone or fetch, then create the session
//!   branch at the remote's default branch (or a checkpoint's commit) and push it.
//! - [`reopen_remote_session`]: clone or fetch, then bring the session's branches (its own and its
//!   parallel writers') to what the remote holds, and check the checkpoint's commit is there.
//!
//! Clones, fetches and pushes run the `git` program (`net.rs`), so every kind of remote works
//! with the user's own credentials; no password in a URL is ever part of an error.

use std::fs;
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Context as _, GitError, Result, io_error};
use crate::names::{GitSettings, session_worktree_path};
use crate::net::Net;
use crate::push::push_branch;
use crate::session::{SessionRepo, restore_fork};

/// The name of the remote in Orchestra's clones.
pub(crate) const ORIGIN: &str = "origin";

/// Where a fetch puts the remote's branches.
pub(crate) fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/{ORIGIN}/{branch}")
}

/// `url` as it may be shown: the password of `scheme://user:password@host/...` is replaced by
/// `***`.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_owned(),
    }
}

/// `text` (git's messages) with every `scheme://user:password@` in it masked as by
/// [`shown_url`], and `url`'s password too wherever it still appears.
pub(crate) fn mask_secrets(text: &str, url: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "'\"<>".contains(c))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&shown_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    match password(url) {
        Some(pw) => out.replace(pw, "***"),
        None => out,
    }
}

/// The password of `scheme://user:password@host/...`.
fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// Makes sure `clone` is a clone of `url` — cloning it on first use (an empty or missing
/// directory), else checking that its `origin` is `url` — then fetches every branch of the
/// remote (remote-tracking branches of branches deleted there are pruned).
pub fn sync_clone(clone: &Path, url: &str) -> Result<()> {
    open_clone(clone, url)?;
    fetch(clone, url)
}

fn open_clone(clone: &Path, url: &str) -> Result<Repository> {
    let empty = match fs::read_dir(clone) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io_error("read directory", clone)(e)),
    };
    if empty {
        if let Some(parent) = clone.parent() {
            fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        // Cloned beside, then moved in place: a clone that failed or was stopped half-way
        // (the timeout, a kill) never leaves a directory that looks like one.
        let name = clone
            .file_name()
            .unwrap_or(clone.as_os_str())
            .to_string_lossy();
        let partial = clone.with_file_name(format!(".{name}.cloning"));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io_error("remove directory", &partial))?;
        }
        // `--no-local`: a path is cloned through git's transport, as any remote (a local copy
        // would bring unreachable objects too).
        let cloned = Net::new("clone", url, None).run([
            "clone".as_ref(),
            "--quiet".as_ref(),
            "--no-local".as_ref(),
            "--".as_ref(),
            url.as_ref(),
            partial.as_os_str(),
        ]);
        if let Err(e) = cloned {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
        fs::rename(&partial, clone).map_err(io_error("move the clone to", clone))?;
        let repo = Repository::open(clone).ctx("open repository", clone)?;
        tracing::info!(url = %shown_url(url), clone = %clone.display(), "cloned");
        return Ok(repo);
    }
    let conflict = |found: Option<String>| GitError::CloneConflict {
        path: clone.to_path_buf(),
        url: shown_url(url),
        found: found.map(|f| shown_url(&f)),
    };
    let repo = Repository::open(clone).map_err(|_| conflict(None))?;
    let origin = repo
        .find_remote(ORIGIN)
        .ok()
        .and_then(|r| r.url().ok().map(str::to_owned));
    match origin {
        Some(found) if same_remote(&found, url) => Ok(repo),
        Some(found) => Err(conflict(Some(found))),
        None => Err(conflict(Some(String::new()))),
    }
}

/// Whether two spellings name the same remote: a path and `file://` of it are the same, and
/// so are `[user@]host:path` and `ssh://[user@]host/path` (`ssh://[user@]host/~/path` for a
/// path relative to the home directory).
fn same_remote(a: &str, b: &str) -> bool {
    if a == b || scp_as_ssh(a) == scp_as_ssh(b) {
        return true;
    }
    let local = |u: &str| {
        let path = u.strip_prefix("file://").unwrap_or(u);
        (!path.contains("://")).then(|| Path::new(path).canonicalize().ok())?
    };
    matches!((local(a), local(b)), (Some(x), Some(y)) if x == y)
}

/// The scp-like `[user@]host:path` as an `ssh://` URL (anything else as it is). As git reads
/// it: a `:` before any `/`, not a Windows drive letter.
fn scp_as_ssh(url: &str) -> String {
    let colon = url.find(':');
    let slash = url.find('/');
    match colon {
        Some(c) if !url.contains("://") && c > 1 && slash.is_none_or(|s| c < s) => {
            let (host, path) = (&url[..c], &url[c + 1..]);
            match path.strip_prefix('/') {
                Some(abs) => format!("ssh://{host}/{abs}"),
                None => format!("ssh://{host}/~/{path}"),
            }
        }
        _ => url.to_owned(),
    }
}

/// Fetches every branch of the remote into `refs/remotes/origin/`.
fn fetch(clone: &Path, url: &str) -> Result<()> {
    let refspec = format!("+refs/heads/*:refs/remotes/{ORIGIN}/*");
    Net::new("fetch from", url, Some(clone)).run([
        "fetch",
        "--quiet",
        "--prune",
        ORIGIN,
        refspec.as_str(),
    ])?;
    Ok(())
}

/// The tip of the remote's default branch (the branch the clone checked out), after a fetch.
fn remote_default_tip(repo: &Repository, clone: &Path) -> Result<Oid> {
    let unborn = || GitError::UnbornHead {
        path: clone.to_path_buf(),
    };
    let head = repo.find_reference("HEAD").ctx("read HEAD", clone)?;
    let name = head.symbolic_target().ok().flatten().map(str::to_owned);
    if let Some(branch) = name.as_deref().and_then(|n| n.strip_prefix("refs/heads/"))
        && let Ok(tip) = repo.refname_to_id(&tracking_ref(branch))
    {
        return Ok(tip);
    }
    let commit = head.peel_to_commit().map_err(|_| unborn())?;
    Ok(commit.id())
}

/// Starts a session in a repository that lives at `url`: clones or fetches `clone`, creates the
/// session branch at the tip of the remote's default branch with its worktree, and pushes it.
pub fn start_remote_session(
    clone: &Path,
    url: &str,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    sync_clone(clone, url)?;
    let repo = Repository::open(clone).ctx("open repository", clone)?;
    let base = remote_default_tip(&repo, clone)?;
    let made = restore_fork(
        clone,
        repo_name,
        pipeline,
        session,
        &base.to_string(),
        settings,
    )?;
    push_branch(clone, url, &made.branch)?;
    Ok(made)
}

/// Forks a session (replay) in a repository that lives at `url`: clones or fetches `clone`,
/// creates the new session branch at `sha` with its worktree, and pushes it. A commit that is
/// not in the clone after the fetch was never pushed: [`GitError::CommitNotPushed`].
pub fn fork_remote_session(
    clone: &Path,
    url: &str,
    repo_name: &str,
    pipeline: &str,
    new_session: &str,
    sha: &str,
    settings: &GitSettings,
) -> Result<SessionRepo> {
    sync_clone(clone, url)?;
    require_commit(clone, url, sha)?;
    let made = restore_fork(clone, repo_name, pipeline, new_session, sha, settings)?;
    push_branch(clone, url, &made.branch)?;
    Ok(made)
}

/// Before a session in a repository at `url` is resumed (then `recover_session` and
/// `open_session` as for any repository): clones or fetches `clone`, and brings the session's
/// branches to the remote's — a branch missing here is created, one behind (or apart from) the
/// remote is moved to it (with the session worktree, when it exists), one ahead keeps its
/// commits (they are pushed next). `last` is the checkpoint's commit the resume starts from:
/// when it is neither here nor on the remote, [`GitError::CommitNotPushed`].
pub fn reopen_remote_session(
    clone: &Path,
    url: &str,
    repo_name: &str,
    pipeline: &str,
    session: &str,
    settings: &GitSettings,
    last: Option<&str>,
) -> Result<()> {
    sync_clone(clone, url)?;
    let repo = Repository::open(clone).ctx("open repository", clone)?;
    let branch = settings.session_branch(pipeline, session);
    let prefix = tracking_ref(&branch);
    let mut found = false;
    let refs = repo.references().ctx("list references", clone)?;
    let mut remote_tips = Vec::new();
    for r in refs.flatten() {
        let (Ok(name), Some(tip)) = (r.name(), r.target()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() || rest.starts_with('+') {
            remote_tips.push((format!("{branch}{rest}"), tip));
        }
    }
    for (name, tip) in remote_tips {
        found |= name == branch;
        let worktree = (name == branch)
            .then(|| session_worktree_path(&settings.worktrees_root(clone), session, repo_name));
        follow_remote(&repo, clone, &name, tip, worktree.as_deref())?;
    }
    if let Some(sha) = last {
        require_commit(clone, url, sha)?;
    }
    if !found && repo.find_branch(&branch, git2::BranchType::Local).is_err() {
        return Err(GitError::NotOnRemote {
            branch,
            url: shown_url(url),
        });
    }
    Ok(())
}

/// Moves the local `branch` to the remote's `tip` unless the local one is ahead of it.
fn follow_remote(
    repo: &Repository,
    clone: &Path,
    branch: &str,
    tip: Oid,
    worktree: Option<&Path>,
) -> Result<()> {
    let local = repo.refname_to_id(&format!("refs/heads/{branch}")).ok();
    if let Some(local) = local {
        let ahead = local == tip
            || repo
                .graph_descendant_of(local, tip)
                .ctx(format!("compare {branch} with the remote"), clone)?;
        if ahead {
            return Ok(());
        }
        let behind = repo.graph_descendant_of(tip, local).unwrap_or(false);
        if !behind {
            tracing::warn!(
                branch,
                local = %local,
                remote = %tip,
                "the local branch has commits the remote does not (never pushed); following the remote"
            );
        }
    }
    // A checked-out branch moves with its worktree's files and index.
    if let Some(dir) = worktree.filter(|d| d.exists())
        && let Ok(wt) = Repository::open(dir)
        && wt
            .head()
            .ok()
            .and_then(|h| h.name().ok().map(str::to_owned))
            .as_deref()
            == Some(&format!("refs/heads/{branch}"))
    {
        let target = wt.find_object(tip, None).ctx("find commit", dir)?;
        wt.reset(&target, git2::ResetType::Hard, None)
            .ctx(format!("move {branch} to the remote's {tip}"), dir)?;
        return Ok(());
    }
    repo.reference(
        &format!("refs/heads/{branch}"),
        tip,
        true,
        "orchestra: follow the remote",
    )
    .ctx(format!("move {branch} to the remote's {tip}"), clone)?;
    Ok(())
}

/// Fails with [`GitError::CommitNotPushed`] unless `sha` is a commit of the clone.
fn require_commit(clone: &Path, url: &str, sha: &str) -> Result<()> {
    let repo = Repository::open(clone).ctx("open repository", clone)?;
    let present = repo
        .revparse_single(sha)
        .and_then(|o| o.peel_to_commit())
        .is_ok();
    if present {
        return Ok(());
    }
    Err(GitError::CommitNotPushed {
        sha: sha.to_owned(),
        url: shown_url(url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            shown_url("https://bob:s3cret@example.com/a/b.git"),
            "https://bob:***@example.com/a/b.git"
        );
        assert_eq!(
            shown_url("https://bob@example.com/x"),
            "https://bob@example.com/x"
        );
        assert_eq!(shown_url("/srv/git/app.git"), "/srv/git/app.git");
        assert_eq!(shown_url("git@host:app.git"), "git@host:app.git");
    }

    #[test]
    fn passwords_in_gits_messages_are_masked() {
        let url = "https://bob:s3cret@example.com/a.git";
        assert_eq!(
            mask_secrets(
                "fatal: unable to access 'https://bob:s3cret@example.com/a.git/': 403\n\
                 remote: see http://eve:pw@mirror.example/x and s3cret",
                url
            ),
            "fatal: unable to access 'https://bob:***@example.com/a.git/': 403\n\
             remote: see http://eve:***@mirror.example/x and ***"
        );
        assert_eq!(
            mask_secrets("To git@host:app.git\n", "git@host:app.git"),
            "To git@host:app.git\n"
        );
    }

    #[test]
    fn a_path_and_its_file_url_are_one_remote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        assert!(same_remote(&path, &format!("file://{path}")));
        assert!(!same_remote(&path, "/nonexistent/elsewhere"));
        assert!(same_remote("ssh://h/x", "ssh://h/x"));
        assert!(same_remote("git@h:/srv/x.git", "ssh://git@h/srv/x.git"));
        assert!(same_remote("git@h:org/x.git", "ssh://git@h/~/org/x.git"));
        assert!(!same_remote("git@h:org/x.git", "ssh://git@h/org/x.git"));
        assert!(!same_remote("git@h:/x.git", "git@other:/x.git"));
    }
}
