//! `pipelines/parallel-edit.yaml` in a real repository, checked with the `git` CLI: two coders
//! in parallel worktrees, their work merged at the join, one commit per writing node with
//! Orchestra's trailers, `git fsck` clean, `git worktree list` agreeing with the store, replay
//! from every checkpoint restoring the state and the trees, and the user's dirty checkout byte
//! for byte unchanged throughout.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::gitrepo::GitProject;

const PIPELINE: &str = "pipelines/parallel-edit.yaml";

/// Runs the pipeline; returns the session id and the final state.
fn run(p: &GitProject) -> (String, Value) {
    let out = p.json(&["run", PIPELINE], 0);
    assert_eq!(out["status"], "completed", "{out}");
    (
        out["session"].as_str().unwrap().to_owned(),
        out["state"].clone(),
    )
}

/// The Orchestra-Agent trailers of the non-merge commits in `range`, sorted.
fn agents_of_commits(p: &GitProject, range: &str) -> Vec<String> {
    let log = p.git(&[
        "log",
        "--reverse",
        "--no-merges",
        "--format=%(trailers:key=Orchestra-Agent,valueonly,separator=)",
        range,
    ]);
    let mut agents: Vec<String> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    // Parallel writers' commits have no order between them.
    agents.sort();
    agents
}

#[test]
fn parallel_writers_work_in_worktrees_and_are_merged_at_the_join() {
    let p = GitProject::new(&[]);
    let (id, state) = run(&p);
    assert_eq!(state["passed"], true);

    // One commit per writing node (the tester wrote nothing), each naming its agent, session
    // and step; the second fork came in through a merge commit.
    let (branch, worktree) = p.branch_and_worktree(&id);
    assert_eq!(branch, format!("orchestra/parallel-edit/{id}"));
    let range = format!("main..{branch}");
    assert_eq!(agents_of_commits(&p, &range), ["coder-a", "coder-b"]);
    let sessions = p.git(&[
        "log",
        "--format=%(trailers:key=Orchestra-Session,valueonly,separator=)|%(trailers:key=Orchestra-Step,valueonly,separator=)",
        &range,
    ]);
    for line in sessions.lines().filter(|l| !l.is_empty()) {
        assert_eq!(line, format!("{id}|1"));
    }
    let merges = p.git(&["log", "--merges", "--format=%s", &range]);
    assert_eq!(
        merges.trim(),
        format!("merge coder-b (step 1) into session {id}")
    );

    // The merged tree holds both coders' files, and its test passes.
    let files = p.git(&["ls-tree", "-r", "--name-only", &branch, "orchestra-demo"]);
    assert_eq!(
        files,
        "orchestra-demo/greet.sh\norchestra-demo/greet_test.sh\n"
    );
    let test = std::process::Command::new("sh")
        .arg("orchestra-demo/greet_test.sh")
        .current_dir(&worktree)
        .output()
        .unwrap();
    assert!(test.status.success());
    assert_eq!(String::from_utf8_lossy(&test.stdout), "ok: greet World\n");

    // Only the session worktree is left (the forks were removed after their merge), and git's
    // list agrees with the store; the session worktree is clean.
    let listed = p.worktrees();
    assert_eq!(
        listed,
        [
            (p.root().to_path_buf(), Some("main".to_owned())),
            (worktree.clone(), Some(branch.clone())),
        ]
    );
    assert_eq!(p.git_in(&worktree, &["status", "--porcelain"]), "");
    let ours = p.git(&[
        "for-each-ref",
        "--format=%(refname:short)",
        "refs/heads/orchestra/",
    ]);
    assert_eq!(
        ours.trim(),
        branch,
        "fork branches are gone after the merge"
    );

    // Checkpoints record the SHAs where the repository changed: the start and the merge.
    let status = p.status(&id);
    let changed: Vec<(u64, bool)> = status["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["step"].as_u64().unwrap(),
                c["repo_change"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(changed, [(0, true), (1, true), (2, false)]);

    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn replay_from_every_checkpoint_restores_the_state_and_the_trees() {
    let p = GitProject::new(&[]);
    let (id, final_state) = run(&p);
    let (branch, _) = p.branch_and_worktree(&id);
    let start = p.rev("main");
    let merged = p.rev(&branch);

    // The state of each checkpoint, known independently of the store: the initial state, then
    // the coders' messages and outputs, then the final state.
    let mut after_coders = final_state.clone();
    after_coders["messages"] = json!(final_state["messages"].as_array().unwrap()[..2]);
    after_coders["agent_outputs"]
        .as_object_mut()
        .unwrap()
        .remove("tester");
    after_coders["passed"] = Value::Null;
    after_coders["report"] = Value::Null;
    let initial = json!({
        "messages": [], "agent_outputs": {}, "metadata": {}, "errors": [], "passed": null,
        "report": null,
    });
    let expected = [
        (0, initial, &start),
        (1, after_coders, &merged),
        (2, final_state.clone(), &merged),
    ];

    for (step, state, sha) in &expected {
        let fork = p.json(
            &["replay", &id, "--checkpoint", &step.to_string(), "--no-run"],
            0,
        );
        let fid = fork["session"].as_str().unwrap();
        assert_eq!(fork["parent_session"], id.as_str());
        assert_eq!(fork["parent_checkpoint"], *step);
        assert_eq!(fork["status"], "paused");
        assert_eq!(fork["state"], *state, "state at checkpoint {step}");
        assert_eq!(
            fork["repo_shas"]["app"],
            sha.as_str(),
            "sha at checkpoint {step}"
        );

        // A new branch and worktree at that commit, clean; the original branch is unchanged.
        let (fbranch, fworktree) = p.branch_and_worktree(fid);
        assert_eq!(fbranch, format!("orchestra/parallel-edit/{fid}"));
        assert_eq!(p.rev(&fbranch), **sha);
        assert_eq!(
            p.git_in(&fworktree, &["rev-parse", "HEAD"]).trim(),
            sha.as_str()
        );
        assert_eq!(p.git_in(&fworktree, &["status", "--porcelain"]), "");
        assert_eq!(p.rev(&branch), merged);

        let status = p.status(fid);
        assert_eq!(status["parent_session"], id.as_str());
        assert_eq!(status["parent_checkpoint"], *step);
    }

    // Replayed and run on, a fork ends where the original did; from checkpoint 0 the coders
    // run again on the fork's own branch.
    let out = p.json(&["replay", &id, "--checkpoint", "0"], 0);
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["state"], final_state);
    let fid = out["session"].as_str().unwrap();
    let (fbranch, _) = p.branch_and_worktree(fid);
    assert_eq!(
        agents_of_commits(&p, &format!("main..{fbranch}")),
        ["coder-a", "coder-b"]
    );
    assert_eq!(
        p.git(&["rev-parse", &format!("{fbranch}^{{tree}}")]),
        p.git(&["rev-parse", &format!("{branch}^{{tree}}")]),
        "the same work gives the same tree"
    );
    let out = p.json(&["replay", &id, "--checkpoint", "1"], 0);
    assert_eq!(out["state"], final_state);

    // `status` lists the forks; git's worktrees are exactly the store's sessions'.
    let text = p.orchestra(&["status", &id]);
    assert!(text.stdout.contains("\nforks:\n"), "{}", text.stdout);
    assert_eq!(
        text.stdout.matches(" at checkpoint ").count(),
        5,
        "{}",
        text.stdout
    );
    let sessions = p.json(&["status"], 0);
    let mut from_store: Vec<PathBuf> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| p.branch_and_worktree(s["id"].as_str().unwrap()).1)
        .collect();
    from_store.sort();
    let mut from_git: Vec<PathBuf> = p.worktrees().into_iter().skip(1).map(|w| w.0).collect();
    from_git.sort();
    assert_eq!(from_git, from_store);

    p.assert_fsck_clean();
    p.assert_user_untouched();
}

#[test]
fn replay_of_an_unknown_checkpoint_is_a_usage_error_and_creates_nothing() {
    let p = GitProject::new(&[]);
    let (id, _) = run(&p);
    let branches = p.git(&["branch", "--list"]);
    let out = p.orchestra(&["replay", &id, "--checkpoint", "9", "--no-run"]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(out.stderr.contains("has no checkpoint 9"), "{}", out.stderr);
    let out = p.orchestra(&["replay", "no-such-session", "--checkpoint", "0"]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert_eq!(p.git(&["branch", "--list"]), branches);
    assert_eq!(p.json(&["status"], 0).as_array().unwrap().len(), 1);
    p.assert_user_untouched();
}

#[test]
fn a_run_killed_mid_step_resumes_with_the_finished_writers_work_kept() {
    // coder-b waits long for its model; coder-a finishes (and commits in its fork) at once.
    let responses = std::fs::read_to_string(
        super::common::workspace_root().join("fixtures/parallel-edit.responses.yaml"),
    )
    .unwrap()
    .replace(
        "  coder-b:\n    runs:",
        "  coder-b:\n    latency_ms: 600000\n    runs:",
    );
    assert!(responses.contains("latency_ms: 600000"));
    let slow = GitProject::new(&[("fixtures/slow.responses.yaml", &responses)]);
    let pipeline = std::fs::read_to_string(slow.root().join(PIPELINE))
        .unwrap()
        .replace("parallel-edit.responses.yaml", "slow.responses.yaml");
    slow.write("pipelines/slow.yaml", &pipeline);
    let mut child = slow.spawn(&["run", "pipelines/slow.yaml"]);
    let id = super::common::wait_until("coder-a to finish", || {
        let sessions = slow.json(&["status"], 0);
        let id = sessions[0]["id"].as_str()?;
        let usage = slow.status(id)["usage"].clone();
        usage
            .as_array()?
            .iter()
            .any(|r| r["node"] == "coder-a")
            .then(|| id.to_owned())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (branch, _) = slow.branch_and_worktree(&id);
    let fork_a = format!("{branch}+coder-a-1");
    let a_commit = slow.rev(&fork_a);
    assert_eq!(
        agents_of_commits(&slow, &format!("main..{fork_a}")),
        ["coder-a"]
    );

    // Resumed (without the delay, as if the model answered now), coder-a is not run again: its
    // fork's commit is merged as it was.
    std::fs::write(
        slow.root().join("fixtures/slow.responses.yaml"),
        responses.replace("latency_ms: 600000", "latency_ms: 0"),
    )
    .unwrap();
    let out = slow.json(&["resume", &id], 0);
    assert_eq!(out["status"], "completed", "{out}");
    let runs: Vec<(String, u64)> = slow.status(&id)["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["node"].as_str().unwrap().to_owned(),
                u["runs"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(runs.contains(&("coder-a".to_owned(), 1)), "{runs:?}");
    let range = format!("main..{branch}");
    assert_eq!(agents_of_commits(&slow, &range), ["coder-a", "coder-b"]);
    assert!(
        slow.git(&["rev-list", &range])
            .lines()
            .any(|c| c == a_commit),
        "coder-a's commit from before the kill is in the session branch"
    );
    let files = slow.git(&["ls-tree", "-r", "--name-only", &branch, "orchestra-demo"]);
    assert_eq!(
        files,
        "orchestra-demo/greet.sh\norchestra-demo/greet_test.sh\n"
    );
    assert_eq!(slow.worktrees().len(), 2, "the forks are merged and gone");
    slow.assert_fsck_clean();
}

const CHAT_PIPELINE: &str = r#"name: chat-edit
defaults: { provider: scripted, model: worker }
providers:
  scripted: { kind: scripted, responses: ../fixtures/chat-edit.responses.yaml, latency_ms: 0 }
workspace:
  repos:
    app: { path: ., write: true }
agents:
  writer:
    role: { text: You write files. }
    task: { text: Write a.txt. }
    tools: [app:write-file]
  chatter:
    mode: interactive
    role: { text: You write files with a human. }
    task: { text: Write b.txt and ask the human. }
    tools: [app:write-file]
graph:
  - { from: START, to: [writer, chatter] }
  - { from: writer, to: END }
  - { from: chatter, to: END }
"#;

const CHAT_RESPONSES: &str = r#"agents:
  writer:
    runs:
      - turns:
          - tool_calls:
              - { tool: "app:write-file", args: { path: a.txt, content: "from the writer\n" } }
          - text: wrote a.txt
  chatter:
    runs:
      - turns:
          - tool_calls:
              - { tool: "app:write-file", args: { path: b.txt, content: "from the chat\n" } }
          - text: I wrote b.txt. Anything else?
          - text: Fine.
"#;

#[test]
fn an_interactive_writer_paused_mid_chat_keeps_its_forks_work() {
    let p = GitProject::new(&[
        ("pipelines/chat-edit.yaml", CHAT_PIPELINE),
        ("fixtures/chat-edit.responses.yaml", CHAT_RESPONSES),
    ]);
    // No terminal: the writer works (in its fork), the interactive agent pauses at once.
    let run = p.orchestra(&["run", "pipelines/chat-edit.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("paused at `chatter`"), "{}", run.stdout);
    let id = p.json(&["status"], 0)[0]["id"].as_str().unwrap().to_owned();
    let (branch, _) = p.branch_and_worktree(&id);

    // A human joins; the agent writes b.txt in its fork and answers; the human leaves (end
    // of input) before ending the chat: paused again, b.txt uncommitted in the fork.
    let left = p.orchestra_with_input(&["attach", &id], "");
    assert_eq!(left.code, 0, "{}", left.transcript());
    assert!(
        left.stdout.contains("paused at `chatter`"),
        "{}",
        left.transcript()
    );
    let fork = p
        .worktrees()
        .into_iter()
        .find(|(_, b)| b.as_deref() == Some(&format!("{branch}+chatter-1")))
        .unwrap()
        .0;
    assert_eq!(
        std::fs::read_to_string(fork.join("b.txt")).unwrap(),
        "from the chat\n"
    );

    // The chat is taken up again (from its stored turns, without running the write again) and
    // ended: the fork it wrote in is the one merged.
    let done = p.orchestra_with_input(&["attach", &id], "/done\n");
    assert_eq!(done.code, 0, "{}", done.transcript());
    assert!(done.stdout.contains("completed:"), "{}", done.transcript());
    assert_eq!(
        p.git(&["show", &format!("{branch}:a.txt")]),
        "from the writer\n"
    );
    assert_eq!(
        p.git(&["show", &format!("{branch}:b.txt")]),
        "from the chat\n"
    );
    assert_eq!(
        agents_of_commits(&p, &format!("main..{branch}")),
        ["chatter", "writer"]
    );
    assert_eq!(p.worktrees().len(), 2);
    p.assert_fsck_clean();
    p.assert_user_untouched();
}
