//! The executor on the pipeline language's routes: `on_error` (the failure in state `errors`,
//! restored from the store), `FAIL` with its reason (kept across a resume), and `join: N`.

use std::sync::Arc;

use serde_json::json;

use super::{FnRunner, Harness, NoRouter, edge, limits, says};
use crate::outcome::Finish;
use crate::runner::NodeError;
use orchestra_graph::{Edge, Node, Topology};
use orchestra_spec::Join;
use orchestra_store_sqlite::SqliteStore;

/// START -> coder -> after -> END, with `coder`'s `on_error` going to `triage` -> END.
fn with_handler(db: &std::path::Path) -> Harness {
    let (coder, triage, after) = (Node::Agent(0), Node::Agent(1), Node::Agent(2));
    let mut topo = Topology::new(
        vec!["coder".into(), "triage".into(), "after".into()],
        vec![
            edge(&[Node::Start], &[coder]),
            edge(&[coder], &[after]),
            edge(&[after], &[Node::End]),
            edge(&[triage], &[Node::End]),
        ],
    );
    topo.on_error = vec![Some(triage), None, None];
    Harness::new(Box::new(SqliteStore::open(db).unwrap()), topo)
}

#[tokio::test]
async fn a_failure_with_on_error_goes_on_at_the_handler_with_the_error_in_state() {
    let dir = tempfile::tempdir().unwrap();
    let h = with_handler(&dir.path().join("o.db"));
    let mut pos = h.start("oe", &NoRouter).await;
    let runner = FnRunner::new(|c| match &*c.agent {
        "coder" => Err(NodeError::Retryable("the model is down".into())),
        // The handler sees the failure in the state it is given.
        "triage" => Ok(says(&format!("handled {}", c.state["errors"][0]["agent"]))),
        other => Ok(says(other)),
    });
    let exec = h.executor("oe", runner.clone(), Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(finish, Finish::Completed { warnings: vec![] });
    assert_eq!(runner.calls("coder"), 3, "its retries were used up first");
    assert_eq!(runner.calls("after"), 0, "coder's own edge is not taken");
    assert_eq!(
        pos.state["errors"],
        json!([{"agent": "coder", "step": 1, "error": "the model is down (after 3 attempts)"}])
    );
    assert_eq!(
        pos.state["agent_outputs"],
        json!({"triage": "handled \"coder\""})
    );
    // The stored records give the same state back.
    let restored = h.restore("oe", 2).await;
    assert_eq!(restored.state, pos.state);
    let mid = h.restore("oe", 1).await;
    assert_eq!(mid.state["errors"], pos.state["errors"]);
    assert_eq!(mid.sched.ready, vec![1]);
}

#[tokio::test]
async fn the_circuit_breaker_still_counts_a_routed_failure() {
    let dir = tempfile::tempdir().unwrap();
    let h = with_handler(&dir.path().join("b.db"));
    let mut pos = h.start("br", &NoRouter).await;
    let runner = FnRunner::new(|_| Err(NodeError::Fatal("boom".into())));
    let mut l = limits(3);
    l.max_failures = 1;
    let exec = h.executor("br", runner.clone(), Arc::new(NoRouter), l);
    let finish = exec.run(&mut pos).await.unwrap();
    assert!(
        matches!(&finish, Finish::Failed { error } if error.contains("circuit breaker")),
        "{finish:?}"
    );
    assert_eq!(runner.calls("triage"), 0);
}

#[tokio::test]
async fn fail_ends_the_session_with_its_reason_and_a_resume_ends_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let mut into_fail = edge(&[Node::Agent(0)], &[Node::Fail]);
    into_fail.reason = Some("{{ state.messages | length }} message(s), then it gave up".into());
    let topo = Topology::new(
        vec!["a".into(), "b".into()],
        vec![
            edge(&[Node::Start], &[Node::Agent(0), Node::Agent(1)]),
            into_fail,
            edge(&[Node::Agent(1)], &[Node::End]),
        ],
    );
    let h = Harness::new(
        Box::new(SqliteStore::open(dir.path().join("f.db")).unwrap()),
        topo,
    );
    let mut pos = h.start("fl", &NoRouter).await;
    let runner = FnRunner::new(|c| Ok(says(&c.agent)));
    let exec = h.executor("fl", runner.clone(), Arc::new(NoRouter), limits(2));
    let expected = Finish::Fail {
        from: "`a`".into(),
        reason: Some("2 message(s), then it gave up".into()),
    };
    assert_eq!(exec.run(&mut pos).await.unwrap(), expected);
    assert_eq!(
        expected.note().as_deref(),
        Some("`a` routed to FAIL: 2 message(s), then it gave up")
    );
    // The checkpoint of the step keeps it: a resume ends the same way, running nothing.
    let mut pos = h.restore("fl", 1).await;
    assert_eq!(pos.sched.failed, Some(1));
    let again = FnRunner::new(|c| Ok(says(&c.agent)));
    let exec = h.executor("fl", again.clone(), Arc::new(NoRouter), limits(2));
    assert_eq!(exec.run(&mut pos).await.unwrap(), expected);
    assert_eq!(again.calls("a") + again.calls("b"), 0);
}

#[tokio::test]
async fn a_quorum_runs_its_target_once_and_resumes_with_its_count() {
    // a and b finish in step 1 (2 of 3: d fires), c in step 2 beside d.
    let (a, b, c, d) = (
        Node::Agent(0),
        Node::Agent(1),
        Node::Agent(2),
        Node::Agent(3),
    );
    let quorum = Edge {
        join: Join::Count(2),
        ..edge(&[a, b, c], &[d])
    };
    let topo = Topology::new(
        vec!["a".into(), "b".into(), "c".into(), "d".into()],
        vec![
            edge(&[Node::Start], &[a, b]),
            edge(&[b], &[c]),
            quorum,
            edge(&[d], &[Node::End]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        Box::new(SqliteStore::open(dir.path().join("q.db")).unwrap()),
        topo,
    );
    let mut pos = h.start("q", &NoRouter).await;
    let runner = FnRunner::new(|c| Ok(says(&c.agent)));
    let exec = h.executor("q", runner.clone(), Arc::new(NoRouter), limits(4));
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert_eq!(runner.calls("d"), 1);
    // From checkpoint 2, c's late arrival is counted toward d's next run.
    let end = h.restore("q", 2).await;
    assert_eq!(end.sched.arrived.get(&2).map(|s| s.len()), Some(1));
}
