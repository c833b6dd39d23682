//! Many processes on one database file: 16 sessions run at once without a single "database is
//! locked", and a session is driven by one process at a time — a second one is refused with a
//! clear message and exit code 4.

use super::common::wait_until;
use super::project::{Project, Running};

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

#[test]
fn sixteen_sessions_in_sixteen_processes_share_one_database() {
    let p = Project::new();
    // All start on a database that does not exist yet: they race to create it too.
    let mut running: Vec<Running> = (0..16)
        .map(|_| p.spawn(&["run", "busy.yaml", "--quiet"]))
        .collect();
    // Readers at the same time: `status` while the sessions write.
    let mut reads = 0;
    while running
        .iter_mut()
        .any(|r| r.child.try_wait().unwrap().is_none())
    {
        let status = p.run(&["status", "--json"]);
        assert_eq!(status.code, 0, "{}", status.transcript());
        reads += 1;
    }
    assert!(reads > 0);
    let runs: Vec<_> = running.into_iter().map(Running::finish).collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.transcript());
        assert!(
            !run.transcript().to_lowercase().contains("locked"),
            "{}",
            run.transcript()
        );
    }
    let sessions = p.sessions();
    assert_eq!(sessions.len(), 16);
    for s in &sessions {
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(
            (s["steps"].as_u64(), s["checkpoints"].as_u64()),
            (Some(20), Some(21))
        );
    }
}

#[test]
fn a_second_process_cannot_drive_a_running_session() {
    let p = Project::new();
    let first = p.spawn(&["run", "slow.yaml"]);
    let line = first.wait_for("session ").unwrap();
    let id = line.split(' ').nth(1).unwrap().to_owned();
    assert!(first.wait_for("start  first").is_some());
    // `first` runs until the gate opens: the session is being driven meanwhile.
    let second = p.run(&["resume", &id]);
    assert_eq!(second.code, 4, "{}", second.transcript());
    let pid = first.child.id();
    assert!(
        second.stderr.starts_with(&format!(
            "error: session `{id}` is being driven by another process ({pid}@"
        )) && second
            .stderr
            .ends_with("); wait for it to finish or stop it first\n"),
        "{}",
        second.transcript()
    );
    assert_eq!(
        p.status(&id)["lease_owner"]
            .as_str()
            .map(|o| o.starts_with(&format!("{pid}@"))),
        Some(true)
    );
    // The refusal did not disturb the first process.
    p.open_gate();
    let run = first.finish();
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(p.status(&id)["status"], "completed");
}

#[test]
fn of_many_processes_resuming_one_session_exactly_one_drives_it() {
    let p = Project::new();
    let first = p.spawn(&["run", "slow.yaml"]);
    assert!(first.wait_for("start  first").is_some());
    first.signal("INT", false);
    let run = first.finish();
    assert_eq!(run.code, 130, "{}", run.transcript());
    let id = session_of(&run.stdout);
    // The one that drives it runs `first` again, which waits for the gate: every other one
    // gives up meanwhile.
    let mut resumers: Vec<Running> = (0..6).map(|_| p.spawn(&["resume", &id])).collect();
    wait_until("five of the six resumes to give up", || {
        let ended = resumers
            .iter_mut()
            .map(|r| r.child.try_wait().unwrap())
            .filter(Option::is_some)
            .count();
        (ended == 5).then_some(())
    });
    p.open_gate();
    let runs: Vec<_> = resumers.into_iter().map(Running::finish).collect();
    let drove: Vec<_> = runs.iter().filter(|r| r.code == 0).collect();
    assert_eq!(drove.len(), 1, "{runs:#?}");
    for r in runs.iter().filter(|r| r.code != 0) {
        assert!(
            r.code == 4 && r.stderr.contains("is being driven by another process"),
            "{}",
            r.transcript()
        );
    }
    let status = p.status(&id);
    assert_eq!(status["status"], "completed");
    // Each agent ran once (`first` again, as it was cut off), never twice in parallel.
    let runs: Vec<(&str, u64)> = status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["node"].as_str().unwrap(), u["runs"].as_u64().unwrap()))
        .collect();
    assert_eq!(runs, [("first", 1), ("second", 1)]);
}
