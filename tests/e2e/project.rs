//! A temp copy of the runtime fixtures (`tests/runtime/`): run sessions in it with the real
//! binary on a database file of its own, read them back with `status --json`, and pin output
//! with insta snapshots whose volatile parts (ids, times, paths) are filtered.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use serde_json::Value;

use super::common::{PATIENCE, Run, copy_dir, regex_escape};

/// The database every command of a [`Project`] uses (relative to its root).
pub(crate) const DB: &str = "sessions.db";

/// A temp directory holding `tests/runtime/` (orchestra.yaml, pipelines, fixtures, scripts).
pub(crate) struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub(crate) fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&super::common::tests_dir().join("runtime"), dir.path());
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Project { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Lets the agents of `slow.yaml` that wait for it finish (now and in later runs).
    pub(crate) fn open_gate(&self) {
        self.write("open", "");
    }

    /// Writes `text` to `rel` (a new pipeline, responses file or script).
    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `orchestra ARGS --db sessions.db`, at the root, with a cleared environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        cmd.args(args)
            .args(["--db", DB])
            .current_dir(self.root())
            .env_clear()
            .env("HOME", self.path("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd
    }

    /// Runs `orchestra ARGS --db sessions.db` to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `--json` and parses the outcome line.
    pub(crate) fn run_json(&self, args: &[&str]) -> (Run, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        let v = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON line ({e}):\n{}", run.transcript()));
        (run, v)
    }

    /// Starts `orchestra ARGS` in a process group of its own (so the scripts it runs can be
    /// killed with it); stderr lines arrive on the returned channel.
    pub(crate) fn spawn(&self, args: &[&str]) -> Running {
        use std::os::unix::process::CommandExt as _;
        let mut child = self
            .command(args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let reader = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        Running {
            child,
            lines: rx,
            readers: Some((stdout, reader)),
        }
    }

    /// Every session of the database (`status --json`), newest first.
    pub(crate) fn sessions(&self) -> Vec<Value> {
        let run = self.run(&["status", "--json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        serde_json::from_str::<Vec<Value>>(&run.stdout).unwrap()
    }

    /// One session in detail (`status ID --json`).
    pub(crate) fn status(&self, id: &str) -> Value {
        let run = self.run(&["status", id, "--json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// The lines of a log file the test scripts append to (empty when it does not exist).
    pub(crate) fn log(&self, rel: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// insta settings: snapshots in `tests/snapshots/runtime`, with session ids, durations,
    /// dates, process ids and the temp directory replaced by placeholders.
    pub(crate) fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path(super::common::tests_dir().join("snapshots/runtime"));
        s.set_prepend_module_to_snapshot(false);
        s.set_omit_expression(true);
        for root in [
            self.root().to_path_buf(),
            std::fs::canonicalize(self.root()).unwrap(),
        ] {
            s.add_filter(&regex_escape(&root.to_string_lossy()), "[TMP]");
        }
        s.add_filter(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b", "[SESSION]");
        s.add_filter(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\b", "[DATE]");
        // Durations, with the padding before them (column widths vary with the number).
        s.add_filter(r" +\d+(\.\d+)?(ms|s)\b", " [T]");
        s.add_filter(r"\b\d+@[\w.-]+", "[PID@HOST]");
        s
    }
}

/// A running `orchestra` process.
pub(crate) struct Running {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    readers: Option<(thread::JoinHandle<String>, thread::JoinHandle<String>)>,
}

impl Running {
    /// Waits for a stderr line containing `needle` and returns it; `None` when the process
    /// ended without printing one, or after [`PATIENCE`].
    pub(crate) fn wait_for(&self, needle: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Sends `signal` (e.g. `KILL`, `INT`) to the process, or with `group` to its whole
    /// process group (the scripts it started too).
    pub(crate) fn signal(&self, signal: &str, group: bool) {
        let pid = self.child.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        // The process may have finished on its own just before: not an error.
        Command::new("kill")
            .args([&format!("-{signal}"), "--", &target])
            .stderr(Stdio::null())
            .status()
            .unwrap();
    }

    /// Waits for the end; exit code (-1 when killed by a signal), stdout and stderr.
    pub(crate) fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        let (out, err) = self.readers.take().unwrap();
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}
