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
