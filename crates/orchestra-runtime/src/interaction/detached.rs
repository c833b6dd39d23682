//! Drives started detached: `orchestra run` / `orchestra resume` of the [`Launcher`]'s
//! executable as processes of their own (own process group, stdout and stderr to
//! `LOGS/SESSION.log`, events to `LOGS/SESSION.events.jsonl`). The caller waits only until the
//! drive wrote its first event (the session exists and this drive holds it), never for its end;
//! a drive that exits before that failed, and its output is the error.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::{InteractionError, Launcher, Started};

/// How long a drive may take to start its session (open the database, take the lease,
/// restore the state) before the caller gives up waiting for it.
const STARTUP: Duration = Duration::from_secs(60);

/// A drive to start.
#[derive(Debug)]
pub struct Drive<'a> {
    /// `run` or `resume` (for messages).
    pub command: &'static str,
    /// The session it drives.
    pub session: &'a str,
    /// Its arguments (the subcommand first, `--db` among them); `--events FILE` is added.
    pub args: Vec<OsString>,
    /// One line for its stdin (the human's answer), or nothing (stdin is empty).
    pub stdin: Option<String>,
}

fn events_file(logs: &Path, session: &str) -> PathBuf {
    logs.join(format!("{session}.events.jsonl"))
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

fn logs_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InteractionError {
    let path = path.to_path_buf();
    move |source| InteractionError::Logs { what, path, source }
}

/// Starts `d` and waits until its session started; the error is the drive's own output when
/// it ended before that.
pub async fn start(l: &Launcher, d: Drive<'_>) -> Result<Started, InteractionError> {
    let dir = &l.logs;
    std::fs::create_dir_all(dir).map_err(logs_error("create", dir))?;
    // Logs are not the project's files: kept out of `git status` of a repository holding them.
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").map_err(logs_error("write", &ignore))?;
    }
    let log = dir.join(format!("{}.log", d.session));
    let events = events_file(dir, d.session);
    let (log_from, events_from) = (len(&log), len(&events));
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(logs_error("open", &log))?;
    let err = out.try_clone().map_err(logs_error("open", &log))?;
    let mut cmd = tokio::process::Command::new(&l.program);
    let mut args = d.args.clone();
    if let Some(var) = l.db_env {
        // A URL may hold a password: it goes in the environment, never on a command line
        // (which other users of the machine can read).
        if let Some(i) = args.iter().position(|a| a == "--db")
            && i + 1 < args.len()
        {
            args.drain(i..=i + 1);
        }
        cmd.env(var, &l.db);
    }
    cmd.args(&args)
        .arg("--events")
        .arg(&events)
        .current_dir(&l.cwd)
        .stdin(if d.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C or a hang-up of the caller's terminal is not its.
        .process_group(0)
        .kill_on_drop(false);
    let spawn = |source| InteractionError::Spawn {
        command: d.command,
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
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
            // Reaped when it ends, while the caller runs; after that, by init.
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
        let status = child.try_wait().map_err(|source| InteractionError::Spawn {
            command: d.command,
            source,
        })?;
        if let Some(status) = status {
            if started(&events, events_from, d.session) {
                continue;
            }
            let said = read_from(&log, log_from);
            let said = said.trim_end();
            let output = if said.is_empty() {
                format!(
                    "error: `orchestra {}` ended ({status}) before session {} started; see {}",
                    d.command,
                    d.session,
                    shown(&log)
                )
            } else {
                said.to_owned()
            };
            return Err(InteractionError::Ended {
                code: status.code(),
                output,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Err(InteractionError::Slow {
                command: d.command,
                pid,
                session: d.session.to_owned(),
                waited: STARTUP,
                log: shown(&log),
            });
        }
        // A file written by another process: looked at, as `tail -f` does.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last `n` events the drives of `session` started with logs in `logs` wrote.
pub fn last_events(logs: &Path, session: &str, n: usize) -> Vec<Value> {
    let text = read_from(&events_file(logs, session), 0);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
