//! The queue when things go wrong around it: the PostgreSQL server restarting and stopping
//! under a worker (a server of the test's own), and a worker started with flags or a database
//! it cannot work with.

use std::time::Instant;

use orchestra_store_postgres::testing::start_own_server;

use super::common::{orchestra, wait_until};
use super::queue::Queue;

/// The CPU time (user + system, in clock ticks of 10ms) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_worker_rides_out_the_database_restarting_and_stopping() {
    let server = start_own_server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.url(&server.create_database().unwrap());
    let q = Queue::on("1", Some(db));
    let ids: Vec<String> = (0..6).map(|i| q.enqueue(&format!("s{i}"))).collect();
    let mut w = q.worker(0, &["-j", "2", "--until-idle"]);

    // A restart while two sessions are in a step: the calls cut off fail, the next ones
    // connect again, and the sessions go on (none is failed for it).
    wait_until("two sessions to start", || {
        (q.runs().len() >= 2).then_some(())
    });
    server.stop().unwrap();
    server.start().unwrap();
    let ran = q.runs().len();
    wait_until("the sessions to go on after the restart", || {
        (q.runs().len() >= ran + 2).then_some(())
    });

    // A longer stop: the drives lose the database and the worker keeps going, backs off
    // between claims instead of spinning, and does not take the database's silence for an
    // empty queue (`--until-idle`).
    server.stop().unwrap();
    let (cpu0, t0) = (cpu_ticks(w.id()), Instant::now());
    let backoffs = |err: &str| err.matches("trying again in").count();
    let before = backoffs(&q.worker_err(0));
    wait_until(
        "the worker to lose the database and back off 4 times",
        || {
            let err = q.worker_err(0);
            (backoffs(&err) >= before + 4 && err.contains("lost the database while driving it"))
                .then_some(())
        },
    );
    let (cpu, wall) = (cpu_ticks(w.id()) - cpu0, t0.elapsed());
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker exited with the database down: {}",
        q.worker_err(0)
    );
    let cpu_ms = cpu * 10;
    assert!(
        u128::from(cpu_ms) * 2 < wall.as_millis().max(1000),
        "the worker used {cpu_ms}ms of CPU in {wall:?} with the database down: {}",
        q.worker_err(0)
    );
    server.start().unwrap();

    let code = wait_until("the worker to drain the queue", || w.try_wait().unwrap());
    let err = q.worker_err(0);
    assert_eq!(code.code(), Some(0), "{err}");
    assert!(!err.contains("\nfailed "), "{err}");
    let st = q.statuses();
    for id in &ids {
        assert_eq!(st[id], "completed", "{st:?}\n{err}");
        assert_eq!(q.lease(id), None);
    }
    let runs = q.runs();
    for i in 0..6 {
        for node in ["a", "b", "c"] {
            assert!(
                runs.contains_key(&(format!("s{i}"), node.to_owned())),
                "s{i} {node} never ran: {runs:?}"
            );
        }
    }
}

#[test]
fn a_worker_refuses_a_busy_poll_and_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let poll = orchestra(
        dir.path(),
        &home,
        &["worker", "--poll", "0", "--until-idle"],
    );
    assert_eq!(poll.code, 2, "{}", poll.transcript());
    assert!(
        poll.stderr
            .contains("--poll 0ms is too short (at least 10ms)"),
        "{}",
        poll.transcript()
    );

    // No `--db`, no ORCHESTRA_DATABASE, no project: not an empty database made here to wait on.
    let none = orchestra(dir.path(), &home, &["worker"]);
    assert_eq!(none.code, 2, "{}", none.transcript());
    assert!(
        none.stderr
            .contains("there is no session database at .orchestra/orchestra.db"),
        "{}",
        none.transcript()
    );
    assert!(
        none.stderr.contains("ORCHESTRA_DATABASE"),
        "{}",
        none.transcript()
    );
    assert!(!dir.path().join(".orchestra").exists());

    // Once a session is queued there, a worker serves that database.
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        "name: p\nagents:\n  a: { command: [\"true\"] }\ngraph:\n  - { from: START, to: a }\n  - { from: a, to: END }\n",
    )
    .unwrap();
    let queued = orchestra(dir.path(), &home, &["run", "p.yaml", "--queue", "-q"]);
    assert_eq!(queued.code, 0, "{}", queued.transcript());
    let drained = orchestra(
        dir.path(),
        &home,
        &["worker", "--until-idle", "--poll", "10ms"],
    );
    assert_eq!(drained.code, 0, "{}", drained.transcript());
    assert!(
        drained
            .stderr
            .contains(&format!("completed {} after", queued.stdout.trim())),
        "{}",
        drained.transcript()
    );
}
