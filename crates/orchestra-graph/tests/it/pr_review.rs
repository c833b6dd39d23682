//! The shipped `pipelines/pr-review.yaml`: what the compiler resolves, its prompts mid-run, its
//! routing rules, and a full scheduler walk through the revise loop.

use std::path::{Path, PathBuf};

use orchestra_graph::scheduler::{Outcome, Scheduler};
use orchestra_graph::{Compiled, ConditionSource, LoadOptions, Node, ToolKind, load};
use orchestra_spec::Level;
use serde_json::{Map, Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn compile() -> Compiled {
    let home = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        cwd: root(),
        home: Some(home.path().to_path_buf()),
        ..LoadOptions::default()
    };
    match load(Path::new("pipelines/pr-review.yaml"), &opts) {
        Ok(c) => c,
        Err(d) => panic!("{}", d.iter().map(|d| d.render()).collect::<String>()),
    }
}

#[test]
fn everything_is_resolved() {
    let c = compile();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.topology.agents,
        [
            "security-reviewer",
            "architecture-reviewer",
            "critic",
            "synthesizer"
        ]
    );
    assert_eq!(
        c.project_file.as_deref(),
        Some(root().join("orchestra.yaml").as_path())
    );

    let sec = c.agent("security-reviewer").unwrap();
    assert_eq!(sec.index, 0);
    let files: Vec<String> = sec
        .layers
        .iter()
        .map(|l| l.path.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "prompts/roles/reviewer.yaml",
            "prompts/personas/security-expert.yaml",
            "prompts/personalities/blunt.yaml",
            "prompts/tasks/review-diff.yaml"
        ]
    );
    assert!(
        sec.layers
            .iter()
            .all(|l| l.level == Some(Level::SearchPath(".".into())))
    );
    assert_eq!(sec.model.provider, "scripted");
    assert_eq!(sec.model.requested.as_deref(), Some("smart"));
    let tools: Vec<&str> = sec.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        tools,
        ["app:get-git-diff", "app:read-file", "app:search-code"]
    );
    assert!(matches!(
        sec.tools[0].kind,
        ToolKind::Builtin { writes: false }
    ));
    assert_eq!(sec.writes[0].field, "findings");
    assert!(sec.write_repos.is_empty());
    assert_eq!(sec.output_max_retries, 2);

    let scripted = c.provider_of(sec).unwrap();
    let responses = scripted.responses.as_ref().unwrap();
    assert!(responses.is_file(), "{}", responses.display());
    assert_eq!(c.repo("app").unwrap().path, root());

    let routing = &c.topology.edges[2];
    assert_eq!(routing.condition.as_deref(), Some("critic_routing"));
    assert_eq!(routing.loop_targets, [Node::Agent(0), Node::Agent(1)]);
    assert_eq!(routing.on_max_loops, Some(Node::Agent(3)));
    assert!(c.topology.edges[1].loop_targets.contains(&Node::Agent(2)));

    let g = c.graph();
    assert_eq!(g.node_count(), 7, "START, 4 agents, END, FAIL");
    // START->2, fan-in 2, critic->3 targets + on_max_loops, synthesizer->END.
    assert_eq!(g.edge_count(), 2 + 2 + 4 + 1);
}

#[test]
fn another_provider_resolves_aliases() {
    let mut c = compile();
    c.use_provider("anthropic").unwrap();
    let critic = c.agent("critic").unwrap();
    assert_eq!(critic.model.model.as_deref(), Some("claude-opus-5-5"));
    assert_eq!(critic.model.alias.as_deref(), Some("smart"));
    let synth = c.agent("synthesizer").unwrap();
    assert_eq!(synth.model.model.as_deref(), Some("claude-sonnet-5-5"));
    let err = c.use_provider("antropic").unwrap_err();
    assert_eq!(err.help[0], "did you mean `anthropic`?");
}

fn mid_run_state(c: &Compiled) -> Value {
    let mut state = Value::Object(c.initial_state());
    state["findings"] = json!([
        {"reviewer": "security-reviewer", "severity": "critical", "file": "src/db.rs", "line": 48,
         "title": "SQL injection", "detail": "query built with format!", "suggestion": "bind it"},
        {"reviewer": "architecture-reviewer", "severity": "low", "file": "src/api.rs",
         "title": "No test", "detail": "the new path is untested"}
    ]);
    state["verdict"] = json!("revise");
    state["critique"] = json!("The SQL injection is real; add the missing tests.");
    state
}

#[test]
fn prompts_render_in_the_revise_round() {
    let c = compile();
    let state = mid_run_state(&c);
    let inputs = Value::Object(c.inputs_with(&[("base".into(), "main".into())]).values);
    let sec = c
        .system_prompt(c.agent("security-reviewer").unwrap(), &state, &inputs)
        .unwrap();
    assert!(sec.contains("between `main` and `HEAD`"), "{sec}");
    assert!(sec.contains("This is a revision round."), "{sec}");
    assert!(
        sec.contains("- [critical] SQL injection (src/db.rs:48, by security-reviewer)\n"),
        "{sec}"
    );
    assert!(
        sec.contains("- [low] No test (src/api.rs, by architecture-reviewer)\n"),
        "{sec}"
    );
    assert!(sec.contains("\"reviewer\": \"security-reviewer\""), "{sec}");

    let critic = c
        .system_prompt(c.agent("critic").unwrap(), &state, &inputs)
        .unwrap();
    assert!(
        critic.contains(
            "1. [critical] SQL injection\n   src/db.rs:48, reported by security-reviewer\n"
        ),
        "{critic}"
    );
    assert!(critic.contains("   Suggested fix: bind it\n"), "{critic}");
    assert!(!critic.contains("No findings were reported"), "{critic}");

    let synth = c
        .system_prompt(c.agent("synthesizer").unwrap(), &state, &inputs)
        .unwrap();
    assert!(
        synth.contains("verdict on the reviewers' work was `revise`"),
        "{synth}"
    );
    assert!(synth.contains("- [critical] SQL injection (src/db.rs:48, security-reviewer): query built with format! Fix: bind it\n"), "{synth}");
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn the_scheduler_walks_the_revise_loop_to_the_end() {
    let c = compile();
    let ConditionSource::Rules(rules) = &c.conditions["critic_routing"].source else {
        panic!("critic_routing is a rule file");
    };
    let inputs = obj(json!({"base": "HEAD~1", "head": "HEAD"}));
    let sched = Scheduler::new(&c.topology);
    // The critic asks for a revision the first time and approves the second.
    let verdicts = ["revise", "approve"];
    let mut critic_runs = 0;
    let mut route = |_: usize, _: &orchestra_graph::Edge| {
        let state = obj(json!({"verdict": verdicts[critic_runs.min(1)]}));
        critic_runs += 1;
        rules
            .evaluate(&state, &inputs, 0)
            .map_err(|e| e.to_string())
    };
    let (mut st, mut outcome) = sched.start(&mut route).unwrap();
    let mut steps: Vec<Vec<String>> = Vec::new();
    while outcome == Outcome::Continue {
        steps.push(
            st.ready
                .iter()
                .map(|&a| c.topology.agents[a].clone())
                .collect(),
        );
        outcome = sched.advance(&mut st, &mut route).unwrap();
    }
    assert_eq!(
        steps,
        [
            vec!["security-reviewer", "architecture-reviewer"],
            vec!["critic"],
            vec!["security-reviewer", "architecture-reviewer"],
            vec!["critic"],
            vec!["synthesizer"],
        ]
    );
    assert!(st.reached_end);
}

#[test]
fn critic_routing_rules_route_as_documented() {
    let c = compile();
    let ConditionSource::Rules(rules) = &c.conditions["critic_routing"].source else {
        panic!("rules");
    };
    let revise = rules
        .evaluate(&obj(json!({"verdict": "revise"})), &Map::new(), 0)
        .unwrap();
    assert_eq!(revise, ["security-reviewer", "architecture-reviewer"]);
    let approve = rules
        .evaluate(&obj(json!({"verdict": "approve"})), &Map::new(), 1)
        .unwrap();
    assert_eq!(approve, ["synthesizer"]);
    let unset = rules
        .evaluate(&obj(json!({"verdict": null})), &Map::new(), 0)
        .unwrap();
    assert_eq!(unset, ["synthesizer"]);
}

#[test]
fn json_round_trip_keeps_what_the_runtime_needs() {
    let c = compile();
    let text = serde_json::to_string(&c).unwrap();
    let back: Compiled = serde_json::from_str(&text).unwrap();
    assert_eq!(back.topology, c.topology);
    assert_eq!(back.conditions, c.conditions);
    assert_eq!(back.channels, c.channels);
    assert_eq!(back.inputs, c.inputs);
    assert_eq!(back.source.text, c.source.text);
    assert_eq!(back.agents.len(), 4);
    for (a, b) in back.agents.iter().zip(&c.agents) {
        assert_eq!(a.layers, b.layers);
        assert_eq!(a.model, b.model);
        assert_eq!(a.output_schema, b.output_schema);
        assert_eq!(a.writes, b.writes);
    }
    assert_eq!(
        back.providers["scripted"].responses,
        c.providers["scripted"].responses
    );
    assert_eq!(back.agents.len(), 4);
    assert_eq!(back.outputs.len(), c.outputs.len());
    // The same prompts come out of what was stored.
    let state = mid_run_state(&c);
    let inputs = json!({"base": "HEAD~1", "head": "HEAD"});
    assert_eq!(
        back.system_prompt(&back.agents[2], &state, &inputs)
            .unwrap(),
        c.system_prompt(&c.agents[2], &state, &inputs).unwrap()
    );
}
