//! `orchestra mcp`, driven by MCP clients: the official Python SDK (`mcp` on PyPI, which nobody
//! here wrote), installed by `tests/build.rs` into a cached venv
//! (`~/.cache/orchestra-test/py-mcp`; the test is ignored with the reason when it cannot be),
//! runs `tests/mcp/client.py` against the real binary; and JSON-RPC lines
//! written here reach a session a live process drives through its attach socket, then resume
//! it paused, and close stdin to end the server — whose stdout carries nothing but protocol.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{Value, json};

use super::common::{PATIENCE, tests_dir, wait_until};
use super::readme::Repo;

/// The test with the python of the MCP Python SDK's venv that `tests/build.rs` found or
/// installed, or ignored with the reason it could not (run with `--ignored`, it fails with
/// that reason).
macro_rules! python_sdk_test {
    (found $python:literal) => {
        #[test]
        fn the_python_sdk_compiles_runs_forks_follows_and_answers_a_human_review() {
            python_sdk_drives_orchestra(Path::new($python));
        }
    };
    (ignored $why:literal) => {
        #[test]
        #[ignore = $why]
        fn the_python_sdk_compiles_runs_forks_follows_and_answers_a_human_review() {
            panic!("{}", $why);
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/py_mcp.rs"));

/// The python of the MCP Python SDK's venv that `tests/build.rs` found or installed. A test that
/// calls it carries `#[cfg_attr(py_mcp_missing, ignore = ...)]`: without the SDK it is ignored.
#[cfg(not(py_mcp_missing))]
pub(super) fn sdk_python() -> PathBuf {
    PathBuf::from(env!("ORCHESTRA_TEST_PY_MCP"))
}

/// Without the SDK (`py_mcp_missing`), the tests that call this are ignored; run anyway, they
/// fail saying so.
#[cfg(py_mcp_missing)]
pub(super) fn sdk_python() -> PathBuf {
    panic!("the MCP Python SDK cannot be installed here (the build's warning says why)")
}

fn python_sdk_drives_orchestra(python: &Path) {
    let repo = client_project();
    let out = repo
        .env(&mut Command::new(python))
        .arg(tests_dir().join("mcp/client.py"))
        .arg(crate::binary::orchestra_bin())
        .arg(&repo.root)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.starts_with("ok: "),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// The project `tests/mcp/client.py` expects: the repository plus `pipelines/broken.yaml`.
pub(super) fn client_project() -> Repo {
    let repo = Repo::new();
    let review = std::fs::read_to_string(repo.root.join("pipelines/pr-review.yaml")).unwrap();
    let broken = review.replacen("to: critic, join: all", "to: critc, join: all", 1);
    assert_ne!(broken, review, "pr-review changed shape");
    std::fs::write(repo.root.join("pipelines/broken.yaml"), broken).unwrap();
    repo
}

/// `orchestra mcp` spoken to line by line.
pub(crate) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl Server {
    fn start(repo: &Repo) -> Server {
        Server::start_as(repo.command(&["mcp"]))
    }

    /// Starts the server that `cmd` runs (`orchestra mcp` with its own environment).
    pub(crate) fn start_as(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            stdin: child.stdin.take(),
            child,
            lines,
            next_id: 0,
        };
        let init = s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "orchestra-tests", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "orchestra", "{init}");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request; returns its id.
    fn ask(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The response to request `id` (every line on stdout must be JSON-RPC).
    fn response(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no response to request {id}: {e}"));
            let msg: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON on the server's stdout ({e}): {line}"));
            assert_eq!(msg["jsonrpc"], "2.0", "{line}");
            if msg["id"] == id {
                return msg;
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.ask(method, params);
        self.response(id)
    }

    /// A tool call's result (`isError` and the structured content or the text).
    pub(crate) fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        r["result"].clone()
    }

    /// Closes stdin; the server must exit 0.
    pub(crate) fn close(mut self) {
        drop(self.stdin.take());
        let code = wait_until("the MCP server to exit once its stdin closed", || {
            self.child.try_wait().unwrap()
        });
        assert_eq!(code.code(), Some(0));
        assert!(self.lines.try_iter().all(|l| l.is_empty()), "stray stdout");
    }
}

/// How many ends of the Unix socket `name` are open (the listener, then one per connection).
fn socket_ends(name: &str) -> usize {
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(name))
        .count()
}

/// The session id in the first event of `path`, once there is one.
fn first_session(path: &Path) -> String {
    wait_until("the run's first event", || {
        let text = std::fs::read_to_string(path).ok()?;
        let line = text.lines().next()?;
        let v: Value = serde_json::from_str(line).ok()?;
        v["session"].as_str().map(str::to_owned)
    })
}

fn status(repo: &Repo, id: &str) -> Value {
    let out = repo.command(&["status", id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_live_session_takes_the_answer_through_its_socket_and_a_paused_one_is_resumed_with_it() {
    let repo = Repo::new();
    // The planner answers once a file `open` exists: the session stays live at it meanwhile.
    let file = repo.root.join("pipelines/plan-with-human.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let gated = text
        .replacen(
            "providers:\n",
            "providers:\n  gate:\n    kind: command\n    command: [sh, -c, 'cat >/dev/null; while [ ! -e open ]; do sleep 0.02; done; echo A plan.']\n    stdin: true\n",
            1,
        )
        .replacen("    task: draft-plan\n", "    task: draft-plan\n    provider: gate\n", 1);
    assert_eq!(
        gated.matches("gate").count(),
        2,
        "the pipeline changed shape"
    );
    std::fs::write(&file, gated).unwrap();
    let mut run = repo
        .command(&[
            "run",
            "pipelines/plan-with-human.yaml",
            "--events",
            "run.jsonl",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = first_session(&repo.root.join("run.jsonl"));
    let mut mcp = Server::start(&repo);

    // Bad input first: a tool error with the CLI's text, and the server goes on.
    let bad = mcp.call("answer_session", json!({"session": "nope", "text": "hi"}));
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(
        bad["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("error: "),
        "{bad}"
    );

    // The line waits in the live session's socket until its reviewer asks.
    let asked = mcp.ask(
        "tools/call",
        json!({"name": "answer_session", "arguments":
               {"session": id, "text": "What happens when Redis is down?", "wait_seconds": 60}}),
    );
    let sock = format!("{id}.sock");
    wait_until("the server to attach to the session's socket", || {
        (socket_ends(&sock) >= 2).then_some(())
    });
    std::fs::write(repo.root.join("open"), "").unwrap();
    let live = mcp.response(asked)["result"].clone();
    assert_eq!(live["isError"], false, "{live}");
    let out = &live["structuredContent"];
    assert_eq!(out["delivered"], "live", "{live}");
    assert_eq!(out["replies"][0]["who"], "agent", "{live}");
    assert!(
        !out["replies"][0]["text"].as_str().unwrap().is_empty(),
        "{live}"
    );

    // The server left the chat: the run pauses there, keeping the conversation.
    let ran = wait_until("the run to end", || run.try_wait().unwrap());
    assert_eq!(ran.code(), Some(0));
    assert_eq!(status(&repo, &id)["status"], "paused");
    let shown = mcp.call("show_session", json!({"session": id}));
    let chat = &shown["structuredContent"]["chat"];
    let who: Vec<&str> = chat["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["who"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["agent", "human", "agent"], "{shown}");

    // Paused: the answer resumes it, detached; the approval completes it.
    let approved = mcp.call(
        "answer_session",
        json!({"session": id, "text": "/approve ship it"}),
    );
    assert_eq!(
        approved["structuredContent"]["delivered"], "resumed",
        "{approved}"
    );
    let done = wait_until("the session to complete", || {
        let s = status(&repo, &id);
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(done["status"], "completed", "{done}");
    mcp.close();
}
