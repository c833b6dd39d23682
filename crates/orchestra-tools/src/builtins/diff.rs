//! `get-git-diff`: a unified diff with git2, between two revisions or from a revision to the
//! working tree (tracked changes, staged or not, and new untracked files), with renames found.

use std::path::PathBuf;

use git2::{DiffFindOptions, DiffFormat, DiffOptions, Repository, Tree};

use super::GitDiffArgs;
use crate::confine::Confined;
use crate::error::ToolFailure;
use crate::registry::CallCtx;

/// Room kept under the output cap for the closing note.
const NOTE_ROOM: usize = 512;

pub(super) fn run(
    repo: &Confined,
    args: GitDiffArgs,
    ctx: &CallCtx,
) -> Result<String, ToolFailure> {
    let only = args.path.as_deref().map(|p| repo.lexical(p)).transpose()?;
    let git = Repository::discover(&repo.root).map_err(|e| {
        ToolFailure::new(format!(
            "repository `{}` is not a git repository ({})",
            repo.repo,
            e.message()
        ))
    })?;
    let workdir = git
        .workdir()
        .and_then(|w| std::fs::canonicalize(w).ok())
        .ok_or_else(|| {
            ToolFailure::new(format!("repository `{}` has no working tree", repo.repo))
        })?;
    // The root may be a subdirectory of the git repository: only show changes below it.
    let mut scope: PathBuf = repo
        .root
        .strip_prefix(&workdir)
        .map(PathBuf::from)
        .map_err(|_| {
            ToolFailure::new(format!(
                "repository `{}` is not inside its git working tree",
                repo.repo
            ))
        })?;
    if let Some(only) = only {
        scope.push(only);
    }

    let mut opts = DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true)
        .include_typechange(true)
        .max_size(i64::try_from(ctx.limits.max_file_bytes).unwrap_or(i64::MAX))
        .disable_pathspec_match(true);
    if !scope.as_os_str().is_empty() {
        opts.pathspec(&scope);
    }

    let (mut diff, from, to) = match (args.base.as_deref(), args.head.as_deref()) {
        (None, Some(_)) => {
            return Err(ToolFailure::new(
                "`head` needs a `base` to compare with (e.g. base: \"main\", head: \"HEAD\"); \
                 leave both out to see uncommitted changes",
            ));
        }
        (None, None) => {
            let head = match git.head() {
                Ok(r) => Some(r.peel_to_tree().map_err(git_failure("HEAD"))?),
                // A repository without commits: everything is new.
                Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
                Err(e) => return Err(git_failure("HEAD")(e)),
            };
            let diff = git
                .diff_tree_to_workdir_with_index(head.as_ref(), Some(&mut opts))
                .map_err(git_failure("the working tree"))?;
            (diff, "HEAD".to_owned(), "the working tree".to_owned())
        }
        (Some(base), None) => {
            let base_tree = tree(&git, base)?;
            let diff = git
                .diff_tree_to_workdir_with_index(Some(&base_tree), Some(&mut opts))
                .map_err(git_failure("the working tree"))?;
            (diff, format!("`{base}`"), "the working tree".to_owned())
        }
        (Some(base), Some(head)) => {
            let (base_tree, head_tree) = (tree(&git, base)?, tree(&git, head)?);
            let diff = git
                .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut opts))
                .map_err(git_failure("the revisions"))?;
            (diff, format!("`{base}`"), format!("`{head}`"))
        }
    };
    let mut find = DiffFindOptions::new();
    find.renames(true).for_untracked(true);
    diff.find_similar(Some(&mut find))
        .map_err(git_failure("renames"))?;

    let budget = ctx.limits.max_output.saturating_sub(NOTE_ROOM);
    let mut out: Vec<u8> = Vec::new();
    let mut truncated = false;
    let printed = diff.print(DiffFormat::Patch, |_delta, _hunk, line| {
        let origin = line.origin();
        let extra = usize::from(matches!(origin, '+' | '-' | ' '));
        if out.len() + extra + line.content().len() > budget {
            truncated = true;
            return false;
        }
        if extra == 1 {
            out.push(origin as u8);
        }
        out.extend_from_slice(line.content());
        true
    });
    if let Err(e) = printed
        && !truncated
    {
        return Err(git_failure("the diff")(e));
    }
    if out.is_empty() {
        let under = args
            .path
            .as_deref()
            .map(|p| format!(" under `{p}`"))
            .unwrap_or_default();
        return Ok(format!("no changes between {from} and {to}{under}"));
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if truncated {
        let stats = diff.stats().ok();
        let summary = stats.map_or_else(String::new, |s| {
            format!(
                "; the whole diff touches {} files (+{} -{})",
                s.files_changed(),
                s.insertions(),
                s.deletions()
            )
        });
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[diff truncated after {} bytes{summary}; give `path` to see one file or directory]",
            out.len()
        ));
    }
    Ok(text)
}

/// The tree a revision names (a commit, branch, tag, `HEAD~2`, ...).
fn tree<'r>(git: &'r Repository, rev: &str) -> Result<Tree<'r>, ToolFailure> {
    git.revparse_single(rev)
        .and_then(|object| object.peel_to_tree())
        .map_err(|e| ToolFailure::new(format!("unknown revision `{rev}`: {}", e.message())))
}

fn git_failure(what: &str) -> impl Fn(git2::Error) -> ToolFailure + '_ {
    move |e| ToolFailure::new(format!("cannot diff {what}: {}", e.message()))
}
