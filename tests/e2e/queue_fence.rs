//! Fencing with real worker processes: a worker stopped (SIGSTOP) past its lease while another
//! takes its session over commits nothing of its step when it wakes up (SIGCONT), leaves the
//! session to the other, warns once and goes on. On SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::process::{Child, Command};

use super::common::wait_until;
use super::queue::{Queue, terminate};

/// Sends `signal` (`STOP`, `CONT`) to `child` with the `kill` program.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal}");
}

/// How many times the command node `node` of the session tagged `tag` ran.
fn ran(q: &Queue, tag: &str, node: &str) -> u32 {
    q.runs()
        .get(&(tag.to_owned(), node.to_owned()))
        .copied()
        .unwrap_or(0)
}

fn a_stalled_worker_commits_nothing_once_another_took_its_session(q: &Queue) {
    let id = q.enqueue("x");
    let mut a = q.worker(0, &["-j", "1"]);
    // Worker A is in the first step: its command `a` runs (for 2s), and A is stopped.
    wait_until("worker A to start step a", || {
        (ran(q, "x", "a") == 1).then_some(())
    });
    signal(&a, "STOP");
    // Its lease (2s) runs out; worker B claims the session and starts it over from checkpoint 0.
    wait_until("A's lease to expire", || {
        let rec = q.store().session(&id).unwrap().unwrap();
        rec.lease_holder(orchestra_store::system_now_ms())
            .is_none()
            .then_some(())
    });
    let mut b = q.worker(1, &["-j", "1", "--until-idle"]);
    wait_until("worker B to run step a again", || {
        (ran(q, "x", "a") == 2).then_some(())
    });
    let owner_b = format!("{}@", b.id());
    assert!(
        q.worker_err(1).contains(&format!(
            "claimed {id} (queued), driven before by {}@",
            a.id()
        )),
        "{}",
        q.worker_err(1)
    );
    // A wakes up while B drives: its step finished meanwhile (or its renewal finds the lease
    // gone); nothing of it is committed.
    signal(&a, "CONT");
    let warning = wait_until("worker A to warn", || {
        q.worker_err(0)
            .lines()
            .find(|l| l.starts_with("warning: lost the lease"))
            .map(str::to_owned)
    });
    assert!(
        warning.starts_with(&format!("warning: lost the lease of {id} to {owner_b}"))
            && warning.ends_with("; dropped its step"),
        "{warning}"
    );
    let code = wait_until("worker B to finish", || b.try_wait().unwrap());
    assert_eq!(code.code(), Some(0), "{}", q.worker_err(1));
    assert_eq!(q.statuses()[&id], "completed", "B's end stands");
    assert_eq!(q.lease(&id), None);

    // Each step is committed once, by B: one checkpoint per step, one successful run of each
    // node (A's run of `a` and the scripted agent's call, had A made it, are not stored).
    let store = q.store();
    let steps: Vec<u64> = store
        .checkpoints(&id)
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    let mut runs: BTreeMap<String, u32> = BTreeMap::new();
    for r in store.node_runs(&id).unwrap() {
        *runs.entry(r.node).or_default() += 1;
    }
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        ["a", "b", "c", "think"].map(|n| (n.to_owned(), 1)),
    );
    assert_eq!(
        store.trace(&id).unwrap().turns.len(),
        1,
        "the scripted model was called once"
    );
    assert_eq!((ran(q, "x", "b"), ran(q, "x", "c")), (1, 1));
    // A went on working (it is alive and stops cleanly); it said so once and nothing else.
    assert!(a.try_wait().unwrap().is_none(), "{}", q.worker_err(0));
    assert_eq!(terminate(&mut a), 0, "{}", q.worker_err(0));
    let a_err = q.worker_err(0);
    assert_eq!(a_err.matches("lost the lease").count(), 1, "{a_err}");
    assert!(
        !a_err.contains("failed") && !a_err.contains("requeued"),
        "{a_err}"
    );
}

#[test]
fn a_stalled_worker_is_fenced_out_on_sqlite() {
    a_stalled_worker_commits_nothing_once_another_took_its_session(&Queue::sqlite("2"));
}

#[test]
fn a_stalled_worker_is_fenced_out_on_postgres() {
    a_stalled_worker_commits_nothing_once_another_took_its_session(&Queue::new("2"));
}
