//! Edited pipelines: the diff of two compiled pipelines, a checkpoint carried over by agent and
//! edge name (indices shift when agents are inserted), and what is refused.

use std::path::Path;

use serde_json::{Map, json};

use orchestra_graph::edit::{EditError, carry, check_set, diff};
use orchestra_graph::scheduler::SchedState;
use orchestra_graph::topology::Node;
use orchestra_graph::{Compiled, LoadOptions, load};

/// Compiles each text as a pipeline of one project directory (so their paths agree).
fn compile_all<const N: usize>(texts: [&str; N]) -> [Compiled; N] {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("r.yaml"), "agents: {}\n").unwrap();
    let opts = LoadOptions {
        cwd: tmp.path().to_path_buf(),
        ..LoadOptions::default()
    };
    texts.map(|text| {
        std::fs::write(tmp.path().join("p.yaml"), text).unwrap();
        load(Path::new("p.yaml"), &opts).unwrap()
    })
}

fn compile(text: &str) -> Compiled {
    let [c] = compile_all([text]);
    c
}

fn pair(old: &str, new: &str) -> (Compiled, Compiled) {
    let [o, n] = compile_all([old, new]);
    (o, n)
}

const OLD: &str = r#"
name: p
defaults: { provider: s }
providers: { s: { kind: scripted, responses: r.yaml } }
state: { n: { type: integer }, notes: { type: array, reducer: append } }
agents:
  a: { task: { text: "one" } }
  b: {}
  c: {}
graph:
  - { from: START, to: a }
  - { from: a, to: [b, c] }
  - { from: [b, c], to: END }
"#;

/// `OLD` with `x` inserted before `b` (so `b` and `c` move), a new prompt for `a`, `n` a
/// number, a new field, and the join edge now going to `x`.
const NEW: &str = r#"
name: p
defaults: { provider: s }
providers: { s: { kind: scripted, responses: r.yaml } }
state: { n: { type: number }, notes: { type: array, reducer: append }, extra: { type: string, default: "e" } }
agents:
  a: { task: { text: "two" } }
  x: {}
  b: {}
  c: {}
graph:
  - { from: START, to: a }
  - { from: a, to: [b, c] }
  - { from: [b, c], to: x }
  - { from: x, to: END }
"#;

#[test]
fn the_diff_names_what_changed() {
    let (old, new) = pair(OLD, NEW);
    let lines: Vec<String> = diff(&old, &new)
        .changes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "~ agent     a: prompt (inline task)",
            "+ agent     x",
            "~ edge      b, c -> x: targets END -> x",
            "+ edge      x -> END",
            "~ state     n: an integer (replace) -> a number (replace)",
            "+ state     extra: a string (replace)",
        ]
    );
    let (a, b) = pair(OLD, OLD);
    assert!(diff(&a, &b).is_empty());
}

#[test]
fn a_checkpoint_is_carried_over_by_name() {
    let (old, new) = pair(OLD, NEW);
    // After step 2: b ran, c is due, the barrier saw b.
    let sched = SchedState {
        step: 2,
        ready: vec![2],
        arrived: [(2, [Node::Agent(1)].into())].into(),
        ..SchedState::default()
    };
    let mut state = old.initial_state();
    state.insert("n".into(), json!(3));
    let c = carry(&old, &new, 2, &sched, &[1, 1, 0], state, &Map::new()).unwrap();
    assert_eq!(c.sched.ready, [3], "c is agent 3 now");
    assert_eq!(
        c.sched.arrived,
        [(2, [Node::Agent(2)].into())].into(),
        "the barrier's edge kept its index; b is agent 2 now"
    );
    assert_eq!(c.runs, [1, 0, 1, 0]);
    assert_eq!(c.state["n"], json!(3));
    assert_eq!(
        c.state["extra"],
        json!("e"),
        "a new field starts at its default"
    );
}

#[test]
fn what_cannot_go_on_is_refused_by_name() {
    let (old, new) = pair(NEW, OLD);
    let sched = SchedState {
        step: 3,
        ready: vec![1],
        ..SchedState::default()
    };
    let mut state = old.initial_state();
    state.insert("n".into(), json!(2.5));
    let errors = carry(&old, &new, 3, &sched, &[1, 0, 1, 1], state, &Map::new()).unwrap_err();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "agent `x` is not in the edited pipeline, but it is due to run next at checkpoint 3; keep it, or replay from a checkpoint before it ran",
            "state field `n` changed from a number (replace) to an integer (replace), and its value at checkpoint 3 (2.5) is not an integer",
        ]
    );
    // An agent that never ran may go.
    let idle = SchedState {
        step: 3,
        ready: vec![0],
        ..SchedState::default()
    };
    assert!(
        carry(
            &old,
            &new,
            3,
            &idle,
            &[1, 0, 1, 1],
            old.initial_state(),
            &Map::new()
        )
        .is_ok()
    );
}

#[test]
fn set_checks_the_field_and_its_type() {
    let c = compile(OLD);
    assert!(check_set(&c.channels, "n", &json!(4)).is_ok());
    assert!(matches!(
        check_set(&c.channels, "n", &json!("four")),
        Err(EditError::BadValue { .. })
    ));
    assert_eq!(
        check_set(&c.channels, "notes", &json!("x"))
            .unwrap_err()
            .to_string(),
        "--set notes=\"x\": state field `notes` expects a list"
    );
    assert!(matches!(
        check_set(&c.channels, "nn", &json!(1)),
        Err(EditError::UnknownField { .. })
    ));
}
