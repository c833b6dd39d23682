//! Running a shell tool's process: no shell, stdin closed, stdout and stderr captured within a
//! cap, and on timeout the process and its whole process group killed.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::error::Failure;
use crate::output::{Capture, split_budget};

/// How long output may stay open after the process exited (a background child holding the pipes)
/// before the group is killed.
const LINGER: Duration = Duration::from_millis(500);
/// How long to wait for the last output after a kill.
const DRAIN: Duration = Duration::from_millis(500);

/// One process to run.
pub(super) struct Run<'a> {
    pub(super) program: &'a str,
    pub(super) argv: &'a [String],
    pub(super) env: &'a [(String, String)],
    pub(super) hidden_env: &'a [String],
    pub(super) cwd: &'a Path,
    pub(super) timeout: Duration,
    pub(super) max_output: usize,
}

/// Kills the child's process group when dropped (a cancelled call) unless disarmed.
struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    fn kill(&mut self) {
        let Some(pid) = self.pgid.take() else {
            return;
        };
        #[cfg(unix)]
        if let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            // The group may already be gone; that is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        #[cfg(not(unix))]
        let _ = pid;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads some bytes; `None` at end of stream (or on a read error). A closed stream never wakes.
async fn read_some<R: AsyncRead + Unpin>(stream: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match stream {
        Some(s) => match s.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// How the process ended.
enum Ending {
    Exited(ExitStatus),
    WaitFailed(std::io::Error),
    TimedOut,
}

impl Run<'_> {
    fn program_path(&self) -> PathBuf {
        let p = Path::new(self.program);
        // A relative path with a slash (`./scripts/test.sh`) is relative to the working directory.
        if p.is_relative() && self.program.contains('/') {
            self.cwd.join(p)
        } else {
            p.to_path_buf()
        }
    }

    /// Runs the process; `Ok` with the report when it exits with status 0, else `Err` with it.
    pub(super) async fn execute(self) -> Result<String, Failure> {
        if !self.cwd.is_dir() {
            return Err(Failure::new(format!(
                "cannot run `{}`: its working directory `{}` does not exist",
                self.program,
                self.cwd.display()
            )));
        }
        let mut cmd = tokio::process::Command::new(self.program_path());
        cmd.args(self.argv)
            .current_dir(self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in self.hidden_env {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::new(format!("cannot start `{}`: {e}", self.program)))?;
        let mut group = GroupGuard { pgid: child.id() };
        tracing::debug!(program = self.program, pid = ?child.id(), "shell tool started");

        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut out = Capture::new(self.max_output);
        let mut err = Capture::new(self.max_output);
        let (mut buf_out, mut buf_err) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let deadline = crate::deadline_after(Instant::now().into_std(), self.timeout).into();
        let mut ending: Option<Ending> = None;
        let mut linger_until = deadline;
        let mut lingered = false;

        loop {
            if stdout.is_none() && stderr.is_none() && ending.is_some() {
                break;
            }
            tokio::select! {
                n = read_some(&mut stdout, &mut buf_out) => match n {
                    Some(n) => out.push(&buf_out[..n]),
                    None => stdout = None,
                },
                n = read_some(&mut stderr, &mut buf_err) => match n {
                    Some(n) => err.push(&buf_err[..n]),
                    None => stderr = None,
                },
                status = child.wait(), if ending.is_none() => {
                    ending = Some(match status {
                        Ok(s) => Ending::Exited(s),
                        Err(e) => Ending::WaitFailed(e),
                    });
                    linger_until = deadline.min(Instant::now() + LINGER);
                },
                _ = tokio::time::sleep_until(linger_until) => {
                    if ending.is_none() {
                        ending = Some(Ending::TimedOut);
                    } else {
                        lingered = true;
                    }
                    break;
                },
            }
        }

        let killed = matches!(ending, Some(Ending::TimedOut)) || lingered;
        if killed {
            group.kill();
            let _ = child.start_kill();
            let _ = tokio::time::timeout(DRAIN, child.wait()).await;
            let until = Instant::now() + DRAIN;
            while stdout.is_some() || stderr.is_some() {
                tokio::select! {
                    n = read_some(&mut stdout, &mut buf_out) => match n {
                        Some(n) => out.push(&buf_out[..n]),
                        None => stdout = None,
                    },
                    n = read_some(&mut stderr, &mut buf_err) => match n {
                        Some(n) => err.push(&buf_err[..n]),
                        None => stderr = None,
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        } else {
            // Finished on its own: leave any detached descendants alone.
            group.pgid = None;
        }

        let (status_line, ok) = match &ending {
            Some(Ending::Exited(s)) => (describe(*s), s.success()),
            Some(Ending::WaitFailed(e)) => (format!("could not wait for the process: {e}"), false),
            Some(Ending::TimedOut) | None => (
                format!(
                    "timed out after {}; the process and its process group were killed",
                    crate::fmt_duration(self.timeout)
                ),
                false,
            ),
        };
        let mut report = render(&status_line, &out, &err, self.max_output);
        if lingered {
            report.push_str(
                "\n[background processes kept the output open after exit and were killed]",
            );
        }
        tracing::debug!(program = self.program, %status_line, "shell tool finished");
        if ok { Ok(report) } else { Err(Failure(report)) }
    }
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status: {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    format!("exit status: {status}")
}

/// The status line, then stdout and stderr (each only if not empty), within `max` bytes of output.
fn render(status_line: &str, out: &Capture, err: &Capture, max: usize) -> String {
    let (budget_out, budget_err) = split_budget(out.total(), err.total(), max);
    let mut text = String::from(status_line);
    for (label, capture, budget) in [("stdout", out, budget_out), ("stderr", err, budget_err)] {
        if capture.total() == 0 {
            continue;
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("--- {label} ---\n"));
        text.push_str(&capture.render(budget));
    }
    if out.total() == 0 && err.total() == 0 {
        text.push_str("\n(no output)");
    }
    let total = out.total() + err.total();
    if total > max as u64 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[output truncated: {total} bytes in all (stdout {}, stderr {}); {max} shown]",
            out.total(),
            err.total()
        ));
    }
    text
}
