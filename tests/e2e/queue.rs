//! The queue on a real PostgreSQL server: `run --queue` stores sessions, `orchestra worker`
//! processes claim and drive them; one worker killed with SIGKILL mid-step loses nothing and
//! re-runs no finished task; SIGTERM re-queues what a worker was driving; a session paused for
//! a human is answered by `attach` and handed back to the workers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orchestra_store::Store as _;
use orchestra_store_postgres::PgStore;
use orchestra_store_postgres::testing::server;
use serde_json::Value;

use super::binary::orchestra_bin;
use super::common::{PATIENCE, Run, copy_dir, orchestra, wait_until, workspace_root};

/// Three command nodes around a scripted agent: each command appends `TAG NODE` to the log
/// (the count of its runs) and sleeps, so a worker killed at any time is mid-step.
const PIPELINE: &str = r#"name: queued
defaults: { provider: scripted, model: worker }
providers:
  scripted: { kind: scripted, responses: ../fixtures/queue.responses.yaml, latency_ms: 50 }
inputs:
  tag: { type: string, required: true }
  log: { type: string, required: true }
agents:
  a: { command: [sh, -c, 'echo "$1 a" >> "$2"; sleep "$3"', a, "{{ inputs.tag }}", "{{ inputs.log }}", "{{ inputs.nap }}"] }
  think: { task: { text: "think about {{ inputs.tag }}" } }
  b: { command: [sh, -c, 'echo "$1 b" >> "$2"; sleep "$3"', b, "{{ inputs.tag }}", "{{ inputs.log }}", "{{ inputs.nap }}"] }
  c: { command: [sh, -c, 'echo "$1 c" >> "$2"', c, "{{ inputs.tag }}", "{{ inputs.log }}"] }
graph:
  - { from: START, to: a }
  - { from: a, to: think }
  - { from: think, to: b }
  - { from: b, to: c }
  - { from: c, to: END }
"#;

const RESPONSES: &str = "agents:\n  \"*\":\n    runs:\n      - turns:\n          - text: thought\n";

/// A temp project holding [`PIPELINE`] and a database of its own on the test server (or a
/// SQLite file in it).
pub(super) struct Queue {
    dir: tempfile::TempDir,
    pub(super) db: String,
}

impl Queue {
    pub(super) fn new(nap: &str) -> Queue {
        let server = server().unwrap_or_else(|e| panic!("{e}"));
        Queue::on(nap, Some(server.url(&server.create_database().unwrap())))
    }

    /// [`Queue::new`] on a SQLite file of the project (`.orchestra/workers.db`).
    pub(super) fn sqlite(nap: &str) -> Queue {
        Queue::on(nap, None)
    }

    pub(super) fn on(nap: &str, db: Option<String>) -> Queue {
        let dir = tempfile::tempdir().unwrap();
        let db = db.unwrap_or_else(|| {
            dir.path()
                .join(".orchestra/workers.db")
                .display()
                .to_string()
        });
        let root = dir.path();
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::create_dir_all(root.join("fixtures")).unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        let pipeline = PIPELINE.replace(
            "  log: { type: string, required: true }\n",
            &format!("  log: {{ type: string, required: true }}\n  nap: {{ type: string, default: \"{nap}\" }}\n"),
        );
        std::fs::write(root.join("pipelines/queued.yaml"), pipeline).unwrap();
        std::fs::write(root.join("fixtures/queue.responses.yaml"), RESPONSES).unwrap();
        Queue { dir, db }
    }

    pub(super) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn log(&self) -> PathBuf {
        self.root().join("runs.log")
    }

    /// `orchestra ARGS --db URL`.
    pub(super) fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--db", &self.db]);
        orchestra(self.root(), &self.root().join("home"), &all)
    }

    /// Queues a session tagged `tag`; returns its id.
    pub(super) fn enqueue(&self, tag: &str) -> String {
        let log = self.log().display().to_string();
        let run = self.run(&[
            "run",
            "pipelines/queued.yaml",
            "--queue",
            "-i",
            &format!("tag={tag}"),
            "-i",
            &format!("log={log}"),
        ]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        run.stdout.trim().to_owned()
    }

    /// Starts a worker; its stderr goes to `worker-N.err`.
    pub(super) fn worker(&self, n: usize, extra: &[&str]) -> Child {
        let err = std::fs::File::create(self.root().join(format!("worker-{n}.err"))).unwrap();
        Command::new(orchestra_bin())
            .args([
                "worker",
                "--db",
                &self.db,
                "--lease-ttl",
                "2s",
                "--poll",
                "100ms",
            ])
            .args(extra)
            .current_dir(self.root())
            .env_clear()
            .env("HOME", self.root().join("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    }

    pub(super) fn worker_err(&self, n: usize) -> String {
        std::fs::read_to_string(self.root().join(format!("worker-{n}.err"))).unwrap_or_default()
    }

    /// `(tag, node)` -> how many times the command ran.
    pub(super) fn runs(&self) -> BTreeMap<(String, String), u32> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let mut runs = BTreeMap::new();
        for line in text.lines() {
            let (tag, node) = line.split_once(' ').unwrap();
            *runs.entry((tag.to_owned(), node.to_owned())).or_default() += 1;
        }
        runs
    }

    /// `status --json` rows, from another process: id -> status.
    pub(super) fn statuses(&self) -> BTreeMap<String, String> {
        let run = self.run(&["status", "--json", "--limit", "500"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let rows: Vec<Value> = serde_json::from_str(run.stdout.trim()).unwrap();
        rows.iter()
            .map(|r| {
                let id = r["id"].as_str().unwrap().to_owned();
                (id, r["status"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// Who holds the lease of `id`, read from the database.
    pub(super) fn lease(&self, id: &str) -> Option<String> {
        self.store().session(id).unwrap().unwrap().lease_owner
    }

    /// The database, opened by this process.
    pub(super) fn store(&self) -> Box<dyn orchestra_store::Store> {
        if self.db.starts_with("postgres") {
            Box::new(PgStore::connect(&self.db).unwrap())
        } else {
            Box::new(orchestra_store_sqlite::SqliteStore::open(&self.db).unwrap())
        }
    }
}

/// Sends SIGTERM to `child` (with the `kill` program) and waits for its exit code.
pub(super) fn terminate(child: &mut Child) -> i32 {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let code = wait_until("the worker to exit", || child.try_wait().unwrap());
    code.code().unwrap_or(-1)
}

/// The sessions a worker's stderr says it claimed and did not finish.
fn unfinished(err: &str) -> Vec<String> {
    let claimed = err
        .lines()
        .filter_map(|l| l.strip_prefix("claimed "))
        .map(|l| l.split(' ').next().unwrap().to_owned());
    claimed
        .filter(|id| !err.contains(&format!("completed {id} after")))
        .collect()
}

#[test]
fn three_workers_drive_fifty_sessions_and_a_worker_killed_mid_step_loses_nothing() {
    let q = Queue::new("0.1");
    // Queued from 5 processes at a time (the order of the ids is the order of the tags).
    let ids: Vec<String> = std::thread::scope(|scope| {
        let q = &q;
        let handles: Vec<_> = (0..5)
            .map(|k| {
                scope.spawn(move || {
                    (0..10)
                        .map(|j| {
                            let i = k * 10 + j;
                            (i, q.enqueue(&format!("s{i:02}")))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, String)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        all.into_iter().map(|(_, id)| id).collect()
    });
    let listed = q.statuses();
    assert!(ids.iter().all(|id| listed[id] == "queued"), "{listed:?}");

    let tag_of: BTreeMap<&str, String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), format!("s{i:02}")))
        .collect();
    let mut workers: Vec<Child> = (0..3).map(|n| q.worker(n, &["-j", "4"])).collect();
    // Kill worker 0 once it has finished a session and is in the middle of step `b` of another
    // (its command has started and the next one has not).
    wait_until("worker 0 to finish a session", || {
        q.worker_err(0).contains("completed ").then_some(())
    });
    wait_until("worker 0 to be mid-step", || {
        let runs = q.runs();
        let ran = |tag: &str, node: &str| runs.contains_key(&(tag.to_owned(), node.to_owned()));
        unfinished(&q.worker_err(0))
            .iter()
            .any(|id| ran(&tag_of[id.as_str()], "b") && !ran(&tag_of[id.as_str()], "c"))
            .then_some(())
    });
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    let orphans = unfinished(&q.worker_err(0));
    assert!(!orphans.is_empty() && orphans.len() <= 4, "{orphans:?}");
    // Its sessions wait for another worker (its lease of 2s runs out first): `status` shows
    // them `queued`, never `interrupted` (or `running` again once taken over, or `completed`
    // for one it finished just before it died).
    let st = q.statuses();
    for id in &orphans {
        assert!(
            matches!(st[id].as_str(), "queued" | "running" | "completed"),
            "{id} shows {}",
            st[id]
        );
    }
    assert!(
        orphans.iter().any(|id| st[id] == "queued"),
        "none shows queued: {st:?}"
    );
    let one = q.run(&["status", &orphans[0], "--json"]);
    assert_eq!(one.code, 0, "{}", one.transcript());
    let shown: Value = serde_json::from_str(one.stdout.trim()).unwrap();
    assert_ne!(shown["status"], "interrupted", "{shown}");

    // `status` from a third process until every session completed.
    let deadline = std::time::Instant::now() + PATIENCE * 2;
    loop {
        let st = q.statuses();
        let done = ids.iter().filter(|id| st[*id] == "completed").count();
        if done == ids.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of 50 completed: {st:?}\n{}\n{}",
            q.worker_err(1),
            q.worker_err(2)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The dead worker's sessions were taken over by the others (but one it finished just
    // before it died, without the time to say so).
    let others = q.worker_err(1) + &q.worker_err(2);
    let dead = format!("{}@", workers[0].id());
    let store = PgStore::connect(&q.db).unwrap();
    let mut taken = 0;
    for id in &orphans {
        if others.contains(&format!("claimed {id} (queued), driven before by {dead}")) {
            taken += 1;
        } else {
            let rec = store.session(id).unwrap().unwrap();
            assert!(
                rec.meta["worker"].as_str().unwrap().starts_with(&dead),
                "{id} was neither taken over nor finished by the dead worker:\n{others}"
            );
        }
    }
    assert!(
        taken > 0,
        "no session was taken over: {orphans:?}\n{}\n{others}",
        q.worker_err(0)
    );

    // Every command ran, and only a step cut short by the kill ran twice.
    let runs = q.runs();
    let tags: Vec<String> = (0..50).map(|i| format!("s{i:02}")).collect();
    let mut twice = Vec::new();
    for tag in &tags {
        for node in ["a", "b", "c"] {
            match runs.get(&(tag.clone(), node.to_owned())) {
                Some(1) => {}
                Some(2) => twice.push(format!("{tag} {node}")),
                n => panic!("{tag} {node} ran {n:?} times"),
            }
        }
    }
    assert!(twice.len() <= orphans.len(), "{twice:?} for {orphans:?}");
    // No finished task was recorded twice: one successful run of every node per session,
    // the scripted agent included.
    for id in &ids {
        let mut ok: BTreeMap<String, u32> = BTreeMap::new();
        for r in store.node_runs(id).unwrap() {
            if r.status == orchestra_store::TaskStatus::Ok {
                *ok.entry(r.node).or_default() += 1;
            }
        }
        assert_eq!(
            ok.into_iter().collect::<Vec<_>>(),
            ["a", "b", "c", "think"].map(|n| (n.to_owned(), 1)),
            "{id}"
        );
    }
    // `show` of a taken-over session from another process.
    let shown = q.run(&["show", &orphans[0]]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    assert!(shown.stdout.contains("think"), "{}", shown.stdout);

    for w in &mut workers[1..] {
        assert_eq!(terminate(w), 0);
    }
    assert!(
        ids.iter().all(|id| q.lease(id).is_none()),
        "leases are released"
    );
}

#[test]
fn sigterm_requeues_the_running_sessions_for_another_worker() {
    let q = Queue::new("1");
    let ids = [q.enqueue("x"), q.enqueue("y")];
    let mut w = q.worker(0, &["-j", "2"]);
    // Both sessions are in their first step (`a` sleeps a second).
    wait_until("both sessions to start", || {
        (q.runs().len() == 2).then_some(())
    });
    assert_eq!(terminate(&mut w), 0, "{}", q.worker_err(0));
    let err = q.worker_err(0);
    for id in &ids {
        assert!(err.contains(&format!("requeued {id}")), "{err}");
    }
    let st = q.statuses();
    for id in &ids {
        assert_eq!(st[id], "queued", "{st:?}");
        assert_eq!(q.lease(id), None);
    }

    let mut other = q.worker(1, &["--until-idle"]);
    let code = wait_until("the second worker to drain the queue", || {
        other.try_wait().unwrap()
    });
    assert_eq!(code.code(), Some(0), "{}", q.worker_err(1));
    let st = q.statuses();
    for id in &ids {
        assert_eq!(st[id], "completed", "{st:?}");
    }
    for tag in ["x", "y"] {
        for node in ["b", "c"] {
            assert_eq!(q.runs()[&(tag.to_owned(), node.to_owned())], 1);
        }
    }
}

#[test]
fn a_queued_session_paused_for_a_human_is_answered_by_attach_and_handed_back() {
    let q = Queue::new("0");
    let src = workspace_root();
    std::fs::copy(src.join("orchestra.yaml"), q.root().join("orchestra.yaml")).unwrap();
    for sub in ["prompts", "conditions", "fixtures"] {
        copy_dir(&src.join(sub), &q.root().join(sub));
    }
    let pipeline = "pipelines/plan-with-human.yaml";
    std::fs::copy(src.join(pipeline), q.root().join(pipeline)).unwrap();
    let queued = q.run(&["run", pipeline, "--queue"]);
    assert_eq!(queued.code, 0, "{}", queued.transcript());
    let id = queued.stdout.trim().to_owned();
    let drain = |n: usize| {
        let mut w = q.worker(n, &["--until-idle"]);
        let code = wait_until("the worker to drain the queue", || w.try_wait().unwrap());
        assert_eq!(code.code(), Some(0), "{}", q.worker_err(n));
    };
    let attach = |line: &str| {
        let mut child = Command::new(orchestra_bin())
            .args(["attach", &id, "--db", &q.db])
            .current_dir(q.root())
            .env_clear()
            .env("HOME", q.root().join("home"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), line.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    drain(0);
    assert!(q.worker_err(0).contains(&format!("paused {id} after")));
    assert_eq!((q.statuses()[&id].as_str(), q.lease(&id)), ("paused", None));
    // The human rejects the plan: the planner's next run is the workers' again.
    let out = attach("/reject no rollback\n");
    assert!(out.contains("queued: your turn is over"), "{out}");
    assert_eq!((q.statuses()[&id].as_str(), q.lease(&id)), ("queued", None));
    drain(1);
    assert!(
        q.worker_err(1)
            .contains(&format!("claimed {id} (plan-with-human), driven before by")),
        "{}",
        q.worker_err(1)
    );
    assert_eq!(q.statuses()[&id], "paused");
    let out = attach("/approve\n");
    assert!(out.contains("completed:"), "{out}");
    assert_eq!(
        (q.statuses()[&id].as_str(), q.lease(&id)),
        ("completed", None)
    );
}
