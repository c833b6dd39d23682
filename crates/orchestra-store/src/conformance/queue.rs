//! The suite's checks of the queue: enqueued sessions are claimed oldest first, each by one
//! claimer; a session whose worker's lease expired is claimed again; paused, finished and
//! ordinary sessions never are; a stop request is read back with the lease renewal.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use std::time::Duration;

use super::{Ctx, new_session};
use crate::{QUEUE_META, Renewal, STOP_META, SessionStatus, StopRequest, Store, StoreError};

const TTL: Duration = Duration::from_secs(5);

/// Claims until nothing is claimable, keeping this case's sessions (a shared database may hold
/// others' queues: those are released again untouched but for their lease).
fn claim_own(s: &mut dyn Store, cx: &Ctx, owner: &str) -> Option<String> {
    let rec = s.claim_session(owner, TTL).unwrap()?;
    assert!(
        cx.owns(&rec.id),
        "claimed a session of another run: {}",
        rec.id
    );
    Some(rec.id)
}

pub(super) fn queued_sessions_are_claimed_oldest_first_and_once(s: &mut dyn Store, cx: &Ctx) {
    let (old, new, plain, paused, done) = (
        cx.id("old"),
        cx.id("new"),
        cx.id("plain"),
        cx.id("paused"),
        cx.id("done"),
    );
    s.enqueue_session(&new_session(&new, 20)).unwrap();
    s.enqueue_session(&new_session(&old, 10)).unwrap();
    assert!(matches!(
        s.enqueue_session(&new_session(&old, 10)),
        Err(StoreError::AlreadyExists { .. })
    ));
    s.create_session(&new_session(&plain, 1)).unwrap();
    s.set_status(&plain, SessionStatus::Queued, None).unwrap();
    for (id, status) in [
        (&paused, SessionStatus::Paused),
        (&done, SessionStatus::Completed),
    ] {
        s.enqueue_session(&new_session(id, 2)).unwrap();
        s.set_status(id, status, None).unwrap();
    }
    let r = s.session(&old).unwrap().unwrap();
    assert_eq!(r.status, SessionStatus::Queued);
    assert_eq!(r.meta[QUEUE_META]["queued_at"], 10);
    assert_eq!((r.lease_owner, r.lease_until), (None, None));

    let first = s.claim_session("1@a", TTL).unwrap().unwrap();
    assert_eq!(first.id, old, "the oldest queued session comes first");
    assert_eq!(first.status, SessionStatus::Running);
    assert_eq!(first.lease_owner.as_deref(), Some("1@a"));
    assert_eq!(first.lease_until, Some(cx.now() + 5_000));
    assert_eq!(
        s.session(&old).unwrap().unwrap(),
        first,
        "the claim is stored"
    );
    assert_eq!(claim_own(s, cx, "2@b").as_deref(), Some(new.as_str()));
    assert_eq!(
        claim_own(s, cx, "3@c"),
        None,
        "paused, completed and sessions outside the queue are never claimed"
    );
    assert_eq!(s.session(&plain).unwrap().unwrap().lease_owner, None);
    // The list tells the sessions of the queue (whatever their status) from the others.
    let listed: std::collections::BTreeMap<String, bool> = s
        .list_sessions(&crate::SessionFilter::default())
        .unwrap()
        .into_iter()
        .filter(|x| cx.owns(&x.id))
        .map(|x| (x.id, x.queued))
        .collect();
    let expected: std::collections::BTreeMap<String, bool> = [
        (old, true),
        (new, true),
        (plain, false),
        (paused, true),
        (done, true),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed, expected);
}

pub(super) fn a_session_whose_worker_died_is_claimed_again(s: &mut dyn Store, cx: &Ctx) {
    let id = cx.id("q");
    s.enqueue_session(&new_session(&id, 1)).unwrap();
    assert_eq!(claim_own(s, cx, "1@a").as_deref(), Some(id.as_str()));
    cx.advance(4_000);
    assert!(s.renew_lease(&id, "1@a", TTL).unwrap());
    cx.advance(4_000);
    assert_eq!(claim_own(s, cx, "2@b"), None, "a renewed lease holds");
    cx.advance(1_001);
    let again = s.claim_session("2@b", TTL).unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), again.lease_owner.as_deref()),
        (id.as_str(), Some("2@b")),
        "an expired lease is claimed by another worker"
    );
    assert!(
        !s.renew_lease(&id, "1@a", TTL).unwrap(),
        "the dead worker learns it lost the session"
    );
    for status in [
        SessionStatus::Paused,
        SessionStatus::Completed,
        SessionStatus::Failed,
        SessionStatus::Interrupted,
    ] {
        s.set_status(&id, status, None).unwrap();
        s.release_lease(&id, "2@b").unwrap();
        assert_eq!(claim_own(s, cx, "3@c"), None, "{status} is not claimed");
    }
    s.set_status(&id, SessionStatus::Queued, Some("handed back"))
        .unwrap();
    let back = s.claim_session("3@c", TTL).unwrap().unwrap();
    assert_eq!(
        (back.id, back.error),
        (id, None),
        "a re-queued session is claimed"
    );
}

pub(super) fn a_stop_request_is_read_with_the_lease_renewal(s: &mut dyn Store, cx: &Ctx) {
    let id = cx.id("stop");
    s.enqueue_session(&new_session(&id, 1)).unwrap();
    assert_eq!(claim_own(s, cx, "1@a").as_deref(), Some(id.as_str()));
    assert_eq!(
        s.renew_lease_checked(&id, "1@a", TTL).unwrap(),
        Renewal::Held
    );
    let req = StopRequest {
        by: "9@elsewhere".into(),
        at_ms: 1_234,
    };
    s.set_session_meta(&id, STOP_META, &req.to_value()).unwrap();
    cx.advance(4_000);
    assert_eq!(
        s.renew_lease_checked(&id, "1@a", TTL).unwrap(),
        Renewal::StopRequested(req.clone()),
        "the holder reads the request as it renews"
    );
    cx.advance(4_000);
    assert_eq!(
        claim_own(s, cx, "2@b"),
        None,
        "the checked renewal extended the lease"
    );
    assert_eq!(
        s.renew_lease_checked(&id, "2@b", TTL).unwrap(),
        Renewal::Lost,
        "another owner learns it holds nothing"
    );
    let rec = s.session(&id).unwrap().unwrap();
    assert_eq!(StopRequest::of(&rec), Some(req));
    s.set_session_meta(&id, STOP_META, &serde_json::Value::Null)
        .unwrap();
    assert_eq!(
        s.renew_lease_checked(&id, "1@a", TTL).unwrap(),
        Renewal::Held,
        "a cleared request (null) is none"
    );
    assert!(matches!(
        s.renew_lease_checked(&cx.id("ghost"), "1@a", TTL),
        Err(StoreError::NotFound { .. })
    ));
}
