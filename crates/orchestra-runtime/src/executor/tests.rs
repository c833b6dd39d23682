//! Tests of the executor over hand-built topologies, a real MemoryStore/SqliteStore, and fake runners.

mod cost;
mod fan_out;
mod language;
mod store_failures;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::{ExecLimits, Executor, Position, Router};
use crate::events::{CollectEvents, Event};
use crate::outcome::{Finish, LimitSource, StopLimit};
use crate::restore::restore;
use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner};
use crate::store_worker::StoreHandle;
use orchestra_graph::scheduler::Scheduler;
use orchestra_graph::state::{Channels, State};
use orchestra_graph::{Edge, Node, Topology};
use orchestra_spec::{Join, SpannedMap};
use orchestra_store::{CheckpointRecord, MemoryStore, Store};
use orchestra_store_sqlite::SqliteStore;

type Behaviour = dyn Fn(&NodeCall) -> Result<NodeResult, NodeError> + Send + Sync;

struct FnRunner {
    f: Box<Behaviour>,
    calls: Mutex<HashMap<String, u32>>,
    delay: Duration,
}

impl FnRunner {
    fn new(
        f: impl Fn(&NodeCall) -> Result<NodeResult, NodeError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(FnRunner {
            f: Box::new(f),
            calls: Mutex::new(HashMap::new()),
            delay: Duration::ZERO,
        })
    }
    fn calls(&self, agent: &str) -> u32 {
        self.calls.lock().unwrap().get(agent).copied().unwrap_or(0)
    }
}

impl NodeRunner for FnRunner {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        Box::pin(async move {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(call.agent.to_string())
                .or_insert(0) += 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            (self.f)(call)
        })
    }
}

fn says(text: &str) -> NodeResult {
    NodeResult {
        output: json!(text),
        tokens_in: 10,
        tokens_out: 5,
        ..NodeResult::default()
    }
}

struct NoRouter;
impl Router for NoRouter {
    fn route(
        &self,
        _: &Edge,
        _: &State,
        _: &Map<String, Value>,
        _: u32,
    ) -> Result<Vec<String>, String> {
        Err("no conditions here".into())
    }
}

/// Routes back to `back` while state.count < limit, else to END.
struct CountRouter {
    back: String,
}
impl Router for CountRouter {
    fn route(
        &self,
        _: &Edge,
        state: &State,
        _: &Map<String, Value>,
        _: u32,
    ) -> Result<Vec<String>, String> {
        let n = state
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok(vec![if n < 6 {
            self.back.clone()
        } else {
            "END".into()
        }])
    }
}

fn edge(sources: &[Node], targets: &[Node]) -> Edge {
    Edge {
        sources: sources.to_vec(),
        targets: targets.to_vec(),
        join: Join::All,
        condition: None,
        max_loops: None,
        on_max_loops: None,
        loop_targets: Vec::new(),
        reason: None,
        for_each: None,
    }
}

fn diamond() -> Topology {
    Topology::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec![
            edge(&[Node::Start], &[Node::Agent(0), Node::Agent(1)]),
            edge(&[Node::Agent(0), Node::Agent(1)], &[Node::Agent(2)]),
            edge(&[Node::Agent(2)], &[Node::End]),
        ],
    )
}

fn limits(agents: usize) -> ExecLimits {
    ExecLimits {
        max_steps: 100,
        max_failures: 5,
        max_parallel: 8,
        max_tokens: None,
        max_cost: None,
        replaced_steps: None,
        replaced_tokens: None,
        replaced_cost: None,
        per_agent: vec![(Duration::from_secs(5), 2); agents],
        retry_base: Duration::from_millis(1),
        snapshot_every: 2,
    }
}

struct Harness {
    store: StoreHandle,
    topo: Arc<Topology>,
    channels: Arc<Channels>,
    events: Arc<CollectEvents>,
    _cancel: watch::Sender<bool>,
    cancel_rx: watch::Receiver<bool>,
}

impl Harness {
    fn new(store: Box<dyn Store>, topo: Topology) -> Self {
        let (tx, rx) = watch::channel(false);
        Harness {
            store: StoreHandle::spawn(store).unwrap(),
            topo: Arc::new(topo),
            channels: Arc::new(Channels::new(&SpannedMap::default())),
            events: Arc::new(CollectEvents::default()),
            _cancel: tx,
            cancel_rx: rx,
        }
    }

    /// Creates the session and its checkpoint 0; returns the start position.
    async fn start(&self, id: &str, router: &dyn Router) -> Position {
        let sched = Scheduler::new(&self.topo);
        let state = self.channels.initial();
        let inputs = Map::new();
        let (sched_state, _) = sched
            .start(|_, e| router.route(e, &state, &inputs, 0))
            .unwrap();
        let pos = Position {
            state: state.clone(),
            sched: sched_state.clone(),
            runs: vec![0; self.topo.agents.len()],
            ..Position::default()
        };
        let id = id.to_owned();
        let cp = CheckpointRecord {
            session: id.clone(),
            step: 0,
            parent_step: None,
            scheduler: serde_json::to_value(&sched_state).unwrap(),
            snapshot: Some(Value::Object(state)),
            repo_shas: None,
            nodes: vec![],
            created_at: 1,
        };
        self.store
            .call(move |s| {
                s.create_session(&crate::testing::new_session(&id, "t"))?;
                s.commit_checkpoint(&cp)
            })
            .await
            .unwrap();
        pos
    }

    fn executor(
        &self,
        id: &str,
        runner: Arc<dyn NodeRunner>,
        router: Arc<dyn Router>,
        limits: ExecLimits,
    ) -> Executor {
        Executor {
            session: id.into(),
            topo: Arc::clone(&self.topo),
            channels: Arc::clone(&self.channels),
            limits,
            runner,
            router,
            hooks: None,
            store: self.store.clone(),
            events: self.events.clone(),
            inputs: Arc::new(Map::new()),
            cancel: self.cancel_rx.clone(),
        }
    }

    async fn restore(&self, id: &str, step: u64) -> Position {
        let (id, topo, channels) = (
            id.to_owned(),
            Arc::clone(&self.topo),
            Arc::clone(&self.channels),
        );
        self.store
            .call(move |s| Ok(restore(&*s, &id, step, &topo, &channels)))
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn fan_out_join_writes_in_declaration_order_and_checkpoints_each_step() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("s1", &NoRouter).await;
    let runner = FnRunner::new(|c| Ok(says(&format!("{} says hi", c.agent))));
    let exec = h.executor("s1", runner.clone(), Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert_eq!(finish, Finish::Completed { warnings: vec![] });
    let contents: Vec<&str> = pos.state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["a says hi", "b says hi", "c says hi"]);
    assert_eq!(pos.state["agent_outputs"]["c"], json!("c says hi"));
    assert_eq!(pos.sched.step, 2);
    assert_eq!(pos.tokens, 45);
    let cps = h.store.call(|s| s.checkpoints("s1")).await.unwrap();
    assert_eq!(cps.iter().map(|c| c.step).collect::<Vec<_>>(), [0, 1, 2]);
    // Restoring every checkpoint gives what the run had at that point.
    let end = h.restore("s1", 2).await;
    assert_eq!(end.state, pos.state);
    assert_eq!(end.runs, vec![1, 1, 1]);
    let mid = h.restore("s1", 1).await;
    assert_eq!(mid.state["messages"].as_array().unwrap().len(), 2);
    assert_eq!(mid.sched.ready, vec![2]);
}

#[tokio::test]
async fn a_crashed_step_reuses_finished_tasks_on_resume() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("s2", &NoRouter).await;
    // First drive: b fails for good (fatal), a succeeds and is recorded.
    let first = FnRunner::new(|c| {
        if &*c.agent == "b" {
            Err(NodeError::Fatal("boom".into()))
        } else {
            Ok(says(&c.agent))
        }
    });
    let exec = h.executor("s2", first.clone(), Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert!(
        matches!(&finish, Finish::Failed { error } if error.contains("agent `b` failed at step 1: boom")),
        "{finish:?}"
    );
    // Resume from the last checkpoint (0): a is not run again.
    let mut pos = h.restore("s2", 0).await;
    let second = FnRunner::new(|c| Ok(says(&c.agent)));
    let exec = h.executor("s2", second.clone(), Arc::new(NoRouter), limits(3));
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert_eq!(second.calls("a"), 0, "a had finished before the failure");
    assert_eq!(second.calls("b"), 1);
    assert_eq!(second.calls("c"), 1);
    assert!(
        h.events
            .take()
            .iter()
            .any(|e| matches!(e, Event::NodeFinished { node, reused: true, .. } if node == "a"))
    );
}

#[tokio::test]
async fn retryable_errors_back_off_and_the_circuit_breaker_trips() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("s3", &NoRouter).await;
    let flaky = Arc::new(AtomicU32::new(0));
    let f2 = Arc::clone(&flaky);
    let runner = FnRunner::new(move |c| {
        if &*c.agent == "a" && f2.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(NodeError::Retryable("429 overloaded".into()))
        } else {
            Ok(says(&c.agent))
        }
    });
    let exec = h.executor("s3", runner.clone(), Arc::new(NoRouter), limits(3));
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert_eq!(runner.calls("a"), 2);
    assert!(
        h.events
            .take()
            .iter()
            .any(|e| matches!(e, Event::NodeRetry { node, .. } if node == "a"))
    );

    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("s4", &NoRouter).await;
    let always = FnRunner::new(|_| Err(NodeError::Retryable("503".into())));
    let mut l = limits(3);
    l.max_failures = 3;
    let exec = h.executor("s4", always.clone(), Arc::new(NoRouter), l);
    let finish = exec.run(&mut pos).await.unwrap();
    assert!(
        matches!(&finish, Finish::Failed { error } if error.contains("circuit breaker")),
        "{finish:?}"
    );
    assert!(always.calls("a") + always.calls("b") <= 4);
}

#[tokio::test]
async fn loops_run_until_the_condition_says_end_and_limits_stop_cleanly() {
    let topo = Topology::new(
        vec!["writer".into(), "critic".into()],
        vec![
            edge(&[Node::Start], &[Node::Agent(0)]),
            edge(&[Node::Agent(0)], &[Node::Agent(1)]),
            Edge {
                condition: Some("again".into()),
                max_loops: Some(10),
                loop_targets: vec![Node::Agent(0)],
                ..edge(&[Node::Agent(1)], &[Node::Agent(0), Node::End])
            },
        ],
    );
    let h = Harness::new(Box::new(MemoryStore::new()), topo.clone());
    let router = Arc::new(CountRouter {
        back: "writer".into(),
    });
    let mut pos = h.start("l1", &*router).await;
    let exec = h.executor(
        "l1",
        FnRunner::new(|c| Ok(says(&c.agent))),
        router.clone(),
        limits(2),
    );
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert_eq!(pos.state["messages"].as_array().unwrap().len(), 6);
    assert_eq!(pos.runs, vec![3, 3]);

    let h = Harness::new(Box::new(MemoryStore::new()), topo);
    let mut pos = h.start("l2", &*router).await;
    let mut l = limits(2);
    l.max_steps = 3;
    let exec = h.executor("l2", FnRunner::new(|c| Ok(says(&c.agent))), router, l);
    let finish = exec.run(&mut pos).await.unwrap();
    assert!(
        matches!(
            &finish,
            Finish::Stopped {
                limit: StopLimit::MaxSteps {
                    limit: 3,
                    source: LimitSource::Pipeline
                }
            }
        ),
        "{finish:?}"
    );
}

#[tokio::test]
async fn replace_conflicts_fail_the_step_and_keep_earlier_checkpoints() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("c1", &NoRouter).await;
    let runner = FnRunner::new(|c| {
        let mut r = says(&c.agent);
        r.writes = vec![("metadata".into(), json!({"x": 1}))];
        Ok(r)
    });
    // metadata merges: no conflict.
    let exec = h.executor("c1", runner, Arc::new(NoRouter), limits(3));
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    // An unknown channel fails clearly.
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("c2", &NoRouter).await;
    let runner = FnRunner::new(|c| {
        let mut r = says(&c.agent);
        r.writes = vec![("nope".into(), json!(1))];
        Ok(r)
    });
    let exec = h.executor("c2", runner, Arc::new(NoRouter), limits(3));
    let finish = exec.run(&mut pos).await.unwrap();
    assert!(
        matches!(&finish, Finish::Failed { error } if error.contains("unknown state field `nope`")),
        "{finish:?}"
    );
    let cps = h.store.call(|s| s.checkpoints("c2")).await.unwrap();
    assert_eq!(cps.len(), 1, "checkpoint 0 is kept");
}

#[tokio::test]
async fn a_thousand_parallel_agents_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = 1000;
    let mut agents = vec!["split".to_string()];
    agents.extend((0..n).map(|i| format!("w{i}")));
    agents.push("join".into());
    let workers: Vec<Node> = (1..=n).map(Node::Agent).collect();
    let topo = Topology::new(
        agents,
        vec![
            edge(&[Node::Start], &[Node::Agent(0)]),
            edge(&[Node::Agent(0)], &workers),
            edge(&workers, &[Node::Agent(n + 1)]),
            edge(&[Node::Agent(n + 1)], &[Node::End]),
        ],
    );
    let store = SqliteStore::open(dir.path().join("o.db")).unwrap();
    let h = Harness::new(Box::new(store), topo);
    let mut pos = h.start("f1", &NoRouter).await;
    let mut l = limits(n + 2);
    l.max_parallel = 2000;
    let runner = Arc::new(FnRunner {
        f: Box::new(|c| Ok(says(&c.agent))),
        calls: Mutex::new(HashMap::new()),
        delay: Duration::from_millis(50),
    });
    let exec = h.executor("f1", runner, Arc::new(NoRouter), l);
    let t = std::time::Instant::now();
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_eq!(pos.state["messages"].as_array().unwrap().len(), n + 2);
    let end = h.restore("f1", 3).await;
    assert_eq!(end.state, pos.state);
}

#[tokio::test]
async fn a_dropped_cancel_sender_means_never_cancelled() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("d1", &NoRouter).await;
    let runner = FnRunner::new(|c| Ok(says(&c.agent)));
    let mut exec = h.executor("d1", runner, Arc::new(NoRouter), limits(3));
    let (tx, rx) = watch::channel(false);
    drop(tx);
    exec.cancel = rx;
    assert_eq!(
        exec.run(&mut pos).await.unwrap(),
        Finish::Completed { warnings: vec![] }
    );
}

#[tokio::test]
async fn a_panicking_agent_fails_the_step_with_its_message() {
    let h = Harness::new(Box::new(MemoryStore::new()), diamond());
    let mut pos = h.start("s-panic", &NoRouter).await;
    let runner = FnRunner::new(|c| {
        if &*c.agent == "a" {
            panic!("the model client fell over");
        }
        Ok(says(&c.agent))
    });
    let exec = h.executor("s-panic", runner, Arc::new(NoRouter), limits(3));
    match exec.run(&mut pos).await.unwrap() {
        Finish::Failed { error } => assert_eq!(
            error,
            "an agent task crashed at step 1: the model client fell over"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}
