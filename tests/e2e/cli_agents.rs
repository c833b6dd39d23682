//! Command-line agents as providers, end to end with real git: a Claude Code agent
//! (`format: claude-stream-json`) and a Codex agent (`format: codex-jsonl`) edit the repository
//! in parallel, each in its own worktree, then a plain-text agent (`format: text`) edits the
//! merged result. The agents are a fake program printing event streams recorded in the tools'
//! documented formats (`crates/orchestra-providers/tests/streams/`); their tokens and the tool
//! calls they ran show in `status --json`, and each one's edit is its own commit on the session
//! branch.

use serde_json::Value;

use super::common::workspace_root;
use super::gitrepo::GitProject;

const PIPELINE: &str = r#"name: cli-agents
defaults: { provider: plain }
providers:
  claude:
    kind: command
    format: claude-stream-json
    command: [sh, agents/fake-agent.sh, --write, NOTES.md, agents/claude-tools.jsonl, "{{prompt}}"]
  codex:
    kind: command
    format: codex-jsonl
    stdin: true
    command: [sh, agents/fake-agent.sh, --write, CHECKS.md, agents/codex-tools.jsonl]
  plain:
    kind: command
    command: [sh, -c, 'echo "Looks good." | tee REVIEW.md', sh, "{{prompt}}"]
  failing:
    kind: command
    format: claude-stream-json
    command: [sh, agents/fake-agent.sh, --exit, "1", agents/claude-api-error.jsonl, "{{prompt}}"]
workspace:
  repos:
    app: { path: ., write: true }
agents:
  # A CLI agent that edits a repository lists a write tool of it: that makes it a writer.
  notes: { provider: claude, task: { text: "Summarise the README in NOTES.md." }, tools: [app:write-file] }
  checks: { provider: codex, task: { text: "Run the tests; write CHECKS.md." }, tools: [app:write-file] }
  review: { task: { text: "Review the notes and checks." }, tools: [app:write-file] }
graph:
  - { from: START, to: [notes, checks] }
  - { from: [notes, checks], to: review }
  - { from: review, to: END }
"#;

/// A repository holding the pipeline, the fake agent and its recorded streams.
fn project(pipeline: &str) -> GitProject {
    let streams = workspace_root().join("crates/orchestra-providers/tests/streams");
    let read = |f: &str| std::fs::read_to_string(streams.join(f)).unwrap();
    let files: Vec<(String, String)> = [
        "fake-agent.sh",
        "claude-tools.jsonl",
        "codex-tools.jsonl",
        "claude-api-error.jsonl",
    ]
    .iter()
    .map(|f| (format!("agents/{f}"), read(f)))
    .chain([("pipelines/cli-agents.yaml".to_owned(), pipeline.to_owned())])
    .collect();
    let extra: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    GitProject::new(&extra)
}

fn usage_of<'a>(status: &'a Value, node: &str) -> &'a Value {
    status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["node"] == node)
        .unwrap_or_else(|| panic!("no usage of {node}: {status}"))
}

#[test]
fn claude_and_codex_agents_edit_in_their_worktrees_with_tokens_and_tool_calls_recorded() {
    let p = project(PIPELINE);
    let run = p.orchestra(&["run", "pipelines/cli-agents.yaml", "--stream"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    // `--stream` shows the agents' messages as their streams bring them; the tool calls they
    // ran themselves show when their run returns.
    for line in [
        "[notes] I'll read the README first.",
        "[checks] I added NOTES.md",
        "tool   notes -> Read",
        "tool   notes -> Bash (error)",
        "tool   checks -> file_change",
        "tool   checks -> docs:search",
    ] {
        assert!(run.stderr.contains(line), "{line}\n{}", run.transcript());
    }
    let id = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();

    let status = p.status(&id);
    assert_eq!(status["status"], "completed", "{status}");
    let notes = usage_of(&status, "notes");
    assert_eq!(notes["tokens_in"], 17 + 12361 + 35560);
    assert_eq!(notes["tokens_out"], 412);
    assert_eq!(notes["tool_calls"], 3);
    let checks = usage_of(&status, "checks");
    assert_eq!(checks["tokens_in"], 24763);
    assert_eq!(checks["tokens_out"], 122);
    assert_eq!(checks["tool_calls"], 4);
    let review = usage_of(&status, "review");
    assert_eq!(review["tool_calls"], 0);
    assert!(review["tokens_out"].as_u64().unwrap() > 0, "{review}");
    // Cache reads and writes apart; Claude Code's own cost is the run's cost. Codex reports no
    // cost and these agents name no model to price: their cost is unknown, and the session's
    // total is the known part, marked partial.
    assert_eq!(
        (&notes["cache_read_tokens"], &notes["cache_write_tokens"]),
        (&Value::from(35560), &Value::from(12361))
    );
    assert_eq!(notes["cost_usd"], 0.0591234, "{notes}");
    assert_eq!(checks["cache_read_tokens"], 24448);
    assert_eq!(
        (&checks["cost_usd"], &review["cost_usd"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(status["cost_usd"], 0.0591234, "{status}");
    assert_eq!(status["cost_partial"], true);
    // The tool calls an agent ran itself are in its trace, with what its stream reported.
    let shown = p.orchestra(&["show", &id, "--node", "notes", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    let calls: Vec<(String, bool)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["runs"].as_array().unwrap())
        .flat_map(|r| r["turns"].as_array().unwrap())
        .flat_map(|t| t["tool_calls"].as_array().unwrap())
        .map(|c| {
            (
                c["tool"].as_str().unwrap().to_owned(),
                c["is_error"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.contains(&("Read".to_owned(), false)), "{calls:?}");
    assert!(calls.contains(&("Bash".to_owned(), true)), "{calls:?}");

    // Each agent's edit is its own commit: the parallel ones made in their own worktrees.
    let (branch, worktree) = p.branch_and_worktree(&id);
    let log = p.git(&[
        "log",
        "--reverse",
        "--no-merges",
        "--format=%H %(trailers:key=Orchestra-Agent,valueonly,separator=)",
        &format!("main..{branch}"),
    ]);
    let mut commits: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let (sha, agent) = l.split_once(' ').unwrap();
            let files = p.git(&["show", "--name-only", "--format=", sha]);
            (agent.to_owned(), files.trim().to_owned())
        })
        .collect();
    commits.sort();
    assert_eq!(
        commits,
        [
            ("checks".to_owned(), "CHECKS.md".to_owned()),
            ("notes".to_owned(), "NOTES.md".to_owned()),
            ("review".to_owned(), "REVIEW.md".to_owned()),
        ]
    );
    let notes_md = p.git(&["show", &format!("{branch}:NOTES.md")]);
    assert!(
        notes_md.starts_with("Summarise the README in NOTES.md."),
        "{notes_md}"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("REVIEW.md")).unwrap(),
        "Looks good.\n"
    );
    p.assert_user_untouched();
    p.assert_fsck_clean();
}

#[test]
fn an_error_the_cli_agent_reports_fails_the_session_with_its_message() {
    let pipeline = PIPELINE
        .replace("notes: { provider: claude", "notes: { provider: failing")
        .replace("  checks: {", "  # checks: {")
        .replace("to: [notes, checks]", "to: notes")
        .replace("from: [notes, checks]", "from: notes");
    let p = project(&pipeline);
    let run = p.orchestra(&["run", "pipelines/cli-agents.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let message = "`sh` (provider `failing`) reported an error: API Error: 401";
    assert!(run.stderr.contains(message), "{}", run.transcript());
    let list = p.json(&["status"], 0);
    let id = list[0]["id"].as_str().unwrap_or_else(|| panic!("{list}"));
    let status = p.status(id);
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"].as_str().unwrap().contains(message),
        "{status}"
    );
    p.assert_user_untouched();
}
