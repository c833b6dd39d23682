//! Pieces of the lines that end a drive and describe a session: tokens (a fork's own, with what
//! its parent spent beside them) and where a writable repository's work is.

use std::path::Path;

use orchestra_runtime::SessionBranch;
use orchestra_spec::display_path;

/// "N tokens", and for a fork what its parent spent before it, which N does not count (`status`
/// counts the same way).
pub(crate) fn tokens(own: u64, inherited: u64) -> String {
    if inherited == 0 {
        format!("{own} tokens")
    } else {
        format!("{own} tokens of its own (+{inherited} spent by its parent before the fork)")
    }
}

/// Where a writable repository's work is; for a completed session, how to merge it (with
/// `git -C PATH` when the repository is not the current directory); for a repository with
/// `url:`, the remote it was pushed to.
pub(crate) fn branch_line(b: &SessionBranch, completed: bool, cwd: &Path) -> String {
    if let Some(url) = &b.url {
        let what = if completed {
            "the work"
        } else {
            "the work so far"
        };
        return format!(
            "branch {} holds {what} on repository `{}`, pushed to {url}; get it with `git fetch {url} {}`",
            b.branch, b.repo, b.branch
        );
    }
    let here = match (b.repo_path.canonicalize(), cwd.canonicalize()) {
        (Ok(a), Ok(c)) => a == c,
        _ => false,
    };
    let git = if here {
        "git".to_owned()
    } else {
        format!("git -C {}", display_path(&b.repo_path, cwd).display())
    };
    if completed {
        format!(
            "branch {} holds the work on repository `{}`; merge it with `{git} merge {}`",
            b.branch, b.repo, b.branch
        )
    } else {
        format!(
            "branch {} holds the work so far on repository `{}` (see it with `{git} log {}`)",
            b.branch, b.repo, b.branch
        )
    }
}
