//! Sessions whose stored scheduler state is of an older format (1: release 0.1, 2: `join: N`
//! and `FAIL`, before `for_each`) go on with this release; one of a newer format is refused
//! with a clear error. The stored envelope's `scheduler_format` of a real session (in a real
//! SQLite file) is set back, as an older orchestra wrote it, before it is resumed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;

use orchestra_graph::{LoadOptions, load};
use orchestra_runtime::{
    CollectEvents, DriveOptions, Engine, Finish, RuntimeError, SCHEDULER_FORMAT,
};

/// Three command nodes joined by a quorum (`join: 2`, counted in the scheduler state), then
/// `last`, whose program does not exist until the test writes it: the session fails at step 2.
const PIPELINE: &str = r#"
name: formats
agents:
  a: { command: [sh, -c, "echo a"] }
  b: { command: [sh, -c, "echo b"] }
  c: { command: [sh, -c, "echo c"] }
  last: { command: [./last.sh], retries: 0 }
graph:
  - { from: START, to: [a, b, c] }
  - { from: [a, b, c], to: last, join: 2 }
  - { from: last, to: END }
"#;

fn drive() -> DriveOptions {
    let (_cancel_tx, cancel) = watch::channel(false);
    DriveOptions {
        stream: false,
        events: Arc::new(CollectEvents::default()),
        cancel,
        env: Arc::new(|_: &str| None),
        tools: orchestra_tools::Registry::new(),
        conditions: HashMap::new(),
        retry_base: Duration::from_millis(1),
        limits: Default::default(),
        human: None,
    }
}

/// Sets the stored scheduler format of every session of the database at `db` (`None`: the key
/// removed, as release 0.1's envelope-less form and early format-2 envelopes have it).
fn set_scheduler_format(db: &Path, format: Option<u64>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let text: Vec<u8> = conn
        .query_row("SELECT resolved FROM pipelines", [], |r| r.get(0))
        .unwrap();
    let mut stored: Value = serde_json::from_slice(&text).unwrap();
    let envelope = stored.as_object_mut().unwrap();
    assert_eq!(envelope["scheduler_format"], SCHEDULER_FORMAT);
    match format {
        Some(f) => envelope.insert("scheduler_format".into(), f.into()),
        None => envelope.remove("scheduler_format"),
    };
    conn.execute(
        "UPDATE pipelines SET resolved = ?1",
        [serde_json::to_vec(&stored).unwrap()],
    )
    .unwrap();
}

/// A session of [`PIPELINE`] failed at step 2, its stored scheduler format set to `format`; then
/// `last.sh` is written and the session resumed.
async fn resumed_from(format: Option<u64>) -> Result<Finish, RuntimeError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("formats.yaml"), PIPELINE).unwrap();
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let compiled =
        Arc::new(load(Path::new("formats.yaml"), &opts).unwrap_or_else(|d| panic!("{d:?}")));
    let db = dir.path().join("db.sqlite");
    let store = orchestra_store_sqlite::SqliteStore::open(&db).unwrap();
    let engine = Engine::new(Box::new(store), dir.path()).unwrap();
    let out = engine
        .run(compiled, Map::new(), None, &drive())
        .await
        .unwrap();
    let Finish::Failed { error } = &out.finish else {
        panic!("{:?}", out.finish)
    };
    assert!(error.contains("last.sh"), "{error}");
    drop(engine);
    set_scheduler_format(&db, format);
    let script = dir.path().join("last.sh");
    std::fs::write(&script, "#!/bin/sh\necho last\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store = orchestra_store_sqlite::SqliteStore::open(&db).unwrap();
    let engine = Engine::new(Box::new(store), dir.path()).unwrap();
    let out = engine.resume(&out.session, &drive()).await?;
    assert_eq!(out.state["agent_outputs"]["last"]["stdout"], "last\n");
    Ok(out.finish)
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_of_older_scheduler_formats_resume_and_newer_ones_are_refused() {
    assert_eq!(SCHEDULER_FORMAT, 3, "a new format needs its case here");
    for older in [None, Some(1), Some(2)] {
        let finish = resumed_from(older).await.unwrap();
        assert!(
            matches!(finish, Finish::Completed { .. }),
            "format {older:?}: {finish:?}"
        );
    }
    let newer = resumed_from(Some(SCHEDULER_FORMAT + 1)).await.unwrap_err();
    let msg = orchestra_runtime::error_chain(&newer);
    assert!(
        msg.contains("stored by a newer orchestra (pipeline format 2, scheduler format 4; this one reads up to 2 and 3); upgrade orchestra"),
        "{msg}"
    );
}
