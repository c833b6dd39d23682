//! The suite's checks of fenced writes ([`Store::commit_fenced`]): the lease holder commits; a
//! writer whose lease another took over (or that was released) is refused with `LeaseLost` and
//! writes nothing; an expired lease nobody took over still lets its holder commit.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use std::time::Duration;

use serde_json::json;

use super::{Ctx, checkpoint, model_turn, new_session, node_run, task};
use crate::{Fence, LeaseOutcome, Store, StoreError, TraceRecord};

const TTL: Duration = Duration::from_secs(5);

/// What is stored of `id`: (task records, node runs, model turns, checkpoint steps).
fn stored(s: &dyn Store, id: &str) -> (usize, usize, usize, Vec<u64>) {
    (
        s.task_records(id, 0..=u64::MAX).unwrap().len(),
        s.node_runs(id).unwrap().len(),
        s.trace(id).unwrap().turns.len(),
        s.checkpoints(id).unwrap().iter().map(|c| c.step).collect(),
    )
}

/// Commits step `step` of `id` fenced on `owner`: a task, its run and a model turn, and the
/// checkpoint.
fn commit_as(s: &mut dyn Store, owner: &str, id: &str, step: u64) -> Result<(), StoreError> {
    s.commit_fenced(
        Fence { owner },
        &[task(id, step, 0, "a")],
        &[node_run(id, step, "a", 1, 1)],
        &[TraceRecord::Turn(model_turn(id, step, "a", 0, "sys"))],
        Some(&checkpoint(id, step, None)),
    )
}

/// A session holding checkpoint 0, leased to `1@a`.
fn leased_session(s: &mut dyn Store, cx: &Ctx, name: &str) -> String {
    let id = cx.id(name);
    s.create_session(&new_session(&id, 1)).unwrap();
    s.commit_checkpoint(&checkpoint(&id, 0, Some(json!({}))))
        .unwrap();
    assert!(matches!(
        s.acquire_lease(&id, "1@a", TTL).unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
    id
}

pub(super) fn fenced_commits_need_the_lease(s: &mut dyn Store, cx: &Ctx) {
    let id = leased_session(s, cx, "f");
    commit_as(s, "1@a", &id, 1).unwrap();
    assert_eq!(stored(s, &id), (1, 1, 1, vec![0, 1]), "the holder commits");

    let refused = commit_as(s, "2@b", &id, 2).unwrap_err();
    assert!(
        matches!(&refused, StoreError::LeaseLost { session, holder: Some(h) } if *session == id && h == "1@a"),
        "{refused:?}"
    );
    assert_eq!(stored(s, &id), (1, 1, 1, vec![0, 1]), "nothing is written");

    // Records without a checkpoint are fenced the same way, with every session they name: one
    // lost lease refuses the whole batch.
    let other = leased_session(s, cx, "g");
    s.release_lease(&other, "1@a").unwrap();
    let batch = s.commit_fenced(
        Fence { owner: "1@a" },
        &[task(&id, 2, 0, "a"), task(&other, 1, 0, "a")],
        &[],
        &[],
        None,
    );
    assert!(
        matches!(&batch, Err(StoreError::LeaseLost { session, holder: None }) if *session == other),
        "{batch:?}"
    );
    assert_eq!(stored(s, &id), (1, 1, 1, vec![0, 1]));
    assert_eq!(stored(s, &other), (0, 0, 0, vec![0]));

    // A refused checkpoint keeps the records, as for `commit_step`.
    let again = commit_as(s, "1@a", &id, 1).unwrap_err();
    assert!(
        matches!(again, StoreError::CheckpointExists { step: 1, .. }),
        "{again:?}"
    );
    assert!(matches!(
        commit_as(s, "1@a", &cx.id("missing"), 1),
        Err(StoreError::NotFound { .. })
    ));
}

pub(super) fn an_expired_lease_fences_until_another_takes_it(s: &mut dyn Store, cx: &Ctx) {
    let id = leased_session(s, cx, "e");
    cx.advance(6_000);
    commit_as(s, "1@a", &id, 1).unwrap();
    assert_eq!(
        stored(s, &id).3,
        vec![0, 1],
        "an expired lease nobody took over is still its holder's"
    );
    assert!(matches!(
        s.acquire_lease(&id, "2@b", TTL).unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
    let late = commit_as(s, "1@a", &id, 2).unwrap_err();
    assert!(
        matches!(&late, StoreError::LeaseLost { holder: Some(h), .. } if h == "2@b"),
        "{late:?}"
    );
    assert_eq!(
        stored(s, &id),
        (1, 1, 1, vec![0, 1]),
        "the stalled writer wrote nothing"
    );
    commit_as(s, "2@b", &id, 2).unwrap();
    assert_eq!(
        stored(s, &id),
        (2, 2, 2, vec![0, 1, 2]),
        "the new holder commits"
    );
}
