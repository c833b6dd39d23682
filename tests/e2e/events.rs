//! `run/resume/replay --events FILE|-`: every event kind a run produces appears, once per line,
//! in its versioned envelope; node runs open and close in pairs; the file is written as the
//! session goes; `-` shares the terminal with the progress lines; a file that cannot be opened
//! is refused before the run starts, and one that fails midway does not stop the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::common::wait_until;
use super::gitrepo::GitProject;
use super::project::Project;
use super::readme::Repo;

/// The lines of an events file (or of stdout), each parsed and checked against the envelope:
/// `v` is 1, `ts` is an RFC 3339 UTC time with milliseconds, `session` is `session`.
pub(crate) fn parse_events(text: &str, session: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert_eq!(v["v"], 1, "{line}");
            let ts = v["ts"].as_str().unwrap_or_else(|| panic!("no ts: {line}"));
            let shape = regex_like_rfc3339_millis(ts);
            assert!(shape, "ts is not RFC 3339 with milliseconds: {line}");
            assert_eq!(v["session"], session, "{line}");
            assert!(v["event"].is_string(), "{line}");
            v
        })
        .collect()
}

/// `2026-12-03T09:33:15.123Z`.
fn regex_like_rfc3339_millis(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn kinds(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// What holds for the events of any drive that completed or failed: it starts with
/// `session_started` and ends with `session_finished` (whose status is `status`); every attempt
/// of a node that started ends (finished, retried or failed); checkpoints count up one by one;
/// the tool calls agree with what the finished runs report.
pub(crate) fn check_drive(events: &[Value], status: &str) {
    let first = &events[0];
    let last = events.last().unwrap();
    assert_eq!(first["event"], "session_started", "{first}");
    assert_eq!(last["event"], "session_finished", "{last}");
    assert_eq!(last["status"], status, "{last}");
    let mut open: BTreeMap<(u64, String), i64> = BTreeMap::new();
    let mut tools_called = 0;
    let mut tools_reported = 0;
    let mut checkpoints = Vec::new();
    for e in events {
        let key = || {
            (
                e["step"].as_u64().unwrap(),
                e["node"].as_str().unwrap().to_owned(),
            )
        };
        match e["event"].as_str().unwrap() {
            "node_started" => {
                let n = open.entry(key()).or_default();
                assert_eq!(*n, 0, "started twice without an end: {e}");
                *n += 1;
            }
            "node_finished" if e["reused"] == true => {}
            "node_finished" | "node_retry" | "node_failed" => {
                let n = open.entry(key()).or_default();
                assert_eq!(*n, 1, "ended without a start: {e}");
                *n -= 1;
                tools_reported += e["tool_calls"].as_u64().unwrap_or(0);
            }
            "tool_called" => {
                assert_eq!(
                    open.get(&key()),
                    Some(&1),
                    "a tool call outside its run: {e}"
                );
                tools_called += 1;
            }
            "model_turn" => {
                let inside = open.get(&key()) == Some(&1);
                assert!(inside, "a model turn outside its run: {e}");
            }
            "checkpoint" => checkpoints.push(e["step"].as_u64().unwrap()),
            _ => {}
        }
    }
    assert!(open.values().all(|n| *n == 0), "runs left open: {open:?}");
    assert_eq!(tools_called, tools_reported);
    let from = first["from_step"].as_u64().unwrap_or(0);
    let expected: Vec<u64> = (from + 1..=last["steps"].as_u64().unwrap()).collect();
    assert_eq!(checkpoints, expected);
}

/// The kinds every completed run of a pipeline whose agents call tools produces.
const COMPLETED_RUN: [&str; 7] = [
    "checkpoint",
    "node_finished",
    "node_started",
    "session_finished",
    "session_started",
    "step_started",
    "tool_called",
];

fn session_of(output: &str) -> String {
    output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap_or_else(|| panic!("no session line in {output}"))
        .to_owned()
}

#[test]
fn a_pr_review_run_and_its_replay_write_every_event_they_produce() {
    let repo = Repo::new();
    let run = repo.orchestra(
        &[
            "run",
            "pipelines/pr-review.yaml",
            "--events",
            "events.jsonl",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let text = std::fs::read_to_string(repo.root.join("events.jsonl")).unwrap();
    let events = parse_events(&text, &id);
    check_drive(&events, "completed");
    let got = kinds(&events);
    for kind in COMPLETED_RUN {
        assert!(got.contains(kind), "no `{kind}` in {got:?}");
    }
    // The critic sent the reviewers back once: the first three steps, then the loop's round.
    let steps: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| &e["nodes"])
        .collect();
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[1], &serde_json::json!(["critic"]));
    let finished = events.last().unwrap();
    assert_eq!(finished["steps"], 5);
    assert!(finished["tokens_in"].as_u64().unwrap() > 0, "{finished}");
    assert_eq!(finished["error"], Value::Null);

    // A replay from checkpoint 2 appends its own drive to the same file.
    let replay = repo.orchestra(
        &[
            "replay",
            &id,
            "--checkpoint",
            "2",
            "--events",
            "events.jsonl",
        ],
        "",
    );
    assert_eq!(replay.code, 0, "{}", replay.transcript());
    let fork = session_of(&replay.stdout);
    let all = std::fs::read_to_string(repo.root.join("events.jsonl")).unwrap();
    let appended = &all[text.len()..];
    let events = parse_events(appended, &fork);
    assert_eq!(events[0]["from_step"], 2);
    check_drive(&events, "completed");
}

#[test]
fn a_parallel_edit_run_writes_every_event_it_produces() {
    let p = GitProject::new(&[]);
    let run = p.orchestra(&[
        "run",
        "pipelines/parallel-edit.yaml",
        "--events",
        "../events.jsonl",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let text = std::fs::read_to_string(p.root().join("../events.jsonl")).unwrap();
    let events = parse_events(&text, &id);
    check_drive(&events, "completed");
    let got = kinds(&events);
    for kind in COMPLETED_RUN {
        assert!(got.contains(kind), "no `{kind}` in {got:?}");
    }
    // The two coders ran in the same step, each with its own start and end.
    let step1: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "node_finished" && e["step"] == 1)
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(step1, BTreeSet::from(["coder-a", "coder-b"]));
    let tools: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "tool_called")
        .map(|e| e["tool"].as_str().unwrap())
        .collect();
    assert!(tools.contains("app:write-file"), "{tools:?}");
    assert!(tools.contains("app:run-test"), "{tools:?}");
}

#[test]
fn retries_failures_and_their_outcome_are_events_too() {
    let p = Project::new();
    let run = p.run(&["run", "limits/breaker.yaml", "--events", "breaker.jsonl"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let events = parse_events(
        &std::fs::read_to_string(p.path("breaker.jsonl")).unwrap(),
        &id,
    );
    check_drive(&events, "failed");
    let got = kinds(&events);
    for kind in ["node_retry", "node_failed"] {
        assert!(got.contains(kind), "no `{kind}` in {got:?}");
    }
    let last = events.last().unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("circuit breaker"),
        "{last}"
    );

    // A resume (which fails the same way) names the session from its first line on.
    let again = p.run(&["resume", &id[..12], "--events", "-", "--quiet"]);
    assert_eq!(again.code, 1, "{}", again.transcript());
    let events = parse_events(&again.stdout, &id);
    check_drive(&events, "failed");
    assert!(
        again.stderr.contains("\nfailed: agent `"),
        "{}",
        again.stderr
    );
}

#[test]
fn events_on_stdout_leave_the_progress_and_the_outcome_on_stderr() {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/pr-review.yaml", "--events", "-"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stderr);
    let events = parse_events(&run.stdout, &id);
    check_drive(&events, "completed");
    assert!(
        run.stderr
            .contains("step 1: security-reviewer, architecture-reviewer\n")
    );
    assert!(run.stderr.contains("completed: 5 steps"), "{}", run.stderr);

    let both = repo.orchestra(
        &["run", "pipelines/pr-review.yaml", "--events", "-", "--json"],
        "",
    );
    assert_eq!(both.code, 2, "{}", both.transcript());
    assert_eq!(
        both.stderr,
        "error: `--events -` and `--json` both write to stdout; give --events a file\n"
    );
}

#[test]
fn an_events_file_that_cannot_be_opened_is_refused_before_the_run_starts() {
    let p = Project::new();
    p.write("a-file", "");
    for (path, why) in [
        ("no-such-dir/events.jsonl", "No such file or directory"),
        ("a-file/events.jsonl", "Not a directory"),
    ] {
        let run = p.run(&["run", "slow.yaml", "--events", path]);
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(
            run.stderr
                .starts_with(&format!("error: cannot open the events file {path}: {why}")),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert!(
        !p.path(super::project::DB).exists() || p.sessions().is_empty(),
        "no session was created"
    );
}

#[test]
fn a_failing_events_file_is_warned_about_once_and_the_run_goes_on() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let p = Project::new();
    p.open_gate();
    let run = p.run(&["run", "slow.yaml", "--events", "/dev/full"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("cannot write the events"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: cannot write the events to /dev/full: No space left on device (os error 28); the run goes on without them"
        ]
    );
    assert!(
        run.stdout.starts_with("completed: 2 steps"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_file_is_written_as_the_session_goes() {
    let p = Project::new();
    let running = p.spawn(&["run", "slow.yaml", "--events", "live.jsonl"]);
    // `first` waits for the gate: its start is in the file while the run is still going.
    let seen = wait_until("node_started of `first` in the events file", || {
        let text = std::fs::read_to_string(p.path("live.jsonl")).ok()?;
        text.lines()
            .any(|l| l.contains(r#""event":"node_started""#) && l.contains(r#""node":"first""#))
            .then_some(text)
    });
    assert!(!seen.contains("session_finished"), "{seen}");
    p.open_gate();
    let run = running.finish();
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let events = parse_events(&std::fs::read_to_string(p.path("live.jsonl")).unwrap(), &id);
    check_drive(&events, "completed");
}

#[test]
fn a_reader_that_leaves_the_pipe_costs_a_warning_not_the_run() {
    use std::process::Stdio;
    let p = Project::new();
    p.open_gate();
    let mut child = p
        .command(&["run", "slow.yaml", "--events", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the first event.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot write the events"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: cannot write the events to stdout: Broken pipe (os error 32); the run goes on without them"
        ],
        "{stderr}"
    );
    assert!(stderr.contains("\ncompleted: 2 steps"), "{stderr}");
}
