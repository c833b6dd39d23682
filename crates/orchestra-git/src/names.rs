//! Settings and the naming scheme: session and fork branch names, worktree paths and worktree
//! record names, and parsing branch names back into (pipeline, session, fork).
//!
//! A session branch is `{prefix}{pipeline}/{session}`. A parallel writer's fork is
//! `{prefix}{pipeline}/{session}+{agent}-{step}`: a `/` would not do, because git cannot hold
//! both `a/b` and `a/b/c` as branches (a ref is a file, not a directory).

use std::path::{Path, PathBuf};

use crate::error::{GitError, Result};

/// Git settings of a project (mirrors `orchestra.yaml`'s `git:` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSettings {
    /// Prefix of every branch Orchestra creates (default `orchestra/`). Cleanup never touches a
    /// branch outside it.
    pub prefix: String,
    /// Where worktrees go, relative to the repository's working directory (default
    /// `.orchestra/worktrees`); an absolute path is used as it is.
    pub worktrees_dir: String,
    /// Author and committer name of auto-commits (default `orchestra`).
    pub author_name: String,
    /// Author and committer email of auto-commits (default `orchestra@localhost`).
    pub author_email: String,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            prefix: "orchestra/".to_owned(),
            worktrees_dir: ".orchestra/worktrees".to_owned(),
            author_name: "orchestra".to_owned(),
            author_email: "orchestra@localhost".to_owned(),
        }
    }
}

impl GitSettings {
    /// The session branch `{prefix}{pipeline}/{session}` (the pipeline name made ref-safe).
    pub fn session_branch(&self, pipeline: &str, session: &str) -> String {
        format!("{}{}/{}", self.prefix, component(pipeline), session)
    }

    /// The branch of a parallel writer: `{prefix}{pipeline}/{session}+{agent}-{step}`.
    pub fn fork_branch(&self, pipeline: &str, session: &str, agent: &str, step: u64) -> String {
        format!(
            "{}+{}-{step}",
            self.session_branch(pipeline, session),
            component(agent)
        )
    }

    /// The directory holding all worktrees of the repository whose working directory is `workdir`.
    pub fn worktrees_root(&self, workdir: &Path) -> PathBuf {
        workdir.join(&self.worktrees_dir)
    }
}

/// The directory of a session's worktree: `{root}/{session}/{repo_name}`.
pub(crate) fn session_worktree_path(root: &Path, session: &str, repo_name: &str) -> PathBuf {
    root.join(session).join(component(repo_name))
}

/// The directory of a fork's worktree: `{root}/{session}/{repo_name}+{agent}-{step}`.
pub(crate) fn fork_worktree_path(
    root: &Path,
    session: &str,
    repo_name: &str,
    agent: &str,
    step: u64,
) -> PathBuf {
    root.join(session).join(format!(
        "{}+{}-{step}",
        component(repo_name),
        component(agent)
    ))
}

/// The name of git's record of a worktree (`.git/worktrees/{name}`): `orchestra-{session}+{leaf}`
/// where `leaf` is the worktree directory's name. Session ids cannot contain `+`, so two
/// sessions never share a record name.
pub(crate) fn record_name(session: &str, leaf: &str) -> String {
    format!("{RECORD_PREFIX}{session}+{leaf}")
}

/// How the names of Orchestra's worktree records begin.
pub(crate) const RECORD_PREFIX: &str = "orchestra-";

/// Makes a name usable as one ref component and one directory name: letters, digits, `_` and
/// `-` are kept, anything else becomes `-`.
pub(crate) fn component(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() { "_".to_owned() } else { out }
}

/// Checks a session id: it is used verbatim in branch and directory names and must be found
/// again in them, so it is restricted rather than rewritten.
pub(crate) fn check_session(session: &str) -> Result<()> {
    let invalid = |reason| {
        Err(GitError::InvalidName {
            what: "session id",
            name: session.to_owned(),
            reason,
        })
    };
    if session.is_empty() {
        return invalid("it is empty");
    }
    if !session
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return invalid("only letters, digits, `_`, `-` and `.` are allowed");
    }
    if session.starts_with('.') || session.contains("..") || session.ends_with(".lock") {
        return invalid("it must not start with `.`, contain `..` or end with `.lock`");
    }
    Ok(())
}

/// Checks that a full branch name is a valid git ref under `refs/heads/`.
pub(crate) fn check_branch(branch: &str) -> Result<()> {
    if git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        Ok(())
    } else {
        Err(GitError::InvalidName {
            what: "branch name",
            name: branch.to_owned(),
            reason: "git does not accept it (check the `git.prefix` setting)",
        })
    }
}

/// A branch name taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedBranch {
    pub(crate) pipeline: String,
    pub(crate) session: String,
    pub(crate) fork: Option<(String, u64)>,
}

/// Parses `{prefix}{pipeline}/{session}[+{agent}-{step}]`; anything else is not ours (None).
pub(crate) fn parse_branch(prefix: &str, branch: &str) -> Option<ParsedBranch> {
    let rest = branch.strip_prefix(prefix)?;
    let (pipeline, tail) = rest.split_once('/')?;
    if pipeline.is_empty() || component(pipeline) != pipeline {
        return None;
    }
    let (session, fork) = match tail.split_once('+') {
        None => (tail, None),
        Some((session, fork)) => {
            let (agent, step) = fork.rsplit_once('-')?;
            if agent.is_empty() || component(agent) != agent {
                return None;
            }
            (session, Some((agent.to_owned(), step.parse().ok()?)))
        }
    };
    check_session(session).ok()?;
    Some(ParsedBranch {
        pipeline: pipeline.to_owned(),
        session: session.to_owned(),
        fork,
    })
}

/// Whether `path` lies inside `root` (after resolving both where they exist).
pub(crate) fn is_inside(path: &Path, root: &Path) -> bool {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    path != root && path.starts_with(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_the_scheme_and_parse_back() {
        let s = GitSettings::default();
        let session = s.session_branch("pr-review", "20250101-abc");
        assert_eq!(session, "orchestra/pr-review/20250101-abc");
        let fork = s.fork_branch("pr-review", "20250101-abc", "writer a", 3);
        assert_eq!(fork, "orchestra/pr-review/20250101-abc+writer-a-3");
        check_branch(&session).unwrap();
        check_branch(&fork).unwrap();

        let parsed = parse_branch("orchestra/", &session).unwrap();
        assert_eq!(parsed.pipeline, "pr-review");
        assert_eq!(parsed.session, "20250101-abc");
        assert_eq!(parsed.fork, None);
        let parsed = parse_branch("orchestra/", &fork).unwrap();
        assert_eq!(parsed.session, "20250101-abc");
        assert_eq!(parsed.fork, Some(("writer-a".to_owned(), 3)));
    }

    #[test]
    fn foreign_branches_do_not_parse() {
        for branch in [
            "main",
            "orchestra/no-session",
            "orchestra/p/s/deeper",
            "orchestra/p/s+agent-notanumber",
            "orchestra/p/.hidden",
            "other/p/s",
        ] {
            assert_eq!(parse_branch("orchestra/", branch), None, "{branch}");
        }
    }

    #[test]
    fn session_ids_are_checked_not_rewritten() {
        check_session("run-1.2_x").unwrap();
        for bad in ["", "a/b", "a+b", ".x", "a..b", "x.lock", "a b"] {
            assert!(check_session(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn components_are_made_ref_safe() {
        assert_eq!(component("Security Reviewer"), "Security-Reviewer");
        assert_eq!(component("v1.2"), "v1-2");
        assert_eq!(component(""), "_");
    }

    #[test]
    fn paths_nest_under_the_session() {
        let root = Path::new("/r/.orchestra/worktrees");
        assert_eq!(
            session_worktree_path(root, "s1", "app"),
            root.join("s1/app")
        );
        assert_eq!(
            fork_worktree_path(root, "s1", "app", "w", 2),
            root.join("s1/app+w-2")
        );
        assert_ne!(record_name("a-b", "c"), record_name("a", "b-c"));
        assert!(is_inside(&root.join("s1/app"), root));
        assert!(!is_inside(root, root));
        assert!(!is_inside(Path::new("/r/src"), root));
    }
}
