//! One run: spawn in a new process group, feed stdin, capture stdout and stderr within their
//! caps, and end it — on exit (with a short linger for output held open by what it left
//! behind), on timeout, or on cancellation — killing the group whenever it did not end cleanly.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::group::GroupGuard;
use crate::{Capture, Command, Ending, Output, ProcessError};

/// Receives stdout's bytes as they arrive.
pub(crate) type OnStdout<'a> = dyn FnMut(&[u8]) + Send + 'a;

/// How long to wait for the last output after a kill.
const DRAIN: Duration = Duration::from_millis(500);
/// How often to try again when the program file is still open for writing (`ETXTBSY`).
const BUSY_TRIES: u32 = 20;
/// The pause between those tries.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

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

/// `now + after`, or a moment decades away when that does not fit (a timeout of `u64::MAX`
/// seconds must not panic).
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn program_path(cmd: &Command) -> PathBuf {
    let p = &cmd.program;
    // A relative path with a slash (`./scripts/test.sh`) is relative to the working directory.
    match &cmd.cwd {
        Some(dir) if p.is_relative() && p.components().count() > 1 => dir.join(p),
        _ => p.clone(),
    }
}

/// Spawns the child in a process group of its own. A script just written may be briefly
/// "busy" (another thread's fork still holds the writer's descriptor until its exec): that
/// is tried again a few times.
async fn spawn(cmd: &Command, program: &str) -> Result<tokio::process::Child, ProcessError> {
    let mut command = tokio::process::Command::new(program_path(cmd));
    command
        .args(&cmd.args)
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    for name in &cmd.env_remove {
        command.env_remove(name);
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    spawn_isolated(command, program).await
}

/// Spawns `command` in a process group of its own that dies with this process, killed on drop
/// (the child only: the caller guards the group). `ETXTBSY` is tried again a few times.
pub(crate) async fn spawn_isolated(
    mut command: tokio::process::Command,
    program: &str,
) -> Result<tokio::process::Child, ProcessError> {
    command.kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut command);
    let mut tries = 0;
    loop {
        match command.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < BUSY_TRIES => {
                tries += 1;
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            Err(source) => {
                return Err(ProcessError::Spawn {
                    program: program.to_owned(),
                    source,
                });
            }
        }
    }
}

/// How the child ended, as seen by the loop.
enum Seen {
    Exited(ExitStatus),
    WaitFailed(std::io::Error),
    TimedOut,
}

pub(crate) async fn run(
    cmd: &Command,
    mut on_stdout: Option<&mut OnStdout<'_>>,
) -> Result<Output, ProcessError> {
    let program = cmd.program.display().to_string();
    if let Some(dir) = &cmd.cwd
        && !dir.is_dir()
    {
        return Err(ProcessError::NoWorkdir {
            program,
            dir: dir.clone(),
        });
    }
    let mut child = spawn(cmd, &program).await?;
    let mut group = GroupGuard::new(child.id());
    tracing::debug!(program, pid = ?child.id(), "process started");

    let stdin = child.stdin.take();
    let input = cmd.stdin.as_deref().unwrap_or_default();
    let write = async move {
        if let Some(mut pipe) = stdin {
            // A program that exits without reading its input is not an error here.
            let _ = pipe.write_all(input).await;
            let _ = pipe.shutdown().await;
        }
    };
    tokio::pin!(write);
    let mut written = cmd.stdin.is_none();

    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Capture::new(cmd.max_stdout);
    let mut err = Capture::new(cmd.max_stderr);
    let (mut buf_out, mut buf_err) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let mut on_out = |bytes: &[u8], out: &mut Capture| {
        out.push(bytes);
        if let Some(f) = on_stdout.as_mut() {
            f(bytes);
        }
    };
    let deadline = deadline_after(cmd.timeout);
    let mut seen: Option<Seen> = None;
    let mut linger_until = deadline;
    let mut lingered = false;

    loop {
        if stdout.is_none() && stderr.is_none() && seen.is_some() {
            break;
        }
        tokio::select! {
            () = &mut write, if !written => written = true,
            n = read_some(&mut stdout, &mut buf_out) => match n {
                Some(n) => on_out(&buf_out[..n], &mut out),
                None => stdout = None,
            },
            n = read_some(&mut stderr, &mut buf_err) => match n {
                Some(n) => err.push(&buf_err[..n]),
                None => stderr = None,
            },
            status = child.wait(), if seen.is_none() => {
                seen = Some(match status {
                    Ok(s) => Seen::Exited(s),
                    Err(e) => Seen::WaitFailed(e),
                });
                linger_until = deadline.min(Instant::now() + cmd.linger);
            },
            () = tokio::time::sleep_until(linger_until) => {
                if seen.is_none() {
                    seen = Some(Seen::TimedOut);
                } else {
                    lingered = true;
                }
                break;
            },
        }
    }

    let killed = matches!(seen, Some(Seen::TimedOut | Seen::WaitFailed(_))) || lingered;
    if killed {
        group.kill();
        let _ = child.start_kill();
        let _ = tokio::time::timeout(DRAIN, child.wait()).await;
        let until = Instant::now() + DRAIN;
        while stdout.is_some() || stderr.is_some() {
            tokio::select! {
                n = read_some(&mut stdout, &mut buf_out) => match n {
                    Some(n) => on_out(&buf_out[..n], &mut out),
                    None => stdout = None,
                },
                n = read_some(&mut stderr, &mut buf_err) => match n {
                    Some(n) => err.push(&buf_err[..n]),
                    None => stderr = None,
                },
                () = tokio::time::sleep_until(until) => break,
            }
        }
    } else {
        // Finished on its own: leave any detached descendants alone.
        group.disarm();
    }

    let ending = match seen {
        Some(Seen::Exited(s)) => Ending::Exited(s),
        Some(Seen::WaitFailed(source)) => return Err(ProcessError::Wait { program, source }),
        Some(Seen::TimedOut) | None => Ending::TimedOut(cmd.timeout),
    };
    tracing::debug!(program, %ending, lingered, "process finished");
    Ok(Output {
        ending,
        stdout: out,
        stderr: err,
        lingered,
    })
}

/// Makes the child get SIGKILL when this process dies (Linux's parent-death signal): its own
/// process group keeps it out of a kill of ours, and a CLI agent, tool or condition must not
/// outlive an orchestra that was killed (`kill -9`) mid-run. Set in the child between fork and
/// exec; if this process died before that, the child exits at once.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut tokio::process::Command) {
    let parent = rustix::process::getpid();
    let hook = move || {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        if rustix::process::getppid() != Some(parent) {
            return Err(std::io::Error::other("the parent process is gone"));
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and only makes two system calls
    // (prctl, getppid): async-signal-safe, no allocation, no lock.
    #[expect(
        unsafe_code,
        reason = "pre_exec is the only way to set the parent-death signal"
    )]
    unsafe {
        command.pre_exec(hook);
    }
}
