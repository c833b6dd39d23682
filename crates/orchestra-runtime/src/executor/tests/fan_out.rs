//! The executor on `for_each` edges: one task per item named `researcher[N]`, seeing its item,
//! writes in item order, run counts and state rebuilt from the store, 0 items, and a list that
//! is not one.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{FnRunner, Harness, NoRouter, edge, limits, says};
use crate::outcome::Finish;
use crate::runner::NodeResult;
use orchestra_graph::state::Channels;
use orchestra_graph::{Edge, Node, Topology};
use orchestra_spec::{SourceFile, SpannedMap, StateFieldSpec};
use orchestra_store_sqlite::SqliteStore;

/// START -> planner -(for_each: subtopics)-> researcher -> writer -> END.
fn map_reduce(db: &std::path::Path) -> Harness {
    let (planner, researcher, writer) = (Node::Agent(0), Node::Agent(1), Node::Agent(2));
    let topo = Topology::new(
        vec!["planner".into(), "researcher".into(), "writer".into()],
        vec![
            edge(&[Node::Start], &[planner]),
            Edge {
                for_each: Some("subtopics".into()),
                ..edge(&[planner], &[researcher])
            },
            edge(&[researcher], &[writer]),
            edge(&[writer], &[Node::End]),
        ],
    );
    let yaml = "subtopics: {}\nfindings: { type: array, reducer: append }\n";
    let declared: SpannedMap<StateFieldSpec> =
        orchestra_spec::parse_yaml(&SourceFile::new("s.yaml", yaml), "state").unwrap();
    let mut h = Harness::new(Box::new(SqliteStore::open(db).unwrap()), topo);
    h.channels = Arc::new(Channels::new(&declared));
    h
}

/// The planner writes `list`; each researcher instance answers with its item and index (the
/// end-to-end tests have them finish out of order); the writer counts the findings it sees.
fn runner(list: Value) -> Arc<FnRunner> {
    FnRunner::new(move |c| match &*c.agent {
        "planner" => Ok(NodeResult {
            writes: vec![("subtopics".into(), list.clone())],
            ..says("planned")
        }),
        "writer" => Ok(says(&format!(
            "{} findings",
            c.state["findings"].as_array().map_or(0, Vec::len)
        ))),
        name => {
            let (i, item) = c
                .item
                .as_deref()
                .cloned()
                .expect("an instance has its item");
            let note = format!("{name}: {} #{i}", item.as_str().unwrap_or("?"));
            Ok(NodeResult {
                writes: vec![("findings".into(), json!(note))],
                ..says(&note)
            })
        }
    })
}

#[tokio::test]
async fn instances_run_per_item_and_write_in_item_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = map_reduce(&dir.path().join("m.db"));
    let mut pos = h.start("mr", &NoRouter).await;
    let run = runner(json!(["a", "b", "c"]));
    let exec = h.executor("mr", run.clone(), Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(finish, Finish::Completed { warnings: vec![] });
    for i in 0..3 {
        assert_eq!(run.calls(&format!("researcher[{i}]")), 1);
    }
    let findings = json!([
        "researcher[0]: a #0",
        "researcher[1]: b #1",
        "researcher[2]: c #2"
    ]);
    assert_eq!(pos.state["findings"], findings);
    assert_eq!(pos.state["agent_outputs"]["researcher"], findings);
    assert_eq!(pos.state["agent_outputs"]["writer"], json!("3 findings"));
    assert_eq!(pos.runs, vec![1, 1, 1], "three instances are one run");
    // The store gives the same position back: state, run counts, the fan-out of step 1.
    let restored = h.restore("mr", 3).await;
    assert_eq!(restored.state, pos.state);
    assert_eq!(restored.runs, pos.runs);
    let mid = h.restore("mr", 1).await;
    assert_eq!(mid.sched.ready, vec![1]);
    assert_eq!(mid.sched.for_each.get(&1), Some(&1));
}

#[tokio::test]
async fn no_items_go_straight_on_and_a_non_list_fails_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let h = map_reduce(&dir.path().join("z.db"));
    let mut pos = h.start("zero", &NoRouter).await;
    let run = runner(json!([]));
    let exec = h.executor("zero", run.clone(), Arc::new(NoRouter), limits(3));
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert_eq!(
        run.calls("writer"),
        1,
        "the writer ran after the empty fan-out"
    );
    assert_eq!(pos.state["findings"], json!([]));
    assert_eq!(pos.sched.step, 3);

    let mut pos = h.start("text", &NoRouter).await;
    let run = runner(json!({"a": 1}));
    let exec = h.executor("text", run.clone(), Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(
        finish,
        Finish::Failed {
            error: "step 2: cannot fan out `researcher`: `for_each: subtopics` needs a list, but state field `subtopics` holds a mapping: {\"a\":1}".into()
        }
    );
    assert_eq!(run.calls("writer"), 0);
}
