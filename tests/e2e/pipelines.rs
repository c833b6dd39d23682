//! The real pipelines of `pipelines/`: each compiles, and its `compile` output and the composed
//! system prompt of every agent (initial state, default inputs) are pinned by snapshots.

use super::common::{Run, check_all, orchestra, workspace_root};

fn pipelines() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

fn run(args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    orchestra(&workspace_root(), home.path(), args)
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(super::common::tests_dir().join("snapshots/pipelines"));
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

#[test]
fn every_pipeline_compiles_and_its_output_is_pinned() {
    let names = pipelines();
    assert!(names.iter().any(|n| n == "pr-review.yaml"));
    check_all(&names, |name| {
        let run = run(&["compile", &format!("pipelines/{name}")]);
        assert_eq!(run.code, 0, "{name}: {}", run.transcript());
        settings().bind(|| {
            insta::assert_snapshot!(
                format!("{}.compile", name.trim_end_matches(".yaml")),
                run.transcript()
            );
        });
    });
}

#[test]
fn every_agent_prompt_of_every_pipeline_is_pinned() {
    check_all(&pipelines(), |name| {
        let run = run(&["compile", "--prompts", &format!("pipelines/{name}")]);
        assert_eq!(run.code, 0, "{name}: {}", run.transcript());
        settings().bind(|| {
            insta::assert_snapshot!(
                format!("{}.prompts", name.trim_end_matches(".yaml")),
                run.transcript()
            );
        });
    });
}

#[test]
fn pr_review_renders_every_format() {
    let mermaid = run(&["compile", "pipelines/pr-review.yaml", "--format", "mermaid"]);
    assert_eq!(mermaid.code, 0);
    assert!(mermaid.stdout.starts_with("flowchart TD\n"));
    assert!(
        mermaid.stdout.contains("a0 & a1 -->|\"join: all\"| a2"),
        "{}",
        mermaid.stdout
    );
    // A condition's edges are labelled with the rules that choose each target.
    assert!(
        mermaid.stdout.contains(
            "a2 -.->|\"if critic_routing: revise, max_loops: 2\"| a0\n    a2 -.->|\"if critic_routing: revise, max_loops: 2\"| a1\n    a2 -.->|\"if critic_routing: default, max_loops: 2\"| a3\n"
        ),
        "{}",
        mermaid.stdout
    );
    let dot = run(&["compile", "pipelines/pr-review.yaml", "--format", "dot"]);
    assert!(dot.stdout.starts_with("digraph \"pr-review\" {"));
    assert!(
        dot.stdout.contains(
            "\"critic\" -> \"security-reviewer\" [label=\"if critic_routing: revise, max_loops: 2\", style=dashed];"
        ),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout.contains(
            "\"critic\" -> \"synthesizer\" [label=\"if critic_routing: default, max_loops: 2\", style=dashed];"
        ),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout
            .contains("\"critic\" -> \"synthesizer\" [label=\"on_max_loops\", style=dotted];")
    );

    let json = run(&["compile", "pipelines/pr-review.yaml", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["name"], "pr-review");
    assert_eq!(v["agents"][2]["name"], "critic");
    assert_eq!(v["agents"][0]["layers"][0]["level"]["level"], "search_path");
    assert_eq!(v["conditions"]["critic_routing"]["source"]["kind"], "rules");
    assert_eq!(v["topology"]["edges"][2]["max_loops"], 2);
    assert_eq!(v["warnings"], serde_json::json!([]));
    // What a session stores can be read back into a `Compiled` and drives the same graph.
    let back: orchestra_graph::Compiled = serde_json::from_value(v).unwrap();
    assert_eq!(back.topology.edges[2].loop_targets.len(), 2);
    assert_eq!(back.agents[3].writes[0].field, "review");
}

#[test]
fn another_provider_resolves_the_model_aliases() {
    let run = run(&[
        "compile",
        "pipelines/pr-review.yaml",
        "--provider",
        "anthropic",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("    provider     anthropic (anthropic)\n    model        claude-opus-5-5 (alias smart)\n"), "{}", run.stdout);
    let bad = self::run(&[
        "compile",
        "pipelines/pr-review.yaml",
        "--provider",
        "antropic",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .starts_with("error: unknown provider `antropic`\n"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("did you mean `anthropic`?"),
        "{}",
        bad.stderr
    );
}

#[test]
fn prompts_take_inputs_and_refuse_unknown_ones() {
    let run = run(&[
        "compile",
        "--prompts",
        "pipelines/pr-review.yaml",
        "--input",
        "base=main",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Review the changes between `main` and `HEAD`")
    );
    let bad = self::run(&[
        "compile",
        "--prompts",
        "pipelines/pr-review.yaml",
        "--input",
        "bse=main",
    ]);
    assert_eq!(bad.code, 2);
    assert_eq!(
        bad.stderr,
        "error: the pipeline has no input `bse`; did you mean `base`?\n  inputs: base, head\n"
    );
}
