//! The database grows linearly with the number of steps (deltas, not full state per step) and
//! stays small: LangGraph's SqliteSaver needs ~500 MB for `chain 1600`.

use orchestra_store::Store;
use orchestra_store_sqlite::SqliteStore;

use crate::chain::{self, Snapshots};

/// Size in bytes of a database after recording `chain steps` (WAL folded in by closing).
fn chain_db_size(steps: u64, policy: Snapshots) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    {
        let mut s = SqliteStore::open(&path).unwrap();
        s.create_session(&chain::session("c")).unwrap();
        chain::run(&mut s, "c", steps, policy).unwrap();
    }
    assert!(
        !path.with_extension("db-wal").exists(),
        "closing the last connection folds the WAL in"
    );
    std::fs::metadata(&path).unwrap().len()
}

#[test]
fn deltas_grow_linearly_with_steps() {
    let base = chain_db_size(0, Snapshots::Initial);
    let n = chain_db_size(400, Snapshots::Initial) - base;
    let n2 = chain_db_size(800, Snapshots::Initial) - base;
    let ratio = n2 as f64 / n as f64;
    assert!(
        (1.8..=2.2).contains(&ratio),
        "doubling the steps multiplied the size by {ratio:.2} ({n} -> {n2} bytes)"
    );
    // A task row, a node run and a checkpoint row per step.
    assert!(n2 / 800 < 600, "{} bytes per step", n2 / 800);
}

#[test]
fn chain_1600_with_runtime_snapshots_stays_small_and_near_linear() {
    let half = chain_db_size(800, Snapshots::Runtime);
    let full = chain_db_size(1600, Snapshots::Runtime);
    // Geometric snapshots add a sawtooth (the last one may be up to 1.5x the previous), but the
    // growth stays linear: quadratic growth (state per step) would give 4.
    let ratio = full as f64 / half as f64;
    assert!(
        (1.5..=2.5).contains(&ratio),
        "{half} -> {full} bytes ({ratio:.2}x)"
    );
    // LangGraph: ~500 MB, the target is 50x smaller (10 MB); we are far below.
    assert!(
        full < 2_000_000,
        "chain 1600 took {full} bytes ({} per step)",
        full / 1600
    );
}

#[test]
fn restoring_the_last_step_of_a_chain_replays_a_bounded_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(dir.path().join("o.db")).unwrap();
    s.create_session(&chain::session("c")).unwrap();
    chain::run(&mut s, "c", 300, Snapshots::Runtime).unwrap();
    let rp = s.restore_point("c", 300).unwrap().unwrap();
    let messages = rp.base.snapshot.as_ref().unwrap()["messages"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(
        messages, rp.base.step,
        "the snapshot holds the state after its step"
    );
    assert_eq!(rp.tasks.len() as u64, 300 - rp.base.step);
    assert!(
        rp.tasks.len() <= 150,
        "snapshots keep replays short: {} tasks",
        rp.tasks.len()
    );
    let snapshots = s
        .checkpoints("c")
        .unwrap()
        .iter()
        .filter(|c| c.has_snapshot)
        .count();
    // Spaced by a factor of ~1.5 from step 10: about log1.5(30) + 2, not 300 / 10.
    assert!(snapshots <= 12, "{snapshots} snapshots");
}
