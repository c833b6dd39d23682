//! The session branches' commits, each with the step of its `Orchestra-Step:` trailer and its
//! diffstat (`orchestra_git::branch_commits`).

use std::path::Path;

use serde_json::Value;

use orchestra_store::SessionRecord;

use super::model::{Commit, FileStat, Repo};

/// The session's repositories (`meta.git`) and their branches' commits, each with the step of
/// its `Orchestra-Step:` trailer. A repository that cannot be read is reported as removed.
pub(super) async fn git(rec: &SessionRecord) -> (Vec<Repo>, Vec<(Option<u64>, Commit)>) {
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
