//! Subprocesses for Orchestra: the one way shell tools, `command` providers and executable
//! conditions run a program.
//!
//! A [`Command`] runs without a shell, in a process group of its own, with optional input on
//! stdin and stdout and stderr captured within a cap (head and tail kept, see [`Capture`]).
//! When the timeout passes, or the run is cancelled (its future dropped), the whole process
//! group is killed: children the program started in the background go with it. A program
//! that exits while something it started still holds its output open does not hang the run:
//! after a short linger the group is killed and what was written is returned. A process that
//! exits without unwinding calls [`kill_all`] first, so its programs do not outlive it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), orchestra_process::ProcessError> {
//! use std::time::Duration;
//! let out = orchestra_process::Command::new("git")
//!     .args(["status", "--short"])
//!     .current_dir("/path/to/repo")
//!     .timeout(Duration::from_secs(30))
//!     .run()
//!     .await?;
//! if out.success() {
//!     let _text = out.stdout.text();
//! }
//! # Ok(()) }
//! ```

mod capture;
mod group;
mod run;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use capture::Capture;
pub use group::{GroupGuard, kill_all};

/// Starts a long-running program (an MCP server talking on its stdin and stdout) the way every
/// program is started: in a process group of its own that dies with this process. Stdio,
/// arguments, environment and directory are the caller's; the returned guard kills the whole
/// group when dropped (or by [`GroupGuard::kill`]), and [`kill_all`] kills it too.
pub async fn spawn_group(
    command: tokio::process::Command,
) -> Result<(tokio::process::Child, GroupGuard), ProcessError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let child = run::spawn_isolated(command, &program).await?;
    let guard = GroupGuard::new(child.id());
    Ok((child, guard))
}

/// Default cap of each of stdout and stderr, in bytes.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
/// Default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default time output may stay open after the program exited before the group is killed.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(500);

/// A program to run: what, where, with which environment and input, within which limits.
#[derive(Clone, Debug)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    max_stdout: usize,
    max_stderr: usize,
    linger: Duration,
}

impl Command {
    /// Runs `program` (looked up in `PATH` when it has no `/`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            max_stdout: DEFAULT_MAX_OUTPUT,
            max_stderr: DEFAULT_MAX_OUTPUT,
            linger: DEFAULT_LINGER,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs in `dir` (else in the current directory). A relative program path with a `/`
    /// (`./scripts/test.sh`) is relative to it.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Removes an inherited environment variable (variables set with [`Command::env`] stay).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    /// Writes `input` to the program's stdin, then closes it (without input, stdin is
    /// `/dev/null`). A program that exits without reading it all is not an error.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Kills the process group once the program ran this long (default 10 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps at most `max` bytes of each of stdout and stderr (default 1 MiB each).
    pub fn max_output(mut self, max: usize) -> Self {
        self.max_stdout = max;
        self.max_stderr = max;
        self
    }

    /// Keeps at most `max` bytes of stdout.
    pub fn max_stdout(mut self, max: usize) -> Self {
        self.max_stdout = max;
        self
    }

    /// Keeps at most `max` bytes of stderr.
    pub fn max_stderr(mut self, max: usize) -> Self {
        self.max_stderr = max;
        self
    }

    /// How long output may stay open after the program exited (something it started in the
    /// background holding it) before the group is killed (default 500 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The program as given.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs the program to its end, its timeout, or cancellation (dropping the future kills
    /// the group).
    pub async fn run(&self) -> Result<Output, ProcessError> {
        run::run(self, None).await
    }

    /// Like [`Command::run`], and passes each piece of stdout to `on_stdout` as it arrives
    /// (all of it, even beyond the cap).
    pub async fn run_streaming(
        &self,
        on_stdout: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Output, ProcessError> {
        run::run(self, Some(on_stdout)).await
    }

    /// [`Command::run`] for code outside async contexts. On a blocking thread of a runtime
    /// (`spawn_blocking`) the run is driven by that runtime, so signals and child processes
    /// stay with it; with no runtime at all, by a small runtime of its own. Like any
    /// `block_on`, it panics on a thread that drives async tasks.
    pub fn run_blocking(&self) -> Result<Output, ProcessError> {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return handle.block_on(self.run());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ProcessError::Runtime { source })?;
        rt.block_on(self.run())
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The program exited (or was killed by a signal not of ours).
    Exited(ExitStatus),
    /// The timeout passed; the process group was killed.
    TimedOut(Duration),
}

impl fmt::Display for Ending {
    /// `exit status: 3`, `killed by signal 9`, or `timed out` (callers say after how long, with
    /// `orchestra_spec::fmt_duration`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(status) => {
                if let Some(code) = status.code() {
                    return write!(f, "exit status: {code}");
                }
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(signal) = status.signal() {
                        return write!(f, "killed by signal {signal}");
                    }
                }
                write!(f, "{status}")
            }
            Ending::TimedOut(_) => f.write_str("timed out"),
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Output {
    /// How it ended.
    pub ending: Ending,
    /// What it wrote to stdout (within the cap).
    pub stdout: Capture,
    /// What it wrote to stderr (within the cap).
    pub stderr: Capture,
    /// Whether, after the program exited, processes it left behind held the output open past
    /// the linger and were killed.
    pub lingered: bool,
}

impl Output {
    /// Whether the program exited with status 0 (before the timeout).
    pub fn success(&self) -> bool {
        matches!(self.ending, Ending::Exited(s) if s.success())
    }

    /// Whether the timeout passed.
    pub fn timed_out(&self) -> bool {
        matches!(self.ending, Ending::TimedOut(_))
    }

    /// The exit code, when the program exited with one.
    pub fn code(&self) -> Option<i32> {
        match self.ending {
            Ending::Exited(s) => s.code(),
            Ending::TimedOut(_) => None,
        }
    }
}

/// Why a program could not be run (its own failure is an [`Output`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The working directory is missing.
    #[error("cannot run `{program}`: its working directory `{}` does not exist", dir.display())]
    NoWorkdir {
        /// The program.
        program: String,
        /// The directory.
        dir: PathBuf,
    },
    /// The program could not be started.
    #[error("cannot start `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed (it was killed).
    #[error("cannot wait for `{program}`")]
    Wait {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No runtime could be made for [`Command::run_blocking`].
    #[error("cannot start a runtime to run a process")]
    Runtime {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
