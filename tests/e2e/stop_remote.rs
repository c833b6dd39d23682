//! `orchestra stop` and the web UI's stop action on sessions driven on another machine: two
//! project directories share one database (a real PostgreSQL server, and a SQLite file), each
//! its own "machine" (`ORCHESTRA_MACHINE`, the name lease owners carry). A worker of machine A
//! drives a session whose step sleeps; `orchestra stop` from machine B records the request, the
//! worker reads it with its next lease renewal and interrupts the session at its checkpoint,
//! goes on with other sessions and never claims it again; `orchestra resume` from B completes
//! it. A queued session stopped before any worker claimed it is interrupted at once.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use orchestra_store::{STOP_META, SessionRecord, Store};
use orchestra_store_postgres::PgStore;
use orchestra_store_postgres::testing::server;
use orchestra_store_sqlite::SqliteStore;
use serde_json::{Value, json};

use super::binary::orchestra_bin;
use super::common::{Run, wait_until};
use super::web_ui::{get_json, http_with};

/// `a` notes its run, `think` is a scripted agent, `b` notes its run and waits until the gate
/// `LOG.open` exists (the step a stop lands in), `c` notes its run.
const PIPELINE: &str = r#"name: stopme
defaults: { provider: scripted, model: worker }
providers:
  scripted: { kind: scripted, responses: ../fixtures/stop.responses.yaml }
inputs:
  tag: { type: string, required: true }
  log: { type: string, required: true }
agents:
  a: { command: [sh, -c, 'echo "$1 a" >> "$2"', a, "{{ inputs.tag }}", "{{ inputs.log }}"] }
  think: { task: { text: "think about {{ inputs.tag }}" } }
  b: { command: [sh, -c, 'echo "$1 b" >> "$2"; while [ ! -e "$2.open" ]; do sleep 0.05; done', b, "{{ inputs.tag }}", "{{ inputs.log }}"] }
  c: { command: [sh, -c, 'echo "$1 c" >> "$2"', c, "{{ inputs.tag }}", "{{ inputs.log }}"] }
graph:
  - { from: START, to: a }
  - { from: a, to: think }
  - { from: think, to: b }
  - { from: b, to: c }
  - { from: c, to: END }
"#;

const RESPONSES: &str = "agents:\n  \"*\":\n    runs:\n      - turns:\n          - text: thought\n";

/// Two machines' project directories and the database they share.
struct Machines {
    dir: tempfile::TempDir,
    /// `ORCHESTRA_DATABASE` of both machines.
    db: String,
}

impl Machines {
    fn new(db: Option<String>) -> Machines {
        let dir = tempfile::tempdir().unwrap();
        for m in ["a", "b"] {
            let root = dir.path().join(m);
            for sub in ["pipelines", "fixtures", "home"] {
                std::fs::create_dir_all(root.join(sub)).unwrap();
            }
            std::fs::write(root.join("pipelines/stopme.yaml"), PIPELINE).unwrap();
            std::fs::write(root.join("fixtures/stop.responses.yaml"), RESPONSES).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("shared")).unwrap();
        let db = db.unwrap_or_else(|| dir.path().join("shared/sessions.db").display().to_string());
        Machines { dir, db }
    }

    fn root(&self, m: &str) -> PathBuf {
        self.dir.path().join(m)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("shared/runs.log")
    }

    /// `orchestra ARGS` as a process of machine `m`.
    fn command(&self, m: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(orchestra_bin());
        cmd.args(args)
            .current_dir(self.root(m))
            .env_clear()
            .env("HOME", self.root(m).join("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ORCHESTRA_DATABASE", &self.db)
            .env("ORCHESTRA_MACHINE", format!("machine-{m}"));
        cmd
    }

    fn run(&self, m: &str, args: &[&str]) -> Run {
        let out = self.command(m, args).stdin(Stdio::null()).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Queues a session tagged `tag` from machine `m`; returns its id.
    fn enqueue(&self, m: &str, tag: &str) -> String {
        let log = self.log().display().to_string();
        let run = self.run(
            m,
            &[
                "run",
                "pipelines/stopme.yaml",
                "--queue",
                "-i",
                &format!("tag={tag}"),
                "-i",
                &format!("log={log}"),
            ],
        );
        assert_eq!(run.code, 0, "{}", run.transcript());
        run.stdout.trim().to_owned()
    }

    /// A worker of machine A (leases of 1s, renewed every 333ms); stderr to `worker.err`.
    fn worker(&self) -> Child {
        let err = std::fs::File::create(self.dir.path().join("worker.err")).unwrap();
        self.command("a", &["worker", "--lease-ttl", "1s", "--poll", "100ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    }

    fn worker_err(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.err")).unwrap_or_default()
    }

    /// How many times node `node` of the session tagged `tag` ran.
    fn runs(&self, tag: &str, node: &str) -> usize {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines()
            .filter(|l| *l == format!("{tag} {node}"))
            .count()
    }

    /// The session's record and last checkpoint, read from the database.
    fn record(&self, id: &str) -> (SessionRecord, Option<u64>) {
        let store: Box<dyn Store> = if self.db.starts_with("postgres") {
            Box::new(PgStore::connect(&self.db).unwrap())
        } else {
            Box::new(SqliteStore::open(Path::new(&self.db)).unwrap())
        };
        let rec = store.session(id).unwrap().unwrap();
        let last = store.checkpoints(id).unwrap().last().map(|c| c.step);
        (rec, last)
    }

    /// Waits until the session tagged `tag` is in step `b` (its command started).
    fn wait_in_b(&self, tag: &str) {
        wait_until(&format!("{tag} to reach b"), || {
            (self.runs(tag, "b") == 1).then_some(())
        });
    }
}

/// `orchestra ui` of machine `m`; killed when dropped.
struct Ui(Child, String);

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ui(ms: &Machines, m: &str) -> Ui {
    let mut child = ms
        .command(m, &["ui", "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("database: ") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "ui exited: {banner}");
        banner.push_str(&line);
    }
    let port = banner
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {banner}"))
        .to_owned();
    Ui(child, format!("127.0.0.1:{port}"))
}

fn post_stop(addr: &str, id: &str) -> (u16, Value) {
    let origin = format!("http://{addr}");
    let path = format!("/api/sessions/{id}/stop");
    let (status, _, text) = http_with(addr, "POST", &path, &[("Origin", &origin)], "{}");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"));
    (status, v)
}

fn stop_from_another_machine(ms: &Machines) {
    // A queued session that no worker claimed yet: interrupted at once, never claimed.
    let early = ms.enqueue("a", "early");
    let stop = ms.run("b", &["stop", &early, "--wait", "30"]);
    assert_eq!(stop.code, 0, "{}", stop.transcript());
    assert!(
        stop.stderr.contains("was waiting for a worker"),
        "{}",
        stop.transcript()
    );
    assert!(
        stop.stdout
            .contains(&format!("session {early} stopped: interrupted")),
        "{}",
        stop.transcript()
    );
    let (rec, _) = ms.record(&early);
    assert_eq!(
        rec.meta[STOP_META]["by"]
            .as_str()
            .map(|b| b.ends_with("@machine-b")),
        Some(true)
    );

    // A session the worker of machine A drives, stopped from machine B mid-step.
    let id = ms.enqueue("a", "slow");
    let mut worker = ms.worker();
    ms.wait_in_b("slow");
    let stop = ms.run("b", &["stop", &id, "--wait", "30"]);
    assert_eq!(stop.code, 0, "{}\n{}", stop.transcript(), ms.worker_err());
    let holder = format!("{}@machine-a", worker.id());
    assert!(
        stop.stderr
            .contains(&format!("asked {holder} to stop session {id}")),
        "{}",
        stop.transcript()
    );
    assert!(
        stop.stdout
            .contains(&format!("session {id} stopped: interrupted")),
        "{}",
        stop.transcript()
    );
    let (rec, last) = ms.record(&id);
    assert_eq!(rec.status.as_str(), "interrupted");
    assert_eq!(
        (rec.lease_owner, last),
        (None, Some(2)),
        "stopped at checkpoint 2"
    );
    assert_eq!(ms.runs("slow", "c"), 0);

    // The worker goes on with other sessions: one stopped through the web UI of machine B.
    let served = ui(ms, "b");
    let other = ms.enqueue("b", "other");
    ms.wait_in_b("other");
    let (status, v) = post_stop(&served.1, &other);
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        (&v["how"], &v["holder"], &v["pid"]),
        (&json!("requested"), &json!(holder), &Value::Null),
        "{v}"
    );
    wait_until("the UI's stop to interrupt it", || {
        let d = get_json(&served.1, &format!("/api/sessions/{other}"));
        (d["detail"]["status"] == "interrupted").then_some(())
    });
    // From now on `b` goes through.
    std::fs::write(ms.log().with_extension("log.open"), "").unwrap();
    let third = ms.enqueue("a", "third");
    wait_until("the worker to complete another session", || {
        ms.worker_err()
            .contains(&format!("completed {third} after"))
            .then_some(())
    });
    let err = ms.worker_err();
    for (s, claims) in [(&early, 0), (&id, 1), (&other, 1)] {
        assert_eq!(
            err.matches(&format!("claimed {s} ")).count(),
            claims,
            "{err}"
        );
        assert!(!err.contains(&format!("requeued {s}")), "{err}");
    }
    assert!(err.contains(&format!("interrupted {id} after")), "{err}");
    // Stopping the worker does not put a stopped session back in the queue.
    let pid = worker.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = wait_until("the worker to exit", || worker.try_wait().unwrap());
    assert_eq!(code.code(), Some(0), "{}", ms.worker_err());
    assert_eq!(ms.record(&id).0.status.as_str(), "interrupted");

    // Resumed from machine B: the request is withdrawn and the session completes, `b` redone.
    for (s, tag) in [(&id, "slow"), (&early, "early")] {
        let resume = ms.run("b", &["resume", s]);
        assert_eq!(resume.code, 0, "{}", resume.transcript());
        let (rec, _) = ms.record(s);
        assert_eq!(rec.status.as_str(), "completed", "{}", resume.transcript());
        assert_eq!(rec.meta[STOP_META], Value::Null, "the request is withdrawn");
        assert_eq!(ms.runs(tag, "c"), 1);
    }
    assert_eq!((ms.runs("slow", "a"), ms.runs("slow", "b")), (1, 2));
    // Nothing is left to stop.
    let again = ms.run("b", &["stop", &id]);
    assert_eq!(again.code, 2, "{}", again.transcript());
    assert!(
        again.stderr.contains("is not running (it is completed)"),
        "{}",
        again.transcript()
    );
}

#[test]
fn a_session_driven_on_another_machine_is_stopped_through_postgres() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.url(&server.create_database().unwrap());
    stop_from_another_machine(&Machines::new(Some(db)));
}

#[test]
fn a_session_driven_on_another_machine_is_stopped_through_a_sqlite_file() {
    stop_from_another_machine(&Machines::new(None));
}
