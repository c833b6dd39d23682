//! Two parallel writers change the same line of the same file: each `on_conflict` mode, with the
//! real `git` CLI checking the branches, the worktrees and the user's untouched checkout.
//! `agent`: the merge is committed with markers and the next agent finds the conflict in
//! `metadata.conflicts`; `pause`: the session pauses mid-merge until a human resolves it;
//! `fail`: the merge is aborted, the session fails, and the fork's work is kept on its branch.

use serde_json::Value;

use super::gitrepo::GitProject;

const BASE: &str = "line 1\nline 2\nline 3\n";
const LEFT: &str = "line 1\nline 2 from left\nline 3\n";
const RIGHT: &str = "line 1\nline 2 from right\nline 3\n";
const RESOLVED: &str = "line 1\nline 2 from left and right\nline 3\n";

fn pipeline(mode: &str) -> String {
    format!(
        r#"name: conflict
defaults: {{ provider: scripted, model: worker }}
providers:
  scripted: {{ kind: scripted, responses: ../fixtures/conflict.responses.yaml, latency_ms: 0 }}
workspace:
  repos:
    app: {{ path: ., write: true, on_conflict: {mode} }}
agents:
  left:
    role: {{ text: You edit files. }}
    task: {{ text: Change line 2 of src/shared.txt. }}
    tools: [app:write-file]
  right:
    role: {{ text: You edit files. }}
    task: {{ text: Change line 2 of src/shared.txt. }}
    tools: [app:write-file]
  next:
    role: {{ text: You finish the work of the others. }}
    task:
      text: |
        {{% set meta = state.metadata %}}{{% if meta.conflicts is defined %}}{{% for c in meta.conflicts %}}{{% for f in c.files %}}
        Resolve the conflict in {{{{ f.path }}}}.{{% endfor %}}{{% endfor %}}{{% endif %}}
    tools: [app:write-file, app:read-file]
graph:
  - {{ from: START, to: [left, right] }}
  - {{ from: [left, right], to: next }}
  - {{ from: next, to: END }}
"#
    )
}

fn write_call(content: &str) -> String {
    let content = serde_json::to_string(content).unwrap();
    format!(
        r#"      - turns:
          - tool_calls:
              - {{ tool: "app:write-file", args: {{ path: src/shared.txt, content: {content} }} }}
          - text: edited
"#
    )
}

/// `next` writes the resolution itself when `resolves`.
fn responses(resolves: bool) -> String {
    let next = if resolves {
        write_call(RESOLVED)
    } else {
        "      - turns:\n          - text: nothing to do\n".to_owned()
    };
    format!(
        "agents:\n  left:\n    runs:\n{}  right:\n    runs:\n{}  next:\n    runs:\n{next}",
        write_call(LEFT),
        write_call(RIGHT)
    )
}

fn project(mode: &str, next_resolves: bool) -> GitProject {
    GitProject::new(&[
        ("pipelines/conflict.yaml", &pipeline(mode)),
        (
            "fixtures/conflict.responses.yaml",
            &responses(next_resolves),
        ),
    ])
}

fn show(p: &GitProject, rev: &str, path: &str) -> String {
    p.git(&["show", &format!("{rev}:{path}")])
}

#[test]
fn on_conflict_agent_commits_the_markers_and_hands_the_conflict_to_the_next_agent() {
    let p = project("agent", true);
    let run = p.orchestra(&["run", "pipelines/conflict.yaml", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("warning: merge conflict in repository `app`"),
        "{}",
        run.stderr
    );
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "completed");
    let id = out["session"].as_str().unwrap();
    let (branch, worktree) = p.branch_and_worktree(id);

    // What the next agent found in state: the conflicted file, with all its versions.
    let conflicts = out["state"]["metadata"]["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(c["repo"], "app");
    assert_eq!(c["agent"], "right");
    assert_eq!(c["step"], 1);
    assert_eq!(c["branch"], format!("{branch}+right-1"));
    let f = &c["files"][0];
    assert_eq!(f["path"], "src/shared.txt");
    assert_eq!(f["base"], BASE);
    assert_eq!(f["ours"], LEFT);
    assert_eq!(f["theirs"], RIGHT);
    let marked = f["with_markers"].as_str().unwrap();
    assert!(marked.contains(&format!("<<<<<<< {branch}\nline 2 from left\n=======\nline 2 from right\n>>>>>>> {branch}+right-1\n")), "{marked}");

    // The merge commit holds the markers and names the file; the next agent's commit resolves.
    let merge = p.git(&["log", "--merges", "--format=%B", &format!("main..{branch}")]);
    assert!(merge.contains(", with conflicts"), "{merge}");
    assert!(
        merge.contains("Orchestra-Conflict: src/shared.txt"),
        "{merge}"
    );
    assert!(show(&p, &format!("{branch}^"), "src/shared.txt").contains("<<<<<<<"));
    assert_eq!(show(&p, &branch, "src/shared.txt"), RESOLVED);
    let agents = p.git(&[
        "log",
        "--no-merges",
        "--format=%(trailers:key=Orchestra-Agent,valueonly,separator=)",
        &format!("main..{branch}"),
    ]);
    let mut agents: Vec<&str> = agents.lines().collect();
    assert_eq!(agents[0], "next", "the next agent's commit is the tip");
    agents.sort_unstable();
    assert_eq!(agents, ["left", "next", "right"]);
    assert_eq!(p.git_in(&worktree, &["status", "--porcelain"]), "");
    assert_eq!(p.worktrees().len(), 2, "the forks' worktrees are gone");

    // The conflicts are part of checkpoint 1: restoring it (a replay) gives them back exactly.
    let fork = p.json(&["replay", id, "--checkpoint", "1", "--no-run"], 0);
    assert_eq!(fork["state"]["metadata"], out["state"]["metadata"]);
    assert_eq!(fork["repo_shas"]["app"], p.rev(&format!("{branch}^")));
    let fork = p.json(&["replay", id, "--checkpoint", "2", "--no-run"], 0);
    assert_eq!(fork["state"], out["state"]);

    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn on_conflict_pause_waits_for_a_human_and_resume_concludes_the_merge() {
    let p = project("pause", false);
    let run = p.orchestra(&["run", "pipelines/conflict.yaml", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "paused", "{out}");
    let error = out["error"].as_str().unwrap();
    assert!(
        error.contains("merge conflict in repository `app`: the changes of `right` (step 1) conflict with the session branch in `src/shared.txt`"),
        "{error}"
    );
    let id = out["session"].as_str().unwrap().to_owned();
    let (branch, worktree) = p.branch_and_worktree(&id);
    assert!(error.contains(&worktree.display().to_string()), "{error}");
    assert_eq!(p.status(&id)["status"], "paused");
    // No checkpoint for the step yet; the session worktree is mid-merge, markers in the file.
    assert_eq!(p.status(&id)["checkpoints"].as_array().unwrap().len(), 1);
    let text = std::fs::read_to_string(worktree.join("src/shared.txt")).unwrap();
    assert!(text.contains("<<<<<<<"), "{text}");
    assert!(p.git_ok(&[
        "-C",
        &worktree.display().to_string(),
        "rev-parse",
        "-q",
        "--verify",
        "MERGE_HEAD"
    ]));

    // Resuming before the conflict is resolved pauses again, saying what is left.
    let again = p.json(&["resume", &id], 0);
    assert_eq!(again["status"], "paused", "{again}");
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .contains("is not resolved yet: `src/shared.txt`"),
        "{again}"
    );

    // The human resolves the file (without committing) and resumes: the merge is concluded,
    // the step is checkpointed, and the next agent runs.
    std::fs::write(worktree.join("src/shared.txt"), RESOLVED).unwrap();
    let done = p.json(&["resume", &id], 0);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(show(&p, &branch, "src/shared.txt"), RESOLVED);
    let merge = p.git(&["log", "--merges", "--format=%s", &format!("main..{branch}")]);
    assert_eq!(
        merge.trim(),
        format!("merge right (step 1) into session {id}, conflicts resolved by hand")
    );
    let steps: Vec<u64> = p.status(&id)["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1, 2]);
    assert!(done["state"]["metadata"].get("conflicts").is_none());
    assert_eq!(p.git_in(&worktree, &["status", "--porcelain"]), "");
    assert_eq!(p.worktrees().len(), 2);

    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn on_conflict_fail_aborts_the_merge_and_keeps_the_forks_work() {
    let p = project("fail", false);
    let run = p.orchestra(&["run", "pipelines/conflict.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("merge conflict in repository `app`")
            && run.stdout.contains("on_conflict: fail"),
        "{}",
        run.stdout
    );
    let id = p.json(&["status"], 0)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(p.status(&id)["status"], "failed");
    let (branch, worktree) = p.branch_and_worktree(&id);

    // The session worktree is back at its tip (left's work, merged first), clean, not mid-merge;
    // right's work is not lost: its fork branch holds it.
    assert_eq!(p.git_in(&worktree, &["status", "--porcelain"]), "");
    assert!(!p.git_ok(&[
        "-C",
        &worktree.display().to_string(),
        "rev-parse",
        "-q",
        "--verify",
        "MERGE_HEAD"
    ]));
    assert_eq!(show(&p, &branch, "src/shared.txt"), LEFT);
    let fork = format!("{branch}+right-1");
    assert_eq!(show(&p, &fork, "src/shared.txt"), RIGHT);
    assert_eq!(p.worktrees().len(), 3, "the session's and right's fork's");
    p.assert_fsck_clean();

    // Cleanup removes the failed session's branches and worktrees, the fork's included.
    let clean = p.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(
        clean.stdout.contains(&format!("branch   {fork} (at ")),
        "{}",
        clean.stdout
    );
    assert_eq!(p.worktrees().len(), 1);
    assert_eq!(p.git(&["for-each-ref", "refs/heads/orchestra/"]), "");
    p.assert_fsck_clean();
    p.assert_user_untouched();
}
