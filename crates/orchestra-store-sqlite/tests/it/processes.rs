//! Several real processes on one database file: the test binary re-executes itself with an
//! environment variable selecting a child mode (`child_entry`), so the children are real
//! processes with their own connections, as separate `orchestra` runs would be.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use orchestra_store::{LeaseOutcome, SessionFilter, SessionStatus, Store};
use orchestra_store_sqlite::SqliteStore;
use serde_json::json;

use crate::common::{checkpoint, db_path, new_session, node_run, task};

const MODE_ENV: &str = "ORCHESTRA_STORE_TEST_CHILD";
const DB_ENV: &str = "ORCHESTRA_STORE_TEST_DB";
const ARG_ENV: &str = "ORCHESTRA_STORE_TEST_ARG";
const RESULT: &str = "CHILD-RESULT ";

const WRITERS: usize = 16;
const SESSIONS_PER_WRITER: usize = 3;
const STEPS: u64 = 40;
const TASKS_PER_STEP: u32 = 3;

fn child(mode: &str, db: &Path, arg: &str) -> Command {
    let mut c = Command::new(env::current_exe().unwrap());
    c.args([
        "--exact",
        "processes::child_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE_ENV, mode)
    .env(DB_ENV, db)
    .env(ARG_ENV, arg)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

fn result_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .find_map(|l| l.split_once(RESULT).map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result line in child output:\n{stdout}\n{stderr}"))
        .to_owned()
}

/// The entry point of the child processes; does nothing unless a parent test set the mode.
#[test]
#[ignore = "entry point of the child processes spawned by the other tests of this module"]
fn child_entry() {
    let Ok(mode) = env::var(MODE_ENV) else { return };
    let db = PathBuf::from(env::var(DB_ENV).unwrap());
    let arg = env::var(ARG_ENV).unwrap_or_default();
    let result = match mode.as_str() {
        "writer" => writer(&db, &arg),
        "lease-probe" => lease_probe(&db, &arg),
        "crash" => crash(&db, &arg),
        other => panic!("unknown child mode {other}"),
    };
    println!("{RESULT}{result}");
}

/// Drives sessions the way the runtime does (`NAME` or `NAME:SESSIONS`, default
/// `SESSIONS_PER_WRITER`); any error panics, which fails the child and is reported by the
/// parent with the child's stderr.
fn writer(db: &Path, arg: &str) -> String {
    let (name, sessions) = match arg.split_once(':') {
        Some((name, n)) => (name, n.parse().unwrap()),
        None => (arg, SESSIONS_PER_WRITER),
    };
    let mut s = SqliteStore::open(db).unwrap();
    let owner = format!("{}@{name}", std::process::id());
    for k in 0..sessions {
        let id = format!("{name}-{k}");
        s.create_session(&new_session(&id, 1)).unwrap();
        assert!(
            s.acquire_lease(&id, &owner, Duration::from_secs(60))
                .unwrap()
                .is_acquired()
        );
        s.set_status(&id, SessionStatus::Running, None).unwrap();
        s.set_session_meta(
            &id,
            "branches",
            &json!({"app": format!("orchestra/p/{id}")}),
        )
        .unwrap();
        s.commit_checkpoint(&checkpoint(&id, 0, Some(json!({"messages": []}))))
            .unwrap();
        for step in 1..=STEPS {
            let tasks: Vec<_> = (0..TASKS_PER_STEP)
                .map(|i| task(&id, step, i, "agent"))
                .collect();
            let runs: Vec<_> = (0..TASKS_PER_STEP)
                .map(|_| node_run(&id, step, "agent", 10, 5))
                .collect();
            s.record_results(&tasks, &runs).unwrap();
            s.commit_checkpoint(&checkpoint(&id, step, None)).unwrap();
            if step % 10 == 0 {
                s.list_sessions(&SessionFilter::default()).unwrap();
                assert!(s.renew_lease(&id, &owner, Duration::from_secs(60)).unwrap());
            }
        }
        s.set_status(&id, SessionStatus::Completed, None).unwrap();
        s.release_lease(&id, &owner).unwrap();
    }
    "done".to_owned()
}

fn lease_probe(db: &Path, session: &str) -> String {
    let mut s = SqliteStore::open(db).unwrap();
    match s
        .acquire_lease(session, "child@probe", Duration::from_secs(60))
        .unwrap()
    {
        LeaseOutcome::Acquired { .. } => "acquired".to_owned(),
        LeaseOutcome::HeldBy { owner, .. } => format!("held-by {owner}"),
    }
}

/// Records a few steps, then dies without closing anything (as `kill -9` would).
fn crash(db: &Path, session: &str) -> String {
    let mut s = SqliteStore::open(db).unwrap();
    s.create_session(&new_session(session, 1)).unwrap();
    s.commit_checkpoint(&checkpoint(session, 0, Some(json!({}))))
        .unwrap();
    for step in 1..=3 {
        s.record_tasks(&[task(session, step, 0, "a")]).unwrap();
        s.commit_checkpoint(&checkpoint(session, step, None))
            .unwrap();
    }
    s.record_tasks(&[task(session, 4, 0, "a")]).unwrap();
    std::process::abort();
}

#[test]
fn sixteen_processes_share_one_file_without_lock_errors() {
    let dir = tempfile::tempdir().unwrap();
    // No one creates the file beforehand: the children also race to create and migrate it.
    let db = db_path(dir.path());
    let children: Vec<_> = (0..WRITERS)
        .map(|w| child("writer", &db, &format!("w{w:02}")).spawn().unwrap())
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("locked") && !stderr.contains("busy"),
            "{stderr}"
        );
        assert_eq!(result_of(&out), "done");
    }

    let s = SqliteStore::open(&db).unwrap();
    let all = s.list_sessions(&SessionFilter::default()).unwrap();
    assert_eq!(all.len(), WRITERS * SESSIONS_PER_WRITER);
    for summary in &all {
        assert_eq!(summary.status, SessionStatus::Completed, "{}", summary.id);
        assert_eq!(
            (summary.steps, summary.checkpoints),
            (STEPS, STEPS + 1),
            "{}",
            summary.id
        );
        assert_eq!(summary.tokens_in, 10 * STEPS * u64::from(TASKS_PER_STEP));
        assert_eq!(summary.lease_owner, None);
        let tasks = s.task_records(&summary.id, 0..=STEPS).unwrap();
        assert_eq!(tasks.len(), (STEPS * u64::from(TASKS_PER_STEP)) as usize);
    }
}

#[test]
fn a_second_process_is_refused_the_lease_and_told_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    let mut s = SqliteStore::open(&db).unwrap();
    s.create_session(&new_session("live", 1)).unwrap();
    assert!(
        s.acquire_lease("live", "4242@parent-host", Duration::from_secs(60))
            .unwrap()
            .is_acquired()
    );

    let probe = || result_of(&child("lease-probe", &db, "live").output().unwrap());
    assert_eq!(probe(), "held-by 4242@parent-host");
    s.release_lease("live", "4242@parent-host").unwrap();
    assert_eq!(probe(), "acquired");
    // The child exited without releasing: its lease stands until it expires.
    match s
        .acquire_lease("live", "4242@parent-host", Duration::from_secs(60))
        .unwrap()
    {
        LeaseOutcome::HeldBy { owner, .. } => assert_eq!(owner, "child@probe"),
        other => panic!("expected HeldBy, got {other:?}"),
    }
}

#[test]
fn committed_writes_survive_a_process_that_dies_without_closing() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    let out = child("crash", &db, "crashed").output().unwrap();
    assert!(!out.status.success(), "the child aborts");

    let s = SqliteStore::open(&db).unwrap();
    let cps: Vec<u64> = s
        .checkpoints("crashed")
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(cps, [0, 1, 2, 3]);
    let tasks: Vec<u64> = s
        .task_records("crashed", 0..=9)
        .unwrap()
        .iter()
        .map(|t| t.step)
        .collect();
    assert_eq!(tasks, [1, 2, 3, 4], "the pending write of step 4 was kept");
}

#[test]
fn killing_a_writer_mid_run_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    drop(SqliteStore::open(&db).unwrap());
    // Far more sessions than it gets to write before it is killed.
    let mut victim = child("writer", &db, "victim:1000").spawn().unwrap();
    for _ in 0..200 {
        let written = SqliteStore::open(&db)
            .unwrap()
            .checkpoints("victim-0")
            .map(|c| c.len())
            .unwrap_or(0);
        if written >= 3 {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    victim.kill().unwrap(); // SIGKILL
    assert!(!victim.wait().unwrap().success(), "killed mid-run");

    let mut s = SqliteStore::open(&db).unwrap();
    let check: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let sessions = s.list_sessions(&SessionFilter::default()).unwrap();
    assert!(!sessions.is_empty());
    for summary in sessions {
        let cps = s.checkpoints(&summary.id).unwrap();
        let steps: Vec<u64> = cps.iter().map(|c| c.step).collect();
        assert_eq!(
            steps,
            (0..steps.len() as u64).collect::<Vec<_>>(),
            "checkpoints are contiguous"
        );
        // Every checkpointed step has all its tasks: a step's tasks are one transaction.
        for step in steps.iter().skip(1) {
            assert_eq!(
                s.task_records(&summary.id, *step..=*step).unwrap().len(),
                TASKS_PER_STEP as usize
            );
        }
    }
    // The database is still writable after the crash.
    s.create_session(&new_session("after", 1)).unwrap();
}
