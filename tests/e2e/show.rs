//! `orchestra show` after a real run of `pipelines/pr-review.yaml` (offline, scripted answers,
//! real git and SQLite): the steps with their routing, a node's prompt, answers, tool calls
//! and routing, the state at a checkpoint, the JSON shape, the cap on tool results, and the
//! errors for unknown sessions, nodes and checkpoints. Also the progress line of a routing.

use serde_json::Value;

use super::readme::{Repo, session_of};

/// The project with a last commit that adds a file larger than the trace's cap (64 KiB), so
/// every reviewer's `get-git-diff` result is cut when it is recorded.
fn reviewed() -> (Repo, String, super::common::Run) {
    let repo = Repo::new();
    let big: String = (0..1500)
        .map(|i| format!("line {i:05} of a generated table that nobody reads\n"))
        .collect();
    assert!(big.len() > 70 * 1024);
    std::fs::write(repo.root.join("table.txt"), &big).unwrap();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "add a table"]);
    let run = repo.orchestra(&["run", "pipelines/pr-review.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();
    (repo, id, run)
}

/// The text with the session id and the durations (`12ms`, `1.5s`) redacted.
pub(crate) fn redact(text: &str, id: &str) -> String {
    let duration = |w: &str| {
        let num = w.strip_suffix("ms").or_else(|| w.strip_suffix('s'));
        num.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    text.replace(id, "SESSION")
        .split('\n')
        .map(|line| {
            line.split(' ')
                .map(|w| if duration(w) { "TIME" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn show_prints_steps_routing_prompts_answers_and_tool_calls() {
    let (repo, id, run) = reviewed();
    // The progress lines say what the critic decided and which loop round runs.
    assert!(
        run.stderr.contains(
            "  route  critic -> revise -> security-reviewer, architecture-reviewer (loop 1/2)\n"
        ),
        "{}",
        run.stderr
    );

    let all = repo.orchestra(&["show", &id], "");
    assert_eq!(all.code, 0, "{}", all.transcript());
    let steps: String = all
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("state at"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(super::common::tests_dir().join("snapshots/show"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        insta::assert_snapshot!("pr-review.steps", redact(&steps, &id));
    });
    assert!(
        all.stdout.contains("state at checkpoint 5:\n"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.contains("\"review\": \"## Summary"),
        "{}",
        all.stdout
    );

    let critic = repo.orchestra(&["show", &id, "--node", "critic"], "");
    assert_eq!(critic.code, 0, "{}", critic.transcript());
    let out = &critic.stdout;
    assert!(
        out.contains("node critic: 2 runs up to checkpoint 5\n"),
        "{out}"
    );
    // The prompt as sent: the system prompt (with the findings templated in) and the kickoff.
    assert!(
        out.contains("    | You are the critic of a review team."),
        "{out}"
    );
    assert!(out.contains("    | 1. [high] "), "{out}");
    assert!(out.contains("        | Carry out your task now."), "{out}");
    // The answers, and the routing that followed each run.
    assert!(out.contains("        | {\"verdict\": \"revise\","), "{out}");
    assert!(
        out.contains("  route  critic -> revise -> security-reviewer, architecture-reviewer (loop 1/2)  [critic_routing]\n"),
        "{out}"
    );
    assert!(
        out.contains("  route  critic -> default -> synthesizer  [critic_routing]\n"),
        "{out}"
    );

    // A tool call with its arguments and its result, cut at the cap with the sizes shown.
    let sec = repo.orchestra(&["show", &id, "--node", "security-reviewer"], "");
    assert_eq!(sec.code, 0, "{}", sec.transcript());
    let out = &sec.stdout;
    assert!(out.contains("      tool app:get-git-diff  "), "{out}");
    assert!(
        out.contains("        arguments:\n          {\"base\":\"HEAD~1\",\"head\":\"HEAD\"}\n"),
        "{out}"
    );
    assert!(
        out.contains("(cut at 64.0 KiB of 7"),
        "the result is cut and says so: {out}"
    );
    assert!(
        out.contains("          +line 00000 of a generated table"),
        "{out}"
    );
    assert!(!out.contains("+line 01499"), "the end of the result is cut");
}

#[test]
fn show_json_has_the_documented_shape() {
    let (repo, id, _) = reviewed();
    let run = repo.orchestra(&["show", &id, "--node", "critic", "--json"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["session"]["id"], id.as_str());
    assert_eq!(v["session"]["status"], "completed");
    assert_eq!(v["checkpoint"], 5);
    assert_eq!(v["checkpoints"], serde_json::json!([0, 1, 2, 3, 4, 5]));
    assert_eq!(v["traced"], true);
    assert_eq!(v["node"], "critic");
    assert_eq!(v["state"]["verdict"], "approve");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| s["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 4]
    );
    let first = &steps[0]["runs"][0];
    assert_eq!(first["node"], "critic");
    assert_eq!(first["status"], "ok");
    assert!(
        first["system"]
            .as_str()
            .unwrap()
            .starts_with("You are the critic")
    );
    let turns = first["turns"].as_array().unwrap();
    assert_eq!(turns[0]["stop"], "tool_use");
    assert_eq!(turns[0]["messages"][0]["role"], "user");
    let call = &turns[0]["tool_calls"][0];
    assert_eq!(call["tool"], "app:get-git-diff");
    assert_eq!(call["args"], r#"{"base":"HEAD~1","head":"HEAD"}"#);
    assert_eq!(call["result_cut"], true);
    assert_eq!(call["result"].as_str().unwrap().len(), 64 * 1024);
    assert!(call["result_bytes"].as_u64().unwrap() > 64 * 1024);
    assert_eq!(turns[1]["stop"], "end_turn");
    assert!(
        turns[1]["answer"][0]["text"]
            .as_str()
            .unwrap()
            .contains("revise")
    );
    let route = &steps[0]["routes"][0];
    assert_eq!(route["from"], "critic");
    assert_eq!(route["condition"], "critic_routing");
    assert_eq!(route["decision"], "revise");
    assert_eq!(
        route["targets"],
        serde_json::json!(["security-reviewer", "architecture-reviewer"])
    );
    assert_eq!(
        (route["loop_round"].as_u64(), route["loop_max"].as_u64()),
        (Some(1), Some(2))
    );

    // The state at checkpoint 1: the reviewers' findings, before the critic ran.
    let one = repo.orchestra(&["show", &id, "--checkpoint", "1", "--json"], "");
    assert_eq!(one.code, 0, "{}", one.transcript());
    let v: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v["checkpoint"], 1);
    assert_eq!(v["state"]["findings"].as_array().unwrap().len(), 2);
    assert!(v["state"]["review"].is_null() || v["state"]["review"] == "");
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    let text = repo.orchestra(&["show", &id, "--checkpoint", "1"], "");
    assert!(
        text.stdout.contains("checkpoint 1 of 5\n"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("step 2:"), "{}", text.stdout);
}

#[test]
fn unknown_sessions_nodes_and_checkpoints_are_bad_input() {
    let (repo, id, _) = reviewed();
    let node = repo.orchestra(&["show", &id, "--node", "critc"], "");
    assert_eq!(node.code, 2, "{}", node.transcript());
    assert_eq!(
        node.stderr,
        format!(
            "error: session {id} has no node `critc`; did you mean `critic`?; its nodes: architecture-reviewer, critic, security-reviewer, synthesizer\n"
        )
    );
    let cp = repo.orchestra(&["show", &id, "--checkpoint", "9"], "");
    assert_eq!(cp.code, 2);
    assert_eq!(
        cp.stderr,
        format!("error: session {id} has no checkpoint 9 (its checkpoints: 0-5)\n")
    );
    let nope = repo.orchestra(&["show", "nope"], "");
    assert_eq!(nope.code, 2);
    assert!(
        nope.stderr.contains("no session matches `nope`"),
        "{}",
        nope.stderr
    );
}
