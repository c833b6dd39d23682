//! Workers on two machines sharing a writable repository through a bare remote: `run --queue`
//! from directory A, an `orchestra worker` in A killed (SIGKILL) right after writer-1's commit
//! reached the remote, an `orchestra worker --until-idle` in directory B that takes the session
//! over once the lease expired and finishes it. Each directory has its own `orchestra.yaml`
//! naming the shared database; a third directory reads the session with only the database URL.
//! The remote is checked with the git CLI.

use std::process::Child;

use super::common::wait_until;
use super::git_remote::{Machine, Remote, wait_for_session_branch};

/// `orchestra worker` with a short lease, its stderr to `worker.err`.
fn worker(m: &Machine, extra: &[&str]) -> Child {
    let mut args = vec!["worker", "--lease-ttl", "2s", "--poll", "100ms", "-j", "1"];
    args.extend(extra);
    m.spawn_logged_to("worker.err", &args)
}

fn worker_err(m: &Machine) -> String {
    std::fs::read_to_string(m.root.join("worker.err")).unwrap_or_default()
}

fn two_workers(remote: &Remote) {
    let a = remote.machine("a", 600).database_in_yaml();
    let b = remote.machine("b", 0).database_in_yaml();
    let queued = a.orchestra(&["run", "pipelines/remote-edit.yaml", "--queue"]);
    assert_eq!(queued.code, 0, "{}", queued.transcript());
    let id = queued.stdout.trim().to_owned();

    let mut wa = worker(&a, &[]);
    let branch = wait_for_session_branch(remote);
    assert!(branch.ends_with(&id), "{branch} is not the branch of {id}");
    // Killed as soon as writer-1's commit is on the remote (writer-2 needs two answers of
    // 600 ms before its own): whether or not its checkpoint was stored by then.
    wait_until("writer-1's commit on the remote", || {
        (remote.agents(&branch) == ["writer-1"]).then_some(())
    });
    wa.kill().unwrap();
    wa.wait().unwrap();
    assert_eq!(remote.agents(&branch), ["writer-1"], "killed too late");
    assert!(
        worker_err(&a).contains(&format!("claimed {id} (remote-edit)")),
        "{}",
        worker_err(&a)
    );

    // B's worker takes the session over once A's lease expired (seen from a third directory),
    // and drains the queue.
    let c = remote.machine("c", 0);
    wait_until("A's lease to expire", || {
        c.json(&["status", &id], 0)["lease_owner"]
            .is_null()
            .then_some(())
    });
    let mut wb = worker(&b, &["--until-idle"]);
    let code = wait_until("B's worker to drain the queue", || wb.try_wait().unwrap());
    let err_b = worker_err(&b);
    assert_eq!(code.code(), Some(0), "{err_b}");
    assert!(
        err_b.contains(&format!(
            "claimed {id} (remote-edit), driven before by {}@",
            wa.id()
        )),
        "{err_b}"
    );
    assert!(err_b.contains(&format!("completed {id} after")), "{err_b}");

    // The session branch on the remote: every writer's commit exactly once, with its file.
    assert_eq!(
        remote.agents(&branch),
        ["writer-1", "writer-2", "writer-3"],
        "each writer's commit once"
    );
    let subjects = remote.git(&["log", "--format=%s", &format!("main..{branch}")]);
    for n in 1..=3 {
        assert_eq!(
            subjects.matches(&format!("writer-{n}")).count(),
            1,
            "{subjects}"
        );
        let file = remote.git(&["show", &format!("{branch}:out/writer-{n}.txt")]);
        assert_eq!(file, format!("written by writer {n}\n"));
    }
    remote.git(&["fsck", "--strict"]);

    // The third directory, with nothing but the database URL, sees it completed with its runs.
    let status = c.json(&["status", &id], 0);
    assert_eq!(status["status"], "completed", "{status}");
    let shown = c.json(&["show", &id], 0);
    let mut ok: Vec<String> = shown["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {shown}"))
        .iter()
        .flat_map(|step| step["runs"].as_array().cloned().unwrap_or_default())
        .filter(|run| run["status"] == "ok")
        .map(|run| run["node"].as_str().unwrap_or_default().to_owned())
        .collect();
    ok.sort();
    assert_eq!(
        ok,
        ["writer-1", "writer-2", "writer-3"],
        "one successful run per writer: {shown}"
    );
    let plain = c.orchestra(&["show", &id]);
    assert_eq!(plain.code, 0, "{}", plain.transcript());
    assert!(plain.stdout.contains("writer-3"), "{}", plain.stdout);
}

#[test]
fn workers_in_two_directories_share_a_repository_through_a_bare_remote() {
    two_workers(&Remote::new(None));
}

#[test]
fn workers_in_two_directories_share_a_repository_through_a_bare_remote_on_postgresql() {
    let server = orchestra_store_postgres::testing::server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    two_workers(&Remote::new(Some((
        server.url_without_password(&db),
        server.password.clone(),
    ))));
}
