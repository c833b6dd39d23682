//! SQLite-specific behaviour on real files: pragmas, migrations, refusing foreign or newer
//! databases, busy timeouts, cascading deletes, and several connections on one file.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use orchestra_store::{ErrorClass, LeaseOutcome, Store, StoreError};
use orchestra_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
use rusqlite::Connection;
use serde_json::json;

use crate::common::{checkpoint, db_path, new_session, node_run, task};

fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn pragma_i64(c: &Connection, name: &str) -> i64 {
    c.pragma_query_value(None, name, |r| r.get(0)).unwrap()
}

fn count(c: &Connection, table: &str) -> i64 {
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn open_creates_directories_and_configures_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/orchestra.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert!(path.is_file());
    let c = raw(&path);
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(pragma_i64(&c, "user_version"), SCHEMA_VERSION);
    assert_eq!(pragma_i64(&c, "application_id"), 0x4F52_4348);
    assert_eq!(pragma_i64(&c, "auto_vacuum"), 2, "incremental");
    for table in [
        "sessions",
        "tasks",
        "checkpoints",
        "snapshots",
        "node_runs",
        "messages",
    ] {
        assert_eq!(count(&c, table), 0);
    }
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.create_session(&new_session("s", 1)).unwrap();
        s.record_tasks(&[task("s", 1, 0, "a")]).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.task_records("s", 1..=1).unwrap(), [task("s", 1, 0, "a")]);
    assert_eq!(pragma_i64(&raw(&path), "user_version"), SCHEMA_VERSION);
    drop(s);
    // An empty file (e.g. touched by a user) is a version-0 database and gets migrated.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    SqliteStore::open(&empty).unwrap();
    assert_eq!(pragma_i64(&raw(&empty), "user_version"), SCHEMA_VERSION);
}

#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(SqliteStore::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
    assert_eq!(err.exit_class(), ErrorClass::BadDatabase);
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("upgrade orchestra"),
        "{msg}"
    );
}

#[test]
fn files_that_are_not_orchestra_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "this is a text file, not SQLite\n".repeat(200)).unwrap();
    let err = SqliteStore::open(&garbage).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&garbage.display().to_string()),
        "{err}"
    );

    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    let err = SqliteStore::open(&foreign).unwrap_err();
    assert!(
        err.to_string().contains("tables of another program"),
        "{err}"
    );

    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                op: "open the file",
                ..
            }
        ),
        "a directory: {err:?}"
    );
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );

    let err = SqliteStore::open(garbage.join("o.db")).unwrap_err();
    assert!(
        matches!(err, StoreError::CreateDir { .. }),
        "under a file: {err:?}"
    );

    let other_app = dir.path().join("other-app.db");
    raw(&other_app)
        .pragma_update(None, "application_id", 1234)
        .unwrap();
    let err = SqliteStore::open(&other_app).unwrap_err();
    assert!(
        err.to_string().contains("belongs to another program"),
        "{err}"
    );
}

#[test]
fn a_lock_held_past_the_busy_timeout_is_a_clear_busy_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let opts = SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let mut store = SqliteStore::open_with(&path, opts).unwrap();
    let holder = raw(&path);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = store.create_session(&new_session("s", 1)).unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "waited the busy timeout first"
    );
    assert!(err.is_busy(), "{err:?}");
    assert_eq!(err.exit_class(), ErrorClass::Busy);
    assert!(
        err.to_string()
            .contains("stayed locked for more than 100ms while trying to create a session"),
        "{err}"
    );
    holder.execute_batch("COMMIT").unwrap();
    store.create_session(&new_session("s", 1)).unwrap();
}

#[test]
fn a_writer_waits_for_a_short_lock_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut store = SqliteStore::open(&path).unwrap();
    store.create_session(&new_session("s", 1)).unwrap();
    let holder = raw(&path);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        holder.execute_batch("COMMIT").unwrap();
    });
    store.record_tasks(&[task("s", 1, 0, "a")]).unwrap();
    release.join().unwrap();
    assert_eq!(store.task_records("s", 1..=1).unwrap().len(), 1);
}

#[test]
fn damaged_rows_are_reported_as_corrupt_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut store = SqliteStore::open(&path).unwrap();
    store.create_session(&new_session("s", 1)).unwrap();
    store.record_tasks(&[task("s", 1, 0, "a")]).unwrap();
    raw(&path)
        .execute_batch("UPDATE tasks SET writes = '{oops'; UPDATE sessions SET status = 'zombie'")
        .unwrap();
    let err = store.task_records("s", 0..=9).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid stored data while trying to read task records"),
        "{err}"
    );
    assert!(matches!(
        store.session("s"),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn deleting_a_session_cascades_and_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let big = "x".repeat(1_000);
    {
        let mut s = SqliteStore::open(&path).unwrap();
        for id in ["keep", "drop"] {
            s.create_session(&new_session(id, 1)).unwrap();
            s.commit_checkpoint(&checkpoint(id, 0, Some(json!({"big": big}))))
                .unwrap();
        }
        for step in 1..=500 {
            let mut t = task("drop", step, 0, "a");
            t.output = json!(big);
            s.record_results(&[t], &[node_run("drop", step, "a", 1, 1)])
                .unwrap();
            s.commit_checkpoint(&checkpoint("drop", step, None))
                .unwrap();
        }
        s.append_message(&orchestra_store::ChatMessageRecord {
            session: "drop".into(),
            node: "a".into(),
            run_index: 0,
            turn: 0,
            role: "user".into(),
            content: big.clone(),
            created_at: 1,
        })
        .unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.delete_session("drop").unwrap();
        let c = raw(&path);
        assert_eq!(count(&c, "tasks"), 0);
        assert_eq!(count(&c, "checkpoints"), 1);
        assert_eq!(count(&c, "snapshots"), 1);
        assert_eq!(count(&c, "node_runs"), 0);
        assert_eq!(count(&c, "messages"), 0);
        assert!(s.checkpoint("keep", 0).unwrap().is_some());
    }
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(before > 500_000, "{before}");
    assert!(
        after * 4 < before,
        "the file shrinks after a delete: {before} -> {after}"
    );
}

#[test]
fn a_lease_is_seen_by_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut a = SqliteStore::open(&path).unwrap();
    let mut b = SqliteStore::open(&path).unwrap();
    a.create_session(&new_session("s", 1)).unwrap();
    let ttl = Duration::from_secs(60);
    assert!(
        a.acquire_lease("s", "100@host-a", ttl)
            .unwrap()
            .is_acquired()
    );
    match b.acquire_lease("s", "200@host-b", ttl).unwrap() {
        LeaseOutcome::HeldBy { owner, .. } => assert_eq!(owner, "100@host-a"),
        other => panic!("expected HeldBy, got {other:?}"),
    }
    assert!(!b.renew_lease("s", "200@host-b", ttl).unwrap());
    a.release_lease("s", "100@host-a").unwrap();
    assert!(
        b.acquire_lease("s", "200@host-b", ttl)
            .unwrap()
            .is_acquired()
    );
    assert!(matches!(
        a.acquire_lease("s", "100@host-a", ttl).unwrap(),
        LeaseOutcome::HeldBy { .. }
    ));
}

#[test]
fn threads_with_their_own_connections_write_without_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(SqliteStore::open(&path).unwrap());
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let path = path.clone();
            thread::spawn(move || -> Result<(), StoreError> {
                let mut s = SqliteStore::open(&path)?;
                let id = format!("t{w}");
                s.create_session(&new_session(&id, w))?;
                s.commit_checkpoint(&checkpoint(&id, 0, Some(json!({}))))?;
                for step in 1..=40 {
                    s.record_results(
                        &[task(&id, step, 0, "a"), task(&id, step, 1, "b")],
                        &[node_run(&id, step, "a", 1, 1)],
                    )?;
                    s.commit_checkpoint(&checkpoint(&id, step, None))?;
                    s.task_records(&id, step..=step)?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap().unwrap();
    }
    let c = raw(&path);
    assert_eq!(
        (count(&c, "tasks"), count(&c, "checkpoints")),
        (8 * 80, 8 * 41)
    );
}

#[test]
fn checkpointing_the_wal_moves_everything_into_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut s = SqliteStore::open(&path).unwrap();
    s.create_session(&new_session("s", 1)).unwrap();
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    s.checkpoint_wal().unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    assert!(s.session("s").unwrap().is_some());
}
