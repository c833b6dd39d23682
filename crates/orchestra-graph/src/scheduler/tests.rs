//! Scheduler unit tests over hand-built topologies.

use super::*;

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

const A: Node = Node::Agent(0);
const B: Node = Node::Agent(1);
const C: Node = Node::Agent(2);
const D: Node = Node::Agent(3);

fn topo(edges: Vec<Edge>) -> Topology {
    Topology::new(
        ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect(),
        edges,
    )
}

fn no_route(_: usize, _: &Edge) -> Result<Vec<String>, String> {
    Err("no condition expected".into())
}

#[test]
fn fan_out_then_join_all_runs_target_once() {
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[A, B], &[C]),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, o) = s.start(no_route).unwrap();
    assert_eq!(o, Outcome::Continue);
    assert_eq!(st.ready, vec![0, 1]);
    assert_eq!(s.advance(&mut st, no_route).unwrap(), Outcome::Continue);
    assert_eq!(st.ready, vec![2]);
    assert_eq!(st.step, 1);
    assert_eq!(
        s.advance(&mut st, no_route).unwrap(),
        Outcome::Done { warnings: vec![] }
    );
    assert!(st.reached_end);
}

#[test]
fn join_all_waits_for_a_slower_branch() {
    // START -> a, b; a -> c; b -> d; [c, a] -> ... use: [a, d] -> c
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[B], &[D]),
        edge(&[A, D], &[C]),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![3], "a arrived, d not yet: c waits");
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![2]);
}

#[test]
fn join_any_runs_once_and_absorbs_later_arrivals() {
    let mut j = edge(&[A, D], &[C]);
    j.join = Join::Any;
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[B], &[D]),
        j,
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(
        st.ready,
        vec![2, 3],
        "a arrived first: c runs, d still runs"
    );
    s.advance(&mut st, no_route).unwrap();
    assert!(
        st.ready.is_empty(),
        "d's arrival is absorbed: c does not run twice"
    );
    assert!(st.reached_end);
}

#[test]
fn conditional_loop_is_bounded_and_then_diverted() {
    let mut cond = edge(&[B], &[A, C]);
    cond.condition = Some("route".into());
    cond.max_loops = Some(2);
    cond.on_max_loops = Some(C);
    cond.loop_targets = vec![A];
    let t = topo(vec![
        edge(&[Node::Start], &[A]),
        edge(&[A], &[B]),
        cond,
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let always_back = |_: usize, _: &Edge| Ok(vec!["a".to_string()]);
    let (mut st, _) = s.start(always_back).unwrap();
    let mut ran = Vec::new();
    while let Outcome::Continue = s.advance(&mut st, always_back).unwrap() {
        ran.push(st.ready.clone());
        assert!(st.step < 20);
    }
    // a b a b a b c : the loop a<-b is taken twice, then diverted to c.
    assert_eq!(
        ran,
        vec![vec![1], vec![0], vec![1], vec![0], vec![1], vec![2]]
    );
    assert_eq!(st.loops.get(&2), Some(&2));

    // What fired, step by step: the loop's rounds, then its bound diverting to `c`.
    let (mut st, _) = s.start(always_back).unwrap();
    let mut rounds = Vec::new();
    loop {
        let mut fired = Vec::new();
        let out = s
            .advance_traced(&mut st, &[], always_back, &mut fired)
            .unwrap();
        assert_eq!(fired.len(), 1, "one edge per step here");
        let f = &fired[0];
        if f.edge == 2 {
            assert_eq!(f.from, B);
            rounds.push((f.targets.clone(), f.loop_round, f.loop_max));
        }
        if out != Outcome::Continue {
            break;
        }
    }
    assert_eq!(
        rounds,
        vec![
            (vec![A], Some(1), Some(2)),
            (vec![A], Some(2), Some(2)),
            (vec![C], None, Some(2)),
        ]
    );
}

#[test]
fn loop_limit_without_on_max_loops_fails_clearly() {
    let mut cond = edge(&[B], &[A, Node::End]);
    cond.condition = Some("route".into());
    cond.max_loops = Some(1);
    cond.loop_targets = vec![A];
    let t = topo(vec![edge(&[Node::Start], &[A]), edge(&[A], &[B]), cond]);
    let s = Scheduler::new(&t);
    let back = |_: usize, _: &Edge| Ok(vec!["a".to_string()]);
    let (mut st, _) = s.start(back).unwrap();
    s.advance(&mut st, back).unwrap();
    s.advance(&mut st, back).unwrap();
    s.advance(&mut st, back).unwrap();
    let err = s.advance(&mut st, back).unwrap_err();
    assert_eq!(
        err,
        SchedError::LoopLimit {
            from: "`b`".into(),
            limit: 1
        }
    );
}

#[test]
fn condition_target_outside_to_is_an_error_naming_both() {
    let mut cond = edge(&[A], &[B, Node::End]);
    cond.condition = Some("pick".into());
    let t = topo(vec![edge(&[Node::Start], &[A]), cond]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    let err = s.advance(&mut st, |_, _| Ok(vec!["c".into()])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "condition `pick` chose `c`, which is not one of its edge's targets (`b`, `END`)"
    );
    assert_eq!(st.step, 0, "a failed step leaves the state untouched");
}

#[test]
fn condition_fan_out_runs_several_targets() {
    let mut cond = edge(&[A], &[B, C, Node::End]);
    cond.condition = Some("pick".into());
    let t = topo(vec![
        edge(&[Node::Start], &[A]),
        cond,
        edge(&[B, C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, |_, _| Ok(vec!["c".into(), "b".into(), "b".into()]))
        .unwrap();
    assert_eq!(st.ready, vec![1, 2]);
}

#[test]
fn barrier_whose_sources_cannot_run_is_reported() {
    // a -> cond -> b or END ; [b, c] -> d ; c is only reachable from b... here c never runs.
    let mut cond = edge(&[A], &[B, Node::End]);
    cond.condition = Some("pick".into());
    let t = topo(vec![
        edge(&[Node::Start], &[A]),
        cond,
        edge(&[B, C], &[D]),
        edge(&[D], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, |_, _| Ok(vec!["b".into()])).unwrap();
    let err = s.advance(&mut st, no_route).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the join into `d` can never fire: `b` arrived, but `c` can no longer run"
    );
}

#[test]
fn state_round_trips_through_json() {
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[A, B], &[C]),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (st, _) = s.start(no_route).unwrap();
    let mut st2 = st.clone();
    st2.arrived.entry(1).or_default().insert(A);
    for x in [st, st2] {
        let json = serde_json::to_string(&x).unwrap();
        let back: SchedState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, x);
    }
}

fn quorum(sources: &[Node], target: Node, n: u32) -> Edge {
    Edge {
        join: Join::Count(n),
        ..edge(sources, &[target])
    }
}

#[test]
fn a_quorum_runs_its_target_once_when_enough_sources_finished_together() {
    let t = topo(vec![
        edge(&[Node::Start], &[A, B, C]),
        quorum(&[A, B, C], D, 2),
        edge(&[D], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    assert_eq!(s.advance(&mut st, no_route).unwrap(), Outcome::Continue);
    assert_eq!(st.ready, vec![3]);
    assert!(
        st.arrived.is_empty(),
        "the third arrival of the step is absorbed"
    );
    assert_eq!(
        s.advance(&mut st, no_route).unwrap(),
        Outcome::Done { warnings: vec![] }
    );
}

#[test]
fn a_quorum_fires_on_the_nth_arrival_and_counts_later_ones_for_the_next_run() {
    // a and b finish in step 1 (the quorum of 2 fires), c only in step 2.
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[B], &[C]),
        quorum(&[A, B, C], D, 2),
        edge(&[D], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![2, 3], "c and d run in step 2");
    // The count survives a checkpoint (the state is stored as JSON).
    let stored = serde_json::to_string(&st).unwrap();
    let mut st: SchedState = serde_json::from_str(&stored).unwrap();
    let o = s.advance(&mut st, no_route).unwrap();
    assert_eq!(
        o,
        Outcome::Done { warnings: vec![] },
        "no warning for a late arrival"
    );
    assert_eq!(st.arrived.get(&2).map(BTreeSet::len), Some(1));
}

#[test]
fn a_quorum_that_cannot_be_reached_is_an_error() {
    let t = topo(vec![
        edge(&[Node::Start], &[A]),
        quorum(&[A, B], C, 2),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    let err = s.advance(&mut st, no_route).unwrap_err();
    assert!(matches!(err, SchedError::UnsatisfiableJoin { .. }), "{err}");
}

#[test]
fn an_edge_into_fail_ends_the_session_as_failed() {
    let t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[A], &[Node::Fail]),
        edge(&[B], &[C]),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    assert_eq!(
        s.advance(&mut st, no_route).unwrap(),
        Outcome::Failed { edge: 1 }
    );
    assert_eq!(st.failed, Some(1));
    assert!(st.ready.is_empty(), "nothing runs after FAIL");
    let back: SchedState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
    assert_eq!(back, st);
}

#[test]
fn a_failed_agent_goes_on_at_its_on_error_agent() {
    let mut t = topo(vec![
        edge(&[Node::Start], &[A, B]),
        edge(&[A], &[B]),
        edge(&[B], &[Node::End]),
        edge(&[C], &[Node::End]),
    ]);
    t.on_error = vec![Some(C), None, None, None];
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    assert_eq!(
        s.advance_after_errors(&mut st, &[0], no_route).unwrap(),
        Outcome::Continue
    );
    assert_eq!(
        st.ready,
        vec![2],
        "a's edge to b is not taken; c handles the error"
    );
    // Without errors the same step follows a's edges.
    let (mut st, _) = s.start(no_route).unwrap();
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![1]);
}

#[test]
fn a_for_each_edge_marks_its_target_as_a_fan_out_for_one_step() {
    let t = topo(vec![
        edge(&[Node::Start], &[A]),
        Edge {
            for_each: Some("subtopics".into()),
            ..edge(&[A], &[B])
        },
        edge(&[B], &[C]),
        edge(&[C], &[Node::End]),
    ]);
    let s = Scheduler::new(&t);
    let (mut st, _) = s.start(no_route).unwrap();
    assert!(st.for_each.is_empty(), "START -> a is a plain edge");
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![1]);
    assert_eq!(
        st.for_each.get(&1),
        Some(&1),
        "b runs one task per item of edge 1's list"
    );
    // Stored with the checkpoint and read back.
    let json = serde_json::to_string(&st).unwrap();
    assert!(json.contains("\"for_each\":{\"1\":1}"), "{json}");
    let back: SchedState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    // b finishing (all its instances) fires b -> c, a plain step.
    s.advance(&mut st, no_route).unwrap();
    assert_eq!(st.ready, vec![2]);
    assert!(st.for_each.is_empty(), "the fan-out lasts one step");
    let json = serde_json::to_string(&st).unwrap();
    assert!(!json.contains("for_each"), "{json}");
}

#[test]
fn a_checkpoint_of_scheduler_format_2_reads_without_fan_outs() {
    let old = r#"{"step":3,"ready":[1],"loops":{"2":1}}"#;
    let st: SchedState = serde_json::from_str(old).unwrap();
    assert_eq!(st.ready, vec![1]);
    assert!(st.for_each.is_empty());
}
