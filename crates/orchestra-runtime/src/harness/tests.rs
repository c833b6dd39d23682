//! The harness's unit tests.

use super::parse_json_answer;
use serde_json::json;

/// Every running agent holds its `run_agent` future while it waits on the model: rare
/// paths (tool calls, starting MCP servers) are boxed off it. Starting an MCP server
/// inline once made it 9.6 KB in a release build, 9.6 MB over a 1000-agent fan-out.
#[test]
fn a_waiting_agent_holds_a_small_future() {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "name: p\nproviders:\n  s: { kind: scripted, responses: r.yaml }\n\
         defaults: { provider: s, model: m }\nagents:\n  a: { task: { text: Go. } }\n\
         graph:\n  - { from: START, to: a }\n  - { from: a, to: END }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "agents:\n  a:\n    runs: [ { turns: [ { text: done } ] } ]\n",
    )
    .unwrap();
    let opts = orchestra_graph::LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..orchestra_graph::LoadOptions::default()
    };
    let compiled = Arc::new(
        orchestra_graph::load(&dir.path().join("p.yaml"), &opts)
            .unwrap_or_else(|d| panic!("{d:?}")),
    );
    let providers =
        crate::plan::build_providers(&compiled, &|_| None, Path::new("."), None).unwrap();
    let tools =
        crate::plan::build_tools(&compiled, &HashMap::new(), orchestra_tools::Registry::new())
            .unwrap();
    let plans = crate::plan::agent_plans(&compiled, &providers, &tools).unwrap();
    let harness = super::Harness::new(
        Arc::clone(&compiled),
        plans,
        Arc::new(tools),
        Arc::new(crate::events::NoEvents),
        false,
    )
    .unwrap();
    let call = crate::runner::NodeCall {
        session: "s".into(),
        step: 1,
        agent: "a".into(),
        agent_idx: 0,
        run_index: 0,
        attempt: 0,
        state: Arc::default(),
        inputs: Arc::default(),
        usage: Arc::default(),
        trace: Arc::default(),
        tools: None,
        workdir: None,
        item: None,
    };
    let future = harness.run_agent(&call);
    let size = size_of_val(&future);
    // In a test build: 608 bytes, 9848 with the MCP start inline.
    assert!(size <= 2048, "an agent's future is {size} bytes");
}

#[test]
fn json_answers_are_found_in_fences_and_prose() {
    assert_eq!(parse_json_answer(" {\"a\": 1} ").unwrap(), json!({"a": 1}));
    assert_eq!(
        parse_json_answer("Here:\n```json\n{\"a\": [1]}\n```\nDone.").unwrap(),
        json!({"a": [1]})
    );
    assert_eq!(
        parse_json_answer("The result is {\"a\": 2}.").unwrap(),
        json!({"a": 2})
    );
    assert!(
        parse_json_answer("no json here")
            .unwrap_err()
            .contains("not JSON")
    );
}
