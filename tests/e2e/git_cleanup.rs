//! `orchestra cleanup` with the real `git` CLI: a dry run lists and removes nothing; the age
//! threshold is honoured; paused and running sessions are never touched (a killed run's session
//! is); branches outside the prefix, and prefixed branches of sessions the database does not
//! know, stay; stale worktree records are pruned; the user's checkout is untouched.

use std::path::Path;
use std::time::Duration;

use orchestra_store::{Clock, SessionStatus, Store as _, system_now_ms};
use orchestra_store_sqlite::SqliteStore;

use super::common::wait_until;
use super::gitrepo::GitProject;

const PIPELINE: &str = "pipelines/parallel-edit.yaml";

fn run(p: &GitProject, pipeline: &str) -> String {
    let out = p.json(&["run", pipeline], 0);
    assert_eq!(out["status"], "completed", "{out}");
    out["session"].as_str().unwrap().to_owned()
}

fn branch_exists(p: &GitProject, branch: &str) -> bool {
    p.git_ok(&[
        "rev-parse",
        "--verify",
        "-q",
        &format!("refs/heads/{branch}"),
    ])
}

fn listed(p: &GitProject, dir: &Path) -> bool {
    p.worktrees().iter().any(|(path, _)| path == dir)
}

/// Makes session `id` look idle for `ago`: its status is set again (unchanged) through a store
/// whose clock reads `ago` earlier, which is what moves `updated_at`.
fn age(p: &GitProject, id: &str, ago: Duration) {
    let then = system_now_ms() - u64::try_from(ago.as_millis()).unwrap();
    let mut store = SqliteStore::open(p.root().join(".orchestra/orchestra.db"))
        .unwrap()
        .with_clock(Clock::from_fn(move || then));
    let status = store.session(id).unwrap().unwrap().status;
    assert_eq!(status, SessionStatus::Completed);
    store.set_status(id, status, None).unwrap();
}

#[test]
fn cleanup_removes_finished_sessions_past_the_threshold_and_nothing_else() {
    let mut p = GitProject::new(&[]);
    // Branches that are not Orchestra's, or are of a session this database does not know.
    let head = p.rev("HEAD");
    for b in [
        "feature/x",
        "orchestrax/parallel-edit/lookalike",
        "orchestra-old",
        "orchestra/parallel-edit/unknown-session",
    ] {
        p.git(&["branch", b, &head]);
    }
    p.resnapshot();
    let old = run(&p, PIPELINE);
    let paused = p.json(&["replay", &old, "--checkpoint", "1", "--no-run"], 0)["session"]
        .as_str()
        .unwrap()
        .to_owned();
    age(&p, &old, Duration::from_secs(2 * 3600));
    let recent = run(&p, PIPELINE);

    // The old session has been idle for two hours, the recent one for seconds: only the session
    // idle for longer than the threshold goes.
    let dry_threshold = p.orchestra(&["cleanup", "--dry-run", "--older-than", "1h"]);
    let out = p.orchestra(&["cleanup", "--older-than", "1h"]);
    for run in [&dry_threshold, &out] {
        assert_eq!(run.code, 0, "{}", run.transcript());
        assert!(
            run.stdout
                .contains(&format!("kept {recent} (parallel-edit): idle ")),
            "{}",
            run.stdout
        );
    }
    assert!(
        dry_threshold
            .stdout
            .contains(&format!("would remove session {old} ")),
        "{}",
        dry_threshold.stdout
    );
    assert!(
        out.stdout.contains(&format!("removed session {old} ")),
        "{}",
        out.stdout
    );
    let (old_branch, old_wt) = p.branch_and_worktree(&old);
    let (recent_branch, recent_wt) = p.branch_and_worktree(&recent);
    let (paused_branch, paused_wt) = p.branch_and_worktree(&paused);
    let foreign = p.git(&["for-each-ref", "--format=%(refname) %(objectname)"]);
    let foreign: Vec<&str> = foreign
        .lines()
        .filter(|l| !l.contains(&old) && !l.contains(&recent) && !l.contains(&paused))
        .collect();

    // A dry run lists what would go and removes nothing.
    let dry = p.orchestra(&["cleanup", "--dry-run", "--older-than", "0s"]);
    assert_eq!(dry.code, 0, "{}", dry.transcript());
    for line in [
        format!("would remove session {recent} (parallel-edit, completed, idle "),
        format!("  branch   {recent_branch} (at "),
        format!("  worktree {}", recent_wt.display()),
        format!("kept {paused} (parallel-edit): paused"),
        "dry run: 1 session(s), 1 worktree(s), 1 branch(es) would be removed; 1 kept".to_owned(),
    ] {
        assert!(dry.stdout.contains(&line), "{line}:\n{}", dry.stdout);
    }
    assert!(!dry.stdout.contains(&old), "{}", dry.stdout);
    assert!(branch_exists(&p, &recent_branch) && listed(&p, &recent_wt));

    // The old session's branch and worktree are gone; the others' are there.
    assert!(!branch_exists(&p, &old_branch));
    assert!(!listed(&p, &old_wt) && !old_wt.exists());
    assert!(
        !old_wt.parent().unwrap().exists(),
        "the session's worktree directory is gone"
    );
    assert!(branch_exists(&p, &recent_branch) && listed(&p, &recent_wt));
    assert!(branch_exists(&p, &paused_branch) && listed(&p, &paused_wt));
    let status = p.orchestra(&["status", &old]).stdout;
    assert!(
        status.contains(&format!(
            "branch    app: {old_branch} (removed by `orchestra cleanup`)"
        )),
        "{status}"
    );

    // A worktree directory deleted by hand leaves a stale record: cleanup prunes it.
    std::fs::remove_dir_all(&recent_wt).unwrap();
    let out = p.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains(&format!("removed session {recent} ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("kept {paused} (parallel-edit): paused")),
        "{}",
        out.stdout
    );
    assert!(!branch_exists(&p, &recent_branch));
    let wts = p.worktrees(); // also asserts that no record is stale
    assert_eq!(wts.len(), 2, "{wts:?}");
    assert!(listed(&p, &paused_wt));

    // The branches that were not the removed sessions' are all there, at the same commits.
    let now = p.git(&["for-each-ref", "--format=%(refname) %(objectname)"]);
    for line in &foreign {
        assert!(now.lines().any(|l| l == *line), "{line} is gone:\n{now}");
    }
    // Nothing left to do: a second cleanup removes nothing; `status` still lists every session.
    let again = p.orchestra(&["cleanup", "--older-than", "0s"]);
    assert!(
        again.stdout.contains("done: 0 session(s)"),
        "{}",
        again.stdout
    );
    assert_eq!(p.json(&["status"], 0).as_array().unwrap().len(), 3);

    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn cleanup_never_touches_a_running_session_and_takes_a_killed_ones() {
    let slow = std::fs::read_to_string(
        super::common::workspace_root().join("pipelines/parallel-edit.yaml"),
    )
    .unwrap()
    .replace("name: parallel-edit", "name: slow-edit")
    .replace("latency_ms: 0", "latency_ms: 600000");
    assert!(slow.contains("latency_ms: 600000"));
    let p = GitProject::new(&[("pipelines/slow-edit.yaml", &slow)]);
    let mut child = p.spawn(&["run", "pipelines/slow-edit.yaml"]);

    // Wait until the session runs in its worktrees (the coders wait for the model, ten minutes).
    let id = wait_until("the session running in its worktrees", || {
        let sessions = p.json(&["status"], 0);
        let s = sessions.as_array()?.first()?;
        (s["status"] == "running" && p.worktrees().len() == 4)
            .then(|| s["id"].as_str().unwrap().to_owned())
    });
    let (branch, wt) = p.branch_and_worktree(&id);
    let out = p.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout
            .contains(&format!("kept {id} (slow-edit): running (")),
        "{}",
        out.stdout
    );
    assert!(branch_exists(&p, &branch) && listed(&p, &wt));
    assert_eq!(
        p.worktrees().len(),
        4,
        "the session's and both forks' worktrees stay"
    );

    // Killed, the session is no longer running: cleanup takes it, forks included.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = p.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout
            .contains(&format!("removed session {id} (slow-edit, running, ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("done: 1 session(s), 3 worktree(s), 3 branch(es) removed"),
        "{}",
        out.stdout
    );
    assert_eq!(p.worktrees().len(), 1);
    assert_eq!(p.git(&["for-each-ref", "refs/heads/orchestra/"]), "");
    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn cleanup_without_a_database_or_with_a_bad_duration() {
    let p = GitProject::new(&[]);
    let out = p.orchestra(&["cleanup"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout
            .starts_with("nothing to clean up (no database at "),
        "{}",
        out.stdout
    );
    let out = p.orchestra(&["cleanup", "--older-than", "soon"]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(
        out.stderr
            .contains("invalid value 'soon' for '--older-than <DURATION>'"),
        "{}",
        out.stderr
    );
    p.assert_user_untouched();
}

#[test]
fn cleanup_uses_the_git_prefix_the_session_ran_with() {
    let project = std::fs::read_to_string(super::common::workspace_root().join("orchestra.yaml"))
        .unwrap()
        .replace("prefix: orchestra/", "prefix: ai/");
    assert!(project.contains("prefix: ai/"));
    let p = GitProject::new(&[("orchestra.yaml", &project)]);
    let id = run(&p, PIPELINE);
    let branch = format!("ai/parallel-edit/{id}");
    assert!(branch_exists(&p, &branch));
    let worktree = p.root().join(format!(".orchestra/worktrees/{id}/app"));
    assert!(listed(&p, &worktree));
    age(&p, &id, Duration::from_secs(2 * 3600));
    let out = p.orchestra(&["cleanup", "--older-than", "1h"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(!branch_exists(&p, &branch), "{}", out.transcript());
    assert!(!listed(&p, &worktree), "{}", out.transcript());
}
