//! The suite's checks of session statuses: `stopped` and `interrupted` are stored, listed and
//! filtered as statuses of their own, with their note, and every status round-trips.

#![expect(clippy::unwrap_used, reason = "a failing case panics, like a test")]

use super::{Ctx, new_session};
use crate::{SessionFilter, SessionStatus, Store};

pub(super) fn stopped_and_interrupted_are_statuses_of_their_own(s: &mut dyn Store, cx: &Ctx) {
    let (stopped, interrupted) = (cx.id("stopped"), cx.id("interrupted"));
    let limit = "stopped: the session reached limits.max_steps (2)";
    let ctrl_c = "interrupted; resume it to go on";
    for id in [&stopped, &interrupted] {
        s.create_session(&new_session(id, 1)).unwrap();
        s.set_status(id, SessionStatus::Running, None).unwrap();
    }
    s.set_status(&stopped, SessionStatus::Stopped, Some(limit))
        .unwrap();
    s.set_status(&interrupted, SessionStatus::Interrupted, Some(ctrl_c))
        .unwrap();

    let r = s.session(&stopped).unwrap().unwrap();
    assert_eq!(
        (r.status, r.error.as_deref()),
        (SessionStatus::Stopped, Some(limit))
    );
    let r = s.find_session(&interrupted).unwrap();
    assert_eq!(
        (r.status, r.error.as_deref()),
        (SessionStatus::Interrupted, Some(ctrl_c))
    );
    let mut listed: Vec<(String, SessionStatus, Option<String>)> = s
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .filter(|x| cx.owns(&x.id))
        .map(|x| (x.id, x.status, x.error))
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            interrupted.clone(),
            SessionStatus::Interrupted,
            Some(ctrl_c.to_owned()),
        ),
        (
            stopped.clone(),
            SessionStatus::Stopped,
            Some(limit.to_owned()),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // Resuming clears the note.
    s.set_status(&stopped, SessionStatus::Running, None)
        .unwrap();
    let r = s.session(&stopped).unwrap().unwrap();
    assert_eq!((r.status, r.error), (SessionStatus::Running, None));
}

pub(super) fn every_status_is_stored_and_filtered(s: &mut dyn Store, cx: &Ctx) {
    for st in SessionStatus::ALL {
        let id = cx.id(st.as_str());
        s.create_session(&new_session(&id, 1)).unwrap();
        if st != SessionStatus::Created {
            s.set_status(&id, st, Some(&format!("note of {st}")))
                .unwrap();
        }
        assert_eq!(s.session(&id).unwrap().unwrap().status, st);
    }
    let ids = |statuses: Vec<SessionStatus>| -> Vec<String> {
        let mut ids: Vec<String> = s
            .list_sessions(&SessionFilter {
                statuses,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .filter(|id| cx.owns(id))
            .collect();
        ids.sort();
        ids
    };
    for st in SessionStatus::ALL {
        assert_eq!(ids(vec![st]), [cx.id(st.as_str())], "filtering by {st}");
    }
    let mut resumable = vec![cx.id("failed"), cx.id("interrupted"), cx.id("stopped")];
    resumable.sort();
    assert_eq!(
        ids(vec![
            SessionStatus::Stopped,
            SessionStatus::Interrupted,
            SessionStatus::Failed
        ]),
        resumable
    );
    assert_eq!(ids(Vec::new()).len(), SessionStatus::ALL.len());
}

pub(super) fn child_sessions_name_their_parent_node(s: &mut dyn Store, cx: &Ctx) {
    let (parent, child, fork) = (cx.id("caller"), cx.id("child"), cx.id("forked"));
    s.create_session(&new_session(&parent, 1)).unwrap();
    let mut c = new_session(&child, 2);
    c.parent_session = Some(parent.clone());
    c.parent_node = Some("design".into());
    s.create_session(&c).unwrap();
    let mut f = new_session(&fork, 3);
    f.parent_session = Some(parent.clone());
    f.parent_checkpoint = Some(0);
    s.create_session(&f).unwrap();

    let r = s.session(&child).unwrap().unwrap();
    assert_eq!(
        (
            r.parent_session.as_deref(),
            r.parent_node.as_deref(),
            r.parent_checkpoint
        ),
        (Some(parent.as_str()), Some("design"), None)
    );
    assert_eq!(s.find_session(&fork).unwrap().parent_node, None);
    assert_eq!(s.session(&parent).unwrap().unwrap().parent_node, None);
    let listed = s.list_sessions(&SessionFilter::default()).unwrap();
    let node_of = |id: &str| {
        listed
            .iter()
            .find(|x| x.id == id)
            .map(|x| (x.parent_session.clone(), x.parent_node.clone()))
            .unwrap()
    };
    assert_eq!(
        node_of(&child),
        (Some(parent.clone()), Some("design".to_owned()))
    );
    assert_eq!(node_of(&fork), (Some(parent.clone()), None));
    assert_eq!(node_of(&parent), (None, None));
}
