//! The session branches' commits, each with the step of its `Orchestra-Step:` trailer and its
//! diffstat (`orchestra_git::branch_commits`), and the patches of a step's commits.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use orchestra_store::SessionRecord;

use super::model::{Commit, FileStat, Repo};
use crate::{Engine, RuntimeError};

/// A commit of a session branch with its patch against its first parent.
#[derive(Debug, Serialize)]
pub struct CommitDiff {
    /// The commit, with its diffstat.
    #[serde(flatten)]
    pub commit: Commit,
    /// The unified diff, each line prefixed with `+`, `-` or a space (`None`: the commit is
    /// not in the repository any more).
    pub patch: Option<String>,
    /// Whether `patch` was cut at the size asked for.
    pub patch_cut: bool,
    /// The size of the whole patch in bytes (when cut: at least the size shown).
    pub patch_bytes: usize,
}

/// The commits that step `step` of session `key` (an id or a unique prefix) made on its
/// session branches, each with its patch cut at `max_bytes`. Empty for a session without git,
/// a step that committed nothing, or branches removed by `orchestra cleanup`.
///
/// # Errors
/// When the session is unknown or the store fails.
pub async fn step_diffs(
    engine: &Engine,
    key: &str,
    step: u64,
    max_bytes: usize,
) -> Result<Vec<CommitDiff>, RuntimeError> {
    let key = key.to_owned();
    let rec: SessionRecord = engine.store().call(move |s| s.find_session(&key)).await?;
    let paths = repo_paths(&rec);
    let (_, commits) = git(&rec).await;
    let mine: Vec<Commit> = commits
        .into_iter()
        .filter(|(s, _)| *s == Some(step))
        .map(|(_, c)| c)
        .collect();
    let work = tokio::task::spawn_blocking(move || {
        mine.into_iter()
            .map(|commit| {
                let patch = paths
                    .iter()
                    .find(|(n, _)| *n == commit.repo)
                    .and_then(|(_, p)| {
                        orchestra_git::commit_patch(p, &commit.sha, max_bytes)
                            .inspect_err(
                                |e| tracing::warn!(error = %e, "cannot diff a session commit"),
                            )
                            .ok()
                            .flatten()
                    });
                CommitDiff {
                    patch_cut: patch.as_ref().is_some_and(|p| p.cut),
                    patch_bytes: patch.as_ref().map_or(0, |p| p.bytes),
                    patch: patch.map(|p| p.text),
                    commit,
                }
            })
            .collect()
    });
    Ok(work.await.unwrap_or_default())
}

/// The session's repositories (`meta.git`) by name, with their paths.
fn repo_paths(rec: &SessionRecord) -> Vec<(String, PathBuf)> {
    let Some(Value::Object(git)) = rec.meta.get("git") else {
        return Vec::new();
    };
    git.iter()
        .map(|(name, g)| {
            let path = g.get("repo_path").and_then(Value::as_str).unwrap_or("");
            (name.clone(), PathBuf::from(path))
        })
        .collect()
}

/// The session's repositories (`meta.git`) and their branches' commits, each with the step of
/// its `Orchestra-Step:` trailer. A repository that cannot be read is reported as removed.
pub(crate) async fn git(rec: &SessionRecord) -> (Vec<Repo>, Vec<(Option<u64>, Commit)>) {
    let Some(Value::Object(git)) = rec.meta.get("git").cloned() else {
        return (Vec::new(), Vec::new());
    };
    let work = tokio::task::spawn_blocking(move || {
        let mut repos = Vec::new();
        let mut commits = Vec::new();
        for (name, g) in git {
            let field = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let branch = field("branch");
            let listed = orchestra_git::branch_commits(
                Path::new(&field("repo_path")),
                &branch,
                &field("base"),
            );
            let (found, removed) = match listed {
                Ok(Some(list)) => (list, false),
                Ok(None) => (Vec::new(), true),
                Err(e) => {
                    tracing::warn!(repo = name, error = %e, "cannot list the session branch's commits");
                    (Vec::new(), true)
                }
            };
            for c in found {
                commits.push((
                    c.step,
                    Commit {
                        repo: name.clone(),
                        sha: c.sha,
                        subject: c.subject,
                        agent: c.agent,
                        files_changed: c.files_changed,
                        insertions: c.insertions,
                        deletions: c.deletions,
                        files: c
                            .files
                            .into_iter()
                            .map(|(path, insertions, deletions)| FileStat {
                                path,
                                insertions,
                                deletions,
                            })
                            .collect(),
                    },
                ));
            }
            repos.push(Repo {
                name,
                branch,
                removed,
            });
        }
        (repos, commits)
    });
    work.await.unwrap_or_default()
}
