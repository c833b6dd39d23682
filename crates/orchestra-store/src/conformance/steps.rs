//! The suite's per-step checks: task records, checkpoints and snapshots, restore points, usage,
//! messages, integer ranges and JSON fidelity.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use std::time::Duration;

use serde_json::{Value, json};

use super::{Ctx, START, checkpoint, new_session, node_run, task};
use crate::{ChatMessageRecord, CheckpointRecord, SessionFilter, Store, StoreError, TaskStatus};

pub(super) fn task_records_round_trip_and_order(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let t = cx.id("t");
    s.create_session(&new_session(&sid, 1)).unwrap();
    s.create_session(&new_session(&t, 1)).unwrap();
    let mut failed = task(&sid, 2, 0, "b");
    failed.status = TaskStatus::Error;
    failed.error = Some("provider returned 500".into());
    failed.run_index = 3;
    // Inserted out of order, across two batches and two sessions.
    s.record_tasks(&[task(&sid, 3, 1, "c"), failed.clone(), task(&t, 2, 0, "x")])
        .unwrap();
    s.record_tasks(&[task(&sid, 3, 0, "a"), task(&sid, 1, 0, "a")])
        .unwrap();

    let all = s.task_records(&sid, 0..=u64::MAX).unwrap();
    let keys: Vec<(u64, u32)> = all.iter().map(|t| (t.step, t.task_idx)).collect();
    assert_eq!(keys, [(1, 0), (2, 0), (3, 0), (3, 1)]);
    assert_eq!(all[1], failed);
    assert_eq!(all[3], task(&sid, 3, 1, "c"));
    assert_eq!(s.task_records(&sid, 2..=3).unwrap().len(), 3);
    assert_eq!(s.task_records(&sid, 2..=2).unwrap(), [failed]);
    assert!(s.task_records(&sid, 4..=9).unwrap().is_empty());
    #[expect(
        clippy::reversed_empty_ranges,
        reason = "an empty range must be accepted"
    )]
    let empty = s.task_records(&sid, 3..=1).unwrap();
    assert!(empty.is_empty());
    assert_eq!(s.task_records(&t, 0..=9).unwrap(), [task(&t, 2, 0, "x")]);
}

pub(super) fn task_records_replace_and_atomic_batches(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let nope = cx.id("nope");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let mut partial = task(&sid, 4, 1, "writer");
    partial.status = TaskStatus::Error;
    partial.error = Some("killed".into());
    s.record_tasks(&[task(&sid, 4, 0, "reader"), partial])
        .unwrap();
    let rerun = task(&sid, 4, 1, "writer");
    s.record_tasks(std::slice::from_ref(&rerun)).unwrap();
    let got = s.task_records(&sid, 4..=4).unwrap();
    assert_eq!(got.len(), 2, "the same key replaces, never duplicates");
    assert_eq!(got[1], rerun);

    let err = s
        .record_tasks(&[task(&sid, 5, 0, "a"), task(&nope, 5, 0, "a")])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref id } if *id == nope),
        "{err}"
    );
    let err = s
        .record_results(&[task(&sid, 6, 0, "a")], &[node_run(&nope, 6, "a", 1, 1)])
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(
        s.task_records(&sid, 5..=6).unwrap().is_empty(),
        "a failed batch stores nothing"
    );
    assert!(s.node_runs(&sid).unwrap().is_empty());
    s.record_results(&[], &[]).unwrap();
}

pub(super) fn a_step_commits_its_records_and_checkpoint_together(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let nope = cx.id("nope");
    s.create_session(&new_session(&sid, 1)).unwrap();
    s.commit_checkpoint(&checkpoint(&sid, 0, Some(json!({"messages": []}))))
        .unwrap();
    let (t1, r1) = (task(&sid, 1, 0, "a"), node_run(&sid, 1, "a", 3, 4));
    s.commit_step(
        std::slice::from_ref(&t1),
        std::slice::from_ref(&r1),
        &checkpoint(&sid, 1, None),
    )
    .unwrap();
    assert_eq!(s.task_records(&sid, 1..=1).unwrap(), [t1]);
    assert_eq!(s.node_runs(&sid).unwrap(), [r1]);
    assert_eq!(s.checkpoints(&sid).unwrap().len(), 2);

    // A refused checkpoint keeps the records, as separate calls would.
    let t2 = task(&sid, 2, 0, "b");
    let err = s
        .commit_step(std::slice::from_ref(&t2), &[], &checkpoint(&sid, 1, None))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::CheckpointExists { step: 1, .. }),
        "{err}"
    );
    assert_eq!(s.task_records(&sid, 2..=2).unwrap(), [t2]);
    let mut orphan = checkpoint(&sid, 3, None);
    orphan.parent_step = Some(2);
    let err = s.commit_step(&[], &[], &orphan).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRecord { .. }), "{err}");

    // Records that cannot be stored take the checkpoint down with them.
    let err = s
        .commit_step(&[task(&nope, 2, 0, "b")], &[], &checkpoint(&sid, 2, None))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert_eq!(s.checkpoints(&sid).unwrap().len(), 2);
    s.commit_step(&[], &[], &checkpoint(&sid, 2, None)).unwrap();
    assert_eq!(s.checkpoints(&sid).unwrap().len(), 3);
}

pub(super) fn checkpoints_and_snapshots(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let cp0 = checkpoint(&sid, 0, Some(json!({"messages": []})));
    let mut cp1 = checkpoint(&sid, 1, None);
    cp1.repo_shas = Some(json!({"app": "0123abcd"}));
    let cp2 = checkpoint(&sid, 2, Some(json!({"messages": [1, 2]})));
    let cp3 = checkpoint(&sid, 3, None);
    s.commit_checkpoint(&cp0).unwrap();
    cx.advance(999);
    s.commit_checkpoint(&cp1).unwrap();
    let updated = |s: &dyn Store| s.session(&sid).unwrap().unwrap().updated_at;
    assert_eq!(updated(s), START, "updated_at moves at most once a second");
    cx.advance(1);
    s.commit_checkpoint(&cp2).unwrap();
    assert_eq!(updated(s), START + 1_000);
    cx.advance(500);
    s.commit_checkpoint(&cp3).unwrap();
    assert_eq!(updated(s), START + 1_000);
    assert_eq!(s.checkpoint(&sid, 1).unwrap().as_ref(), Some(&cp1));
    assert_eq!(s.checkpoint(&sid, 2).unwrap().as_ref(), Some(&cp2));
    assert_eq!(s.checkpoint(&sid, 9).unwrap(), None);

    let infos = s.checkpoints(&sid).unwrap();
    let summary: Vec<(u64, Option<u64>, bool, bool)> = infos
        .iter()
        .map(|i| (i.step, i.parent_step, i.has_snapshot, i.has_repo_shas))
        .collect();
    assert_eq!(
        summary,
        [
            (0, None, true, false),
            (1, Some(0), false, true),
            (2, Some(1), true, false),
            (3, Some(2), false, false)
        ]
    );
    assert_eq!(
        (infos[3].nodes.as_slice(), infos[3].created_at),
        (["a3".to_owned()].as_slice(), 2_003)
    );

    assert_eq!(
        s.latest_snapshot_at_or_before(&sid, 1).unwrap(),
        Some(cp0.clone())
    );
    assert_eq!(
        s.latest_snapshot_at_or_before(&sid, 2).unwrap(),
        Some(cp2.clone())
    );
    assert_eq!(s.latest_snapshot_at_or_before(&sid, 99).unwrap(), Some(cp2));
    assert_eq!(s.latest_snapshot_at_or_before(&sid, 0).unwrap(), Some(cp0));

    let dup = s.commit_checkpoint(&checkpoint(&sid, 2, None)).unwrap_err();
    assert!(
        matches!(dup, StoreError::CheckpointExists { step: 2, .. }),
        "{dup}"
    );
    assert_eq!(
        dup.to_string(),
        format!("checkpoint 2 of session `{sid}` already exists")
    );
}

pub(super) fn checkpoint_parent_rules(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    // The first checkpoint of a session may start anywhere (a fork starts at its parent's step).
    s.commit_checkpoint(&CheckpointNoParent::at(&sid, 5))
        .unwrap();
    let none_again = s
        .commit_checkpoint(&CheckpointNoParent::at(&sid, 6))
        .unwrap_err();
    assert!(
        none_again.to_string().contains("has no parent step"),
        "{none_again}"
    );
    let missing = s.commit_checkpoint(&checkpoint(&sid, 8, None)).unwrap_err();
    assert!(
        matches!(missing, StoreError::InvalidRecord { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("parent step 7"), "{missing}");
    let mut backwards = checkpoint(&sid, 9, None);
    backwards.parent_step = Some(9);
    assert!(
        s.commit_checkpoint(&backwards)
            .unwrap_err()
            .to_string()
            .contains("not an earlier step")
    );
    let mut skip = checkpoint(&sid, 9, None);
    skip.parent_step = Some(5);
    s.commit_checkpoint(&skip).unwrap();
    assert_eq!(
        s.checkpoints(&sid)
            .unwrap()
            .iter()
            .map(|c| c.step)
            .collect::<Vec<_>>(),
        [5, 9]
    );
}

struct CheckpointNoParent;

impl CheckpointNoParent {
    fn at(session: &str, step: u64) -> CheckpointRecord {
        let mut cp = checkpoint(session, step, Some(json!({"n": step})));
        cp.parent_step = None;
        cp
    }
}

pub(super) fn restore_point_is_snapshot_plus_later_tasks(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    s.commit_checkpoint(&checkpoint(&sid, 0, Some(json!({"n": 0}))))
        .unwrap();
    for step in 1..=5 {
        s.record_tasks(&[task(&sid, step, 0, "a"), task(&sid, step, 1, "b")])
            .unwrap();
        let snap = (step == 3).then(|| json!({"n": 3}));
        s.commit_checkpoint(&checkpoint(&sid, step, snap)).unwrap();
    }
    // Pending writes of an unfinished step 6 must not leak into restores of step 5.
    s.record_tasks(&[task(&sid, 6, 0, "a")]).unwrap();

    let rp = s.restore_point(&sid, 5).unwrap().unwrap();
    assert_eq!(rp.target, checkpoint(&sid, 5, None));
    assert_eq!(
        (rp.base.step, rp.base.snapshot.clone()),
        (3, Some(json!({"n": 3})))
    );
    let keys: Vec<(u64, u32)> = rp.tasks.iter().map(|t| (t.step, t.task_idx)).collect();
    assert_eq!(keys, [(4, 0), (4, 1), (5, 0), (5, 1)]);

    let at3 = s.restore_point(&sid, 3).unwrap().unwrap();
    assert_eq!((at3.base.step, at3.tasks.len()), (3, 0));
    let at2 = s.restore_point(&sid, 2).unwrap().unwrap();
    assert_eq!((at2.base.step, at2.tasks.len()), (0, 4));
    assert_eq!(s.restore_point(&sid, 6).unwrap(), None);
}

pub(super) fn node_runs_and_messages(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let mut failed = node_run(&sid, 2, "critic", 7, 0);
    failed.status = TaskStatus::Error;
    failed.error = Some("timeout".into());
    failed.retries = 3;
    s.record_node_run(&node_run(&sid, 2, "writer", 1, 2))
        .unwrap();
    s.record_results(
        &[task(&sid, 1, 0, "planner")],
        &[node_run(&sid, 1, "planner", 3, 4), failed.clone()],
    )
    .unwrap();
    let runs = s.node_runs(&sid).unwrap();
    let order: Vec<(u64, &str)> = runs.iter().map(|r| (r.step, r.node.as_str())).collect();
    assert_eq!(
        order,
        [(1, "planner"), (2, "writer"), (2, "critic")],
        "by step, then insertion"
    );
    assert_eq!(runs[2], failed);

    let msg = |run_index, turn, role: &str, content: &str| ChatMessageRecord {
        session: sid.clone(),
        node: "planner".into(),
        run_index,
        turn,
        role: role.into(),
        content: content.into(),
        created_at: 5,
    };
    for m in [
        msg(1, 0, "user", "again"),
        msg(0, 1, "user", "/approve"),
        msg(0, 0, "assistant", "plan?"),
        msg(0, 0, "user", "looks ok"),
    ] {
        s.append_message(&m).unwrap();
    }
    let mut other = msg(0, 0, "user", "elsewhere");
    other.node = "critic".into();
    s.append_message(&other).unwrap();
    let contents: Vec<String> = s
        .messages(&sid, "planner")
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, ["plan?", "looks ok", "/approve", "again"]);
    assert_eq!(s.messages(&sid, "critic").unwrap(), [other]);
    assert!(s.messages(&sid, "nobody").unwrap().is_empty());
}

pub(super) fn node_runs_keep_cache_tokens_and_costs(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    // A priced run that read and wrote the prompt cache; a free one (a price of 0 is a known
    // cost); one of a model without a price; a failed attempt that spent tokens first.
    let mut cached = node_run(&sid, 1, "reviewer", 12_000, 300);
    (cached.cache_read_tokens, cached.cache_write_tokens) = (9_000, 2_500);
    cached.cost_usd = Some(0.017_437_5);
    let mut free = node_run(&sid, 1, "local", 50, 5);
    free.cost_usd = Some(0.0);
    let unpriced = node_run(&sid, 2, "scripted", 40, 4);
    let mut failed = node_run(&sid, 2, "reviewer", 900, 0);
    failed.status = TaskStatus::Error;
    failed.error = Some("overloaded".into());
    (failed.cache_read_tokens, failed.cost_usd) = (800, Some(1e-9));
    s.record_results(
        &[task(&sid, 1, 0, "reviewer")],
        &[cached.clone(), free.clone()],
    )
    .unwrap();
    s.record_node_run(&unpriced).unwrap();
    s.record_node_run(&failed).unwrap();
    let runs = s.node_runs(&sid).unwrap();
    assert_eq!(
        runs,
        [cached, free, unpriced, failed],
        "exactly as recorded"
    );
    assert_eq!(
        runs[2].cost_usd, None,
        "an unknown cost stays unknown, not 0"
    );
    assert_eq!(runs[1].cost_usd, Some(0.0));

    let summary = s
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .find(|x| x.id == sid)
        .unwrap();
    let cost = summary.cost;
    assert_eq!((cost.priced_runs, cost.unpriced_runs), (3, 1));
    assert!(
        (cost.known_usd - (0.017_437_5 + 1e-9)).abs() < 1e-12,
        "{cost:?}"
    );
    assert!(cost.is_partial());
    assert_eq!(cost.usd(), Some(cost.known_usd));
    assert_eq!((summary.tokens_in, summary.tokens_out), (12_990, 309));

    // A session whose runs all lack a price has an unknown cost; one without runs costs 0.
    let other = cx.id("other");
    s.create_session(&new_session(&other, 2)).unwrap();
    let empty = s
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .find(|x| x.id == other)
        .unwrap();
    assert_eq!(empty.cost.usd(), Some(0.0));
    s.record_node_run(&node_run(&other, 1, "scripted", 1, 1))
        .unwrap();
    let unknown = s
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .find(|x| x.id == other)
        .unwrap();
    assert_eq!(unknown.cost.usd(), None);
    assert!(!unknown.cost.is_partial());

    // What cannot be a cost is refused, and nothing of it is stored.
    for bad in [-0.5, f64::NAN, f64::INFINITY] {
        let mut run = node_run(&sid, 3, "bad", 1, 1);
        run.cost_usd = Some(bad);
        let err = s.record_node_run(&run).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidRecord { reason, .. } if reason.contains("cost_usd")),
            "{bad}: {err}"
        );
    }
    let mut run = node_run(&sid, 3, "bad", 1, 1);
    run.cache_write_tokens = u64::MAX;
    assert!(matches!(
        s.record_node_run(&run),
        Err(StoreError::OutOfRange {
            what: "cache_write_tokens",
            ..
        })
    ));
    assert_eq!(s.node_runs(&sid).unwrap().len(), 4);
}

pub(super) fn numbers_out_of_range_are_refused(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let t = cx.id("t");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let huge = u64::MAX;
    let err = s.record_tasks(&[task(&sid, huge, 0, "a")]).unwrap_err();
    assert!(
        matches!(err, StoreError::OutOfRange { what: "step", value } if value == huge),
        "{err}"
    );
    let mut run = node_run(&sid, 1, "a", 1, 1);
    run.tokens_out = huge;
    assert!(matches!(
        s.record_node_run(&run),
        Err(StoreError::OutOfRange {
            what: "tokens_out",
            ..
        })
    ));
    assert!(matches!(
        s.create_session(&new_session(&t, huge)),
        Err(StoreError::OutOfRange {
            what: "created_at",
            ..
        })
    ));
    assert_eq!(s.session(&t).unwrap(), None);
    // The largest storable values are fine, and so is an unbounded lease.
    let max = i64::MAX.unsigned_abs();
    s.record_tasks(&[task(&sid, max, 0, "a")]).unwrap();
    assert_eq!(s.task_records(&sid, max..=huge).unwrap().len(), 1);
    assert!(
        s.acquire_lease(&sid, "o", Duration::MAX)
            .unwrap()
            .is_acquired()
    );
}

pub(super) fn json_payloads_come_back_exactly(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    let payload = json!({
        "zeta": 1, "alpha": [1.5, -0.0, 1e300, 18446744073709551615_u64, -9223372036854775808_i64],
        "text": "naïve ✓ \u{0} \"quoted\"\n", "nested": {"b": null, "a": {"y": true, "x": false}}
    });
    let mut ns = new_session(&sid, 1);
    // Text is kept byte for byte, spacing included.
    ns.resolved = format!(" {} ", serde_json::to_string_pretty(&payload).unwrap());
    ns.inputs = Value::Null;
    s.create_session(&ns).unwrap();
    let mut t = task(&sid, 1, 0, "a");
    t.writes = payload.clone();
    t.output = json!("plain string");
    s.record_tasks(std::slice::from_ref(&t)).unwrap();
    let mut cp = checkpoint(&sid, 0, Some(payload.clone()));
    cp.scheduler = payload.clone();
    cp.repo_shas = Some(json!({}));
    s.commit_checkpoint(&cp).unwrap();
    s.set_session_meta(&sid, "weird key \"'.$[0]", &payload)
        .unwrap();

    let got = s.session(&sid).unwrap().unwrap();
    let text = |v: &Value| serde_json::to_string(v).unwrap();
    assert_eq!(got.resolved, ns.resolved);
    assert_eq!(got.inputs, Value::Null);
    assert_eq!(got.meta.get("weird key \"'.$[0]"), Some(&payload));
    assert_eq!(s.task_records(&sid, 1..=1).unwrap(), [t]);
    let back = s.checkpoint(&sid, 0).unwrap().unwrap();
    assert_eq!(text(back.snapshot.as_ref().unwrap()), text(&payload));
    assert_eq!(back, cp);
}
