//! The suite's session-level checks: records, prefixes, listings, status, meta, leases, deletion.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use std::time::Duration;

use serde_json::{Value, json};

use super::{Ctx, START, checkpoint, new_session, node_run, task};
use crate::{
    ChatMessageRecord, LeaseOutcome, SessionFilter, SessionPipeline, SessionStatus, Store,
    StoreError,
};

pub(super) fn session_round_trip(s: &mut dyn Store, cx: &Ctx) {
    let (s0, s1, s2) = (cx.id("s-0"), cx.id("s-1"), cx.id("s-2"));
    let mut ns = new_session(&s1, 42);
    ns.parent_session = Some(s0.clone());
    ns.parent_checkpoint = Some(7);
    s.create_session(&ns).unwrap();
    let r = s.session(&s1).unwrap().unwrap();
    assert_eq!(
        (r.id.as_str(), r.name.as_deref(), r.pipeline.as_str()),
        (
            s1.as_str(),
            Some(format!("name of {s1}").as_str()),
            "pr-review"
        )
    );
    assert_eq!(r.pipeline_path, ns.pipeline_path);
    assert_eq!(r.pipeline_source, ns.pipeline_source);
    assert_eq!(r.resolved, ns.resolved);
    assert_eq!(r.pipeline_hash, ns.pipeline_hash);
    assert_eq!(r.inputs, ns.inputs);
    assert_eq!(
        (r.parent_session.as_deref(), r.parent_checkpoint),
        (Some(s0.as_str()), Some(7))
    );
    assert_eq!(r.created_at, 42);
    assert_eq!(r.status, SessionStatus::Created);
    assert_eq!(r.error, None);
    assert_eq!(r.updated_at, cx.now());
    assert!(r.meta.is_empty());
    assert_eq!((r.lease_owner, r.lease_until), (None, None));

    let again = s.create_session(&new_session(&s1, 43)).unwrap_err();
    assert!(
        matches!(again, StoreError::AlreadyExists { ref id } if *id == s1),
        "{again}"
    );
    assert_eq!(s.session(&s1).unwrap().unwrap().created_at, 42);
    assert_eq!(s.session(&s2).unwrap(), None);
}

pub(super) fn find_session_by_prefix(s: &mut dyn Store, cx: &Ctx) {
    for id in ["ab", "abc1", "abc2", "x_1", "xy1"] {
        s.create_session(&new_session(&cx.id(id), 1)).unwrap();
    }
    assert_eq!(
        s.find_session(&cx.id("ab")).unwrap().id,
        cx.id("ab"),
        "an exact id wins over prefixes"
    );
    assert_eq!(s.find_session(&cx.id("abc1")).unwrap().id, cx.id("abc1"));
    assert_eq!(
        s.find_session(&cx.id("x")).err().map(|e| e.to_string()),
        Some(format!(
            "session `{}` is ambiguous: it matches {}, {}; give more of the id",
            cx.id("x"),
            cx.id("x_1"),
            cx.id("xy1")
        ))
    );
    assert_eq!(
        s.find_session(&cx.id("x_")).unwrap().id,
        cx.id("x_1"),
        "`_` is not a wildcard"
    );
    match s.find_session(&cx.id("abc")) {
        Err(StoreError::Ambiguous { prefix, candidates }) => {
            assert_eq!(prefix, cx.id("abc"));
            assert_eq!(candidates, [cx.id("abc1"), cx.id("abc2")]);
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    match s.find_session(&cx.id("zz")) {
        Err(e @ StoreError::NotFound { .. }) => {
            assert_eq!(
                e.to_string(),
                format!("no session matches `{}`", cx.id("zz"))
            )
        }
        other => panic!("expected not found, got {other:?}"),
    }
    // As a wildcard, `%` would match all five sessions of the case.
    assert!(
        matches!(
            s.find_session(&cx.id("%")),
            Err(StoreError::NotFound { .. })
        ),
        "`%` is not a wildcard"
    );
    assert!(matches!(
        s.find_session(""),
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) fn find_session_by_tail(s: &mut dyn Store, cx: &Ctx) {
    // Tails unique to this run (a shared database holds other runs' sessions).
    let u = cx.id("").replace('-', "");
    let tail = |t: &str| format!("{u}{t}");
    let (a, b, c) = (
        cx.id(&format!("x-{}", tail("7e2c63"))),
        cx.id(&format!("x-{}", tail("7e2d00"))),
        cx.id(&format!("y-{}", tail("ff01"))),
    );
    for id in [&a, &b, &c] {
        s.create_session(&new_session(id, 1)).unwrap();
    }
    assert_eq!(
        s.find_session(&tail("7e2c63")).unwrap().id,
        a,
        "the whole tail"
    );
    assert_eq!(
        s.find_session(&tail("7e2c")).unwrap().id,
        a,
        "a prefix of the tail"
    );
    assert_eq!(s.find_session(&tail("ff")).unwrap().id, c);
    assert_eq!(
        s.find_session(&tail("7e2")).err().map(|e| e.to_string()),
        Some(format!(
            "session `{}` is ambiguous: it matches {a}, {b}; give more of the id",
            tail("7e2")
        ))
    );
    // A query both a prefix of one id and a tail of another is ambiguous too. (This id does
    // not start with the run's prefix, but is unique to the run all the same.)
    let d = format!("{}-z", tail("7e2c"));
    s.create_session(&new_session(&d, 1)).unwrap();
    match s.find_session(&tail("7e2c")) {
        Err(StoreError::Ambiguous { candidates, .. }) => {
            let mut expected = vec![a.clone(), d.clone()];
            expected.sort();
            assert_eq!(candidates, expected);
        }
        other => panic!("expected ambiguous, got {other:?}"),
    }
    for missing in [
        tail("7e2c63x"),
        tail("7e2_63"),
        tail("7e2%"),
        format!("x-{}", tail("7e2c63")),
    ] {
        assert!(
            matches!(s.find_session(&missing), Err(StoreError::NotFound { .. })),
            "`{missing}` is neither a prefix nor the start of a tail"
        );
    }
}

pub(super) fn list_sessions_filters_and_totals(s: &mut dyn Store, cx: &Ctx) {
    // The case's sessions have pipelines of their own, so that the filters by pipeline (and
    // the limit, which needs one) see no other sessions of a shared database.
    let (old, mid, new) = (cx.id("old"), cx.id("mid"), cx.id("new"));
    let (pipeline, other_pipeline) = (cx.id("pr-review"), cx.id("other"));
    let mut ns = new_session(&old, 100);
    ns.pipeline = pipeline.clone();
    s.create_session(&ns).unwrap();
    cx.advance(1_000);
    let mut other = new_session(&mid, 200);
    other.pipeline = other_pipeline.clone();
    s.create_session(&other).unwrap();
    let mut ns = new_session(&new, 300);
    ns.pipeline = pipeline.clone();
    s.create_session(&ns).unwrap();
    s.commit_checkpoint(&checkpoint(&new, 0, Some(json!({}))))
        .unwrap();
    s.commit_checkpoint(&checkpoint(&new, 1, None)).unwrap();
    s.commit_checkpoint(&checkpoint(&new, 2, None)).unwrap();
    s.record_results(
        &[],
        &[
            node_run(&new, 1, "a", 100, 10),
            node_run(&new, 2, "b", 5, 1),
        ],
    )
    .unwrap();
    s.set_status(&old, SessionStatus::Failed, Some("boom"))
        .unwrap();
    s.acquire_lease(&new, "7@host", Duration::from_secs(60))
        .unwrap();
    s.acquire_lease(&mid, "8@host", Duration::from_secs(1))
        .unwrap();
    cx.advance(2_000);

    let mut all = s.list_sessions(&SessionFilter::default()).unwrap();
    all.retain(|x| cx.owns(&x.id));
    let ids: Vec<&str> = all.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(
        ids,
        [new.as_str(), mid.as_str(), old.as_str()],
        "newest first"
    );
    let first = &all[0];
    assert_eq!(
        (
            first.steps,
            first.checkpoints,
            first.tokens_in,
            first.tokens_out
        ),
        (2, 3, 105, 11)
    );
    assert_eq!(first.lease_owner.as_deref(), Some("7@host"));
    assert_eq!(all[1].lease_owner, None, "an expired lease is not shown");
    assert_eq!(
        (all[1].steps, all[1].checkpoints, all[1].tokens_in),
        (0, 0, 0)
    );
    assert_eq!(
        (all[2].status, all[2].error.as_deref()),
        (SessionStatus::Failed, Some("boom"))
    );
    assert_eq!(all[2].name, Some(format!("name of {old}")));
    assert_eq!(all[2].pipeline, pipeline);

    // The case's sessions passing `f`, in the order listed.
    let ids = |f: SessionFilter| -> Vec<String> {
        s.list_sessions(&f)
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .filter(|id| cx.owns(id))
            .collect()
    };
    assert_eq!(
        ids(SessionFilter {
            statuses: vec![SessionStatus::Failed, SessionStatus::Paused],
            ..Default::default()
        }),
        [old.as_str()]
    );
    assert_eq!(
        ids(SessionFilter {
            pipeline: Some(other_pipeline),
            ..Default::default()
        }),
        [mid.as_str()]
    );
    assert_eq!(
        ids(SessionFilter {
            pipeline: Some(pipeline.clone()),
            limit: Some(2),
            ..Default::default()
        }),
        [new.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(SessionFilter {
            pipeline: Some(pipeline),
            limit: Some(1),
            ..Default::default()
        }),
        [new.as_str()],
        "the limit keeps the newest"
    );
    // "old" was updated by set_status after the clock moved; "mid" not since its creation.
    assert_eq!(
        ids(SessionFilter {
            updated_before: Some(START + 1_000),
            ..Default::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(SessionFilter {
            updated_before: Some(START + 1_001),
            ..Default::default()
        }),
        [new.as_str(), mid.as_str(), old.as_str()]
    );
    assert_eq!(
        ids(SessionFilter {
            statuses: vec![SessionStatus::Created],
            updated_before: Some(START + 5_000),
            ..Default::default()
        }),
        [new.as_str(), mid.as_str()]
    );
}

pub(super) fn status_and_meta(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    cx.advance(5);
    s.set_status(&sid, SessionStatus::Running, None).unwrap();
    let r = s.session(&sid).unwrap().unwrap();
    assert_eq!(
        (r.status, r.updated_at),
        (SessionStatus::Running, START + 5)
    );
    s.set_status(&sid, SessionStatus::Failed, Some("node critic failed"))
        .unwrap();
    assert_eq!(
        s.session(&sid).unwrap().unwrap().error.as_deref(),
        Some("node critic failed")
    );
    s.set_status(&sid, SessionStatus::Running, None).unwrap();
    assert_eq!(
        s.session(&sid).unwrap().unwrap().error,
        None,
        "None clears the error"
    );

    cx.advance(5);
    s.set_session_meta(&sid, "branches", &json!({"app": "orchestra/pr-review/s"}))
        .unwrap();
    s.set_session_meta(&sid, "note", &json!("x")).unwrap();
    s.set_session_meta(&sid, "note", &json!(["y"])).unwrap();
    let r = s.session(&sid).unwrap().unwrap();
    assert_eq!(
        Value::Object(r.meta),
        json!({"branches": {"app": "orchestra/pr-review/s"}, "note": ["y"]})
    );
    assert_eq!(r.updated_at, START + 10);
}

pub(super) fn a_session_goes_on_with_another_pipeline(s: &mut dyn Store, cx: &Ctx) {
    let (sid, other) = (cx.id("s"), cx.id("other"));
    s.create_session(&new_session(&sid, 1)).unwrap();
    s.create_session(&new_session(&other, 1)).unwrap();
    s.set_session_meta(&sid, "git", &json!({"a": 1})).unwrap();
    cx.advance(7);
    // Bigger than the first, with text that JSON and SQL quote.
    let resolved = format!(
        r#"{{"name": "fixed", "x": "{}", "q": "'\"$"}}"#,
        "y".repeat(70_000)
    );
    let p = SessionPipeline {
        pipeline: "fixed".into(),
        pipeline_path: "pipelines/fixed.yaml".into(),
        pipeline_source: "name: fixed\nagents: {}\n".into(),
        resolved: resolved.clone(),
        pipeline_hash: "h2".into(),
    };
    s.set_session_pipeline(&sid, &p).unwrap();
    let r = s.session(&sid).unwrap().unwrap();
    assert_eq!(
        (
            r.pipeline.as_str(),
            r.pipeline_path.as_str(),
            r.pipeline_source.as_str(),
            r.pipeline_hash.as_str()
        ),
        (
            "fixed",
            "pipelines/fixed.yaml",
            "name: fixed\nagents: {}\n",
            "h2"
        )
    );
    assert_eq!(r.resolved, resolved);
    assert_eq!(r.updated_at, START + 7);
    assert_eq!(r.meta.get("git"), Some(&json!({"a": 1})), "meta is kept");
    assert_eq!(r.status, SessionStatus::Created, "the status is kept");
    let o = s.session(&other).unwrap().unwrap();
    assert_eq!(
        (o.pipeline.as_str(), o.resolved.as_str()),
        ("pr-review", new_session(&other, 1).resolved.as_str()),
        "other sessions are not touched"
    );
    assert!(matches!(
        s.set_session_pipeline(&cx.id("ghost"), &p),
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) fn leases(s: &mut dyn Store, cx: &Ctx) {
    let sid = cx.id("s");
    s.create_session(&new_session(&sid, 1)).unwrap();
    let ttl = Duration::from_secs(30);
    assert_eq!(
        s.acquire_lease(&sid, "1@a", ttl).unwrap(),
        LeaseOutcome::Acquired {
            until: START + 30_000
        }
    );
    let r = s.session(&sid).unwrap().unwrap();
    assert_eq!(
        (r.lease_owner.as_deref(), r.lease_until),
        (Some("1@a"), Some(START + 30_000))
    );

    cx.advance(10_000);
    assert_eq!(
        s.acquire_lease(&sid, "2@b", ttl).unwrap(),
        LeaseOutcome::HeldBy {
            owner: "1@a".into(),
            until: START + 30_000
        }
    );
    assert!(
        s.acquire_lease(&sid, "1@a", ttl).unwrap().is_acquired(),
        "re-acquiring our own lease extends it"
    );
    assert!(s.renew_lease(&sid, "1@a", ttl).unwrap());
    assert!(!s.renew_lease(&sid, "2@b", ttl).unwrap());
    s.release_lease(&sid, "2@b").unwrap();
    assert_eq!(
        s.session(&sid).unwrap().unwrap().lease_owner.as_deref(),
        Some("1@a"),
        "only the holder releases"
    );

    cx.advance(40_001);
    assert_eq!(
        s.acquire_lease(&sid, "2@b", ttl).unwrap(),
        LeaseOutcome::Acquired {
            until: cx.now() + 30_000
        },
        "an expired lease is free"
    );
    assert!(
        !s.renew_lease(&sid, "1@a", ttl).unwrap(),
        "the old holder learns it lost the lease"
    );
    s.release_lease(&sid, "2@b").unwrap();
    let r = s.session(&sid).unwrap().unwrap();
    assert_eq!((r.lease_owner, r.lease_until), (None, None));
    assert!(s.acquire_lease(&sid, "3@c", ttl).unwrap().is_acquired());
}

pub(super) fn delete_session_removes_everything(s: &mut dyn Store, cx: &Ctx) {
    let parent = cx.id("parent");
    let fork = cx.id("fork");
    let ghost = cx.id("ghost");
    s.create_session(&new_session(&parent, 1)).unwrap();
    let mut forked = new_session(&fork, 2);
    forked.parent_session = Some(parent.clone());
    forked.parent_checkpoint = Some(1);
    s.create_session(&forked).unwrap();
    for id in [&parent, &fork] {
        s.commit_checkpoint(&checkpoint(id, 0, Some(json!({}))))
            .unwrap();
        s.record_results(&[task(id, 1, 0, "a")], &[node_run(id, 1, "a", 1, 1)])
            .unwrap();
        s.append_message(&ChatMessageRecord {
            session: id.into(),
            node: "a".into(),
            run_index: 0,
            turn: 0,
            role: "user".into(),
            content: "hi".into(),
            created_at: 1,
        })
        .unwrap();
    }
    s.delete_session(&parent).unwrap();
    assert_eq!(s.session(&parent).unwrap(), None);
    assert!(matches!(
        s.task_records(&parent, 0..=9),
        Err(StoreError::NotFound { .. })
    ));
    // Re-creating the id starts from nothing: no rows of the deleted session come back.
    s.create_session(&new_session(&parent, 3)).unwrap();
    assert!(s.task_records(&parent, 0..=9).unwrap().is_empty());
    assert!(s.checkpoints(&parent).unwrap().is_empty());
    assert!(s.node_runs(&parent).unwrap().is_empty());
    assert!(s.messages(&parent, "a").unwrap().is_empty());
    // The fork is untouched.
    let f = s.session(&fork).unwrap().unwrap();
    assert_eq!(f.parent_session.as_deref(), Some(parent.as_str()));
    assert_eq!(s.task_records(&fork, 0..=9).unwrap().len(), 1);
    assert_eq!(s.checkpoints(&fork).unwrap().len(), 1);
    assert!(matches!(
        s.delete_session(&ghost),
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) fn unknown_sessions_are_not_found(s: &mut dyn Store, cx: &Ctx) {
    let ghost = cx.id("ghost");
    let ttl = Duration::from_secs(1);
    let nf = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::NotFound { ref id }) if *id == ghost),
            "{r:?}"
        )
    };
    nf(s.set_status(&ghost, SessionStatus::Running, None));
    nf(s.set_session_meta(&ghost, "k", &json!(1)));
    nf(s.acquire_lease(&ghost, "o", ttl).map(|_| ()));
    nf(s.renew_lease(&ghost, "o", ttl).map(|_| ()));
    nf(s.release_lease(&ghost, "o"));
    nf(s.record_tasks(&[task(&ghost, 1, 0, "a")]));
    nf(s.record_node_run(&node_run(&ghost, 1, "a", 1, 1)));
    nf(s.commit_checkpoint(&checkpoint(&ghost, 0, None)));
    nf(s.task_records(&ghost, 0..=1).map(|_| ()));
    nf(s.checkpoints(&ghost).map(|_| ()));
    nf(s.checkpoint(&ghost, 0).map(|_| ()));
    nf(s.latest_snapshot_at_or_before(&ghost, 0).map(|_| ()));
    nf(s.node_runs(&ghost).map(|_| ()));
    nf(s.messages(&ghost, "a").map(|_| ()));
    nf(s.restore_point(&ghost, 0).map(|_| ()));
}
