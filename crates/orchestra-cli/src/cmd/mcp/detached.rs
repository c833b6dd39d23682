//! Drives started by the MCP server: `orchestra run` / `orchestra resume` of this executable as
//! processes of their own (own process group, stdout and stderr to `mcp/SESSION.log` beside
//! the database, events to `mcp/SESSION.events.jsonl`). The server waits only until the drive
//! wrote its first event (the session exists and this drive holds it), never for its end; a
//! drive that exits before that failed, and its output is the tool error.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::server::io_failure;
use super::types::Started;

/// How long a drive may take to start its session (open the database, take the lease,
/// restore the state) before the tool gives up waiting for it.
const STARTUP: Duration = Duration::from_secs(60);

/// A drive to start.
#[derive(Debug)]
pub(super) struct Drive<'a> {
    /// `run` or `resume` (for messages).
    pub(super) command: &'static str,
    /// The directory it runs in (the server's).
    pub(super) cwd: &'a Path,
    /// The session database.
    pub(super) db: &'a Path,
    /// The session it drives.
    pub(super) session: &'a str,
    /// Its arguments (the subcommand first); `--events FILE` is added.
    pub(super) args: Vec<OsString>,
    /// One line for its stdin (the human's answer), or nothing (stdin is empty).
    pub(super) stdin: Option<String>,
}

/// The directory of the logs and event files of drives the server started.
fn dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or_else(|| Path::new(".")).join("mcp")
}

fn events_file(db: &Path, session: &str) -> PathBuf {
    dir(db).join(format!("{session}.events.jsonl"))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The text of `path` from byte `from` on (lossy; empty when it cannot be read).
fn read_from(path: &Path, from: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(from)).is_ok()
    {
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Whether `path` has, after byte `from`, a complete event line of `session`.
fn started(path: &Path, from: u64, session: &str) -> bool {
    read_from(path, from)
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| e["session"] == session)
}

/// Starts `d` and waits until its session started; the tool error is the drive's own output
/// when it ended before that.
pub(super) async fn start(d: Drive<'_>) -> Result<Started, String> {
    // Beside the SQLite file; for a database on a server, in the project's `.orchestra/`.
    let anchor =
        crate::store::socket_anchor(d.db, &crate::engine::sessions_root(d.db, d.cwd));
    let dir = dir(&anchor);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("error: cannot create {}: {e}", dir.display()))?;
    // Logs are not the project's files: kept out of `git status` of a repository holding them.
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n")
            .map_err(|e| format!("error: cannot write {}: {e}", ignore.display()))?;
    }
    let log = dir.join(format!("{}.log", d.session));
    let events = events_file(&anchor, d.session);
    let (log_from, events_from) = (len(&log), len(&events));
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("error: cannot open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| io_failure(&e))?;
    let exe = std::env::current_exe().map_err(|e| io_failure(&e))?;
    let mut cmd = tokio::process::Command::new(exe);
    let mut args = d.args.clone();
    if crate::store::is_server(d.db) {
        // A URL may hold a password: it goes in the environment, never on a command line
        // (which other users of the machine can read).
        if let Some(i) = args.iter().position(|a| a == "--db")
            && i + 1 < args.len()
        {
            args.drain(i..=i + 1);
        }
        cmd.env(crate::engine::DATABASE_ENV, d.db);
    }
    cmd.args(&args)
        .arg("--events")
        .arg(&events)
        .current_dir(d.cwd)
        .stdin(if d.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C or a hang-up of the server's client is not its.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("error: cannot start `orchestra {}`: {e}", d.command))?;
    let pid = child.id().unwrap_or_default();
    if let (Some(line), Some(mut stdin)) = (d.stdin, child.stdin.take()) {
        // The line, then the end of input: the chat takes it and pauses at the next read.
        tokio::spawn(async move {
            let _ = stdin.write_all(format!("{line}\n").as_bytes()).await;
        });
    }
    let shown = |p: &Path| p.display().to_string();
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        if started(&events, events_from, d.session) {
            // Reaped when it ends, while the server runs; after that, by init.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(Started {
                session: d.session.to_owned(),
                pid,
                log: shown(&log),
                events: shown(&events),
                next: format!(
                    "follow it with show_session {{\"session\": \"{}\"}}",
                    d.session
                ),
            });
        }
        if let Some(status) = child.try_wait().map_err(|e| io_failure(&e))? {
            if started(&events, events_from, d.session) {
                continue;
            }
            let said = read_from(&log, log_from);
            let said = said.trim_end();
            return Err(if said.is_empty() {
                format!(
                    "error: `orchestra {}` ended ({status}) before session {} started; see {}",
                    d.command,
                    d.session,
                    shown(&log)
                )
            } else {
                said.to_owned()
            });
        }
        if tokio::time::Instant::now() >= deadline {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Err(format!(
                "error: `orchestra {}` (pid {pid}) did not start session {} within {}; see {}",
                d.command,
                d.session,
                orchestra_spec::fmt_duration(STARTUP),
                shown(&log)
            ));
        }
        // A file written by another process: looked at, as `tail -f` does.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `n` events the server's drives of `session` wrote.
pub(super) fn last_events(db: &Path, session: &str, n: usize) -> Vec<Value> {
    let text = read_from(&events_file(db, session), 0);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
