//! A database made by release 0.1 (`tests/fixtures/release-0.1`, schema version 4) opens: its
//! sessions stopped at a limit or interrupted get their statuses (migration 5) with their notes
//! kept, the others are unchanged, and every checkpoint of every session still restores.

use std::path::Path;

use orchestra_store::{SessionFilter, SessionStatus, Store};
use orchestra_store_sqlite::{SCHEMA_VERSION, SqliteStore};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/release-0.1/orchestra.db"
);

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_release_0_1_database_is_migrated_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orchestra.db");
    // A copy: the fixture stays as release 0.1 made it.
    std::fs::copy(FIXTURE, &db).unwrap();
    assert_eq!(user_version(&db), 4, "the fixture is a version-4 database");

    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(user_version(&db), SCHEMA_VERSION);
    let status = |id: &str| {
        let r = s.session(id).unwrap().unwrap();
        (r.status, r.error)
    };
    assert_eq!(
        status("20261203-065537-39ef34"),
        (
            SessionStatus::Stopped,
            Some("stopped: the session reached limits.max_steps (2)".to_owned())
        )
    );
    assert_eq!(
        status("20261203-065542-ed7a22"),
        (
            SessionStatus::Stopped,
            Some("stopped: the session reached limits.max_steps (1)".to_owned())
        )
    );
    assert_eq!(
        status("20261203-065542-f9ee77"),
        (
            SessionStatus::Interrupted,
            Some("interrupted; resume it to go on".to_owned())
        )
    );
    let (paused, note) = status("20261203-065542-530b3c");
    assert_eq!(paused, SessionStatus::Paused);
    assert!(note.unwrap().starts_with("waiting at `reviewer`"));
    assert_eq!(
        status("20261203-065542-e7317f"),
        (SessionStatus::Completed, None)
    );

    let sessions = s.list_sessions(&SessionFilter::default()).unwrap();
    assert_eq!(sessions.len(), 5);
    let mut restored = 0;
    for summary in &sessions {
        let checkpoints = s.checkpoints(&summary.id).unwrap();
        assert!(!checkpoints.is_empty(), "{}", summary.id);
        // Traces were not kept then: an empty one, not an error.
        assert_eq!(s.trace(&summary.id).unwrap(), Default::default());
        for cp in checkpoints {
            let rp = s
                .restore_point(&summary.id, cp.step)
                .unwrap()
                .unwrap_or_else(|| panic!("{} has no checkpoint {}", summary.id, cp.step));
            assert_eq!(rp.target.step, cp.step);
            assert!(rp.base.step <= cp.step && rp.base.snapshot.is_some());
            assert!(
                rp.tasks
                    .iter()
                    .all(|t| t.step > rp.base.step && t.step <= cp.step),
                "{} at {}",
                summary.id,
                cp.step
            );
            restored += 1;
        }
    }
    assert_eq!(restored, 12, "every checkpoint of the fixture");
}
