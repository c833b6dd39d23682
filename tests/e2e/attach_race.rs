//! `attach` in the moment between `run` listening on its attach socket and recording its
//! session: it waits for the record instead of saying that no session matches.

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use orchestra_store::{NewSession, SessionStatus, Store as _};
use orchestra_store_sqlite::SqliteStore;

use super::project::{DB, Project};

/// Binds the attach socket a run of session `id` would (beside the project's database).
fn socket_of(p: &Project, id: &str) -> UnixListener {
    let dir = p.path("sessions");
    std::fs::create_dir_all(&dir).expect("the sockets' directory");
    UnixListener::bind(dir.join(format!("{id}.sock"))).expect("the attach socket")
}

#[test]
fn attach_waits_for_the_record_of_a_session_whose_socket_is_there() {
    let p = Project::new();
    let (run, first) = p.run_json(&["run", "crash.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    // A socket, and the record coming while `attach` runs: it finds the session.
    let id = "20260101-000000-a77ac4";
    let _listener = socket_of(&p, id);
    let attach = p.spawn(&["attach", id]);
    {
        let mut store = SqliteStore::open(p.path(DB)).unwrap();
        let rec = store
            .session(first["session"].as_str().unwrap())
            .unwrap()
            .unwrap();
        store
            .create_session(&NewSession {
                id: id.into(),
                name: None,
                pipeline: rec.pipeline,
                pipeline_path: rec.pipeline_path,
                pipeline_source: rec.pipeline_source,
                resolved: rec.resolved,
                pipeline_hash: rec.pipeline_hash,
                inputs: rec.inputs,
                parent_session: None,
                parent_checkpoint: None,
                parent_node: None,
                created_at: rec.created_at + 1,
            })
            .unwrap();
        store
            .set_status(id, SessionStatus::Completed, None)
            .unwrap();
    }
    let attached = attach.finish();
    assert_eq!(attached.code, 2, "{}", attached.transcript());
    assert!(
        attached
            .stderr
            .contains(&format!("session {id} is completed")),
        "{}",
        attached.transcript()
    );

    // A socket and no record ever: `attach` waits a while, then says that no session matches.
    let ghost = "20260101-000000-9b05f1";
    let _listener = socket_of(&p, ghost);
    let started = Instant::now();
    let lost = p.run(&["attach", ghost]);
    assert_eq!(lost.code, 2, "{}", lost.transcript());
    assert!(
        lost.stderr
            .contains(&format!("no session matches `{ghost}`")),
        "{}",
        lost.transcript()
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "it waited");
}
