//! The `git` program, for every operation that talks to a remote (clone, fetch, push,
//! ls-remote) — whatever the remote is: a path, `file://`, `ssh://`, `git@host:path`,
//! `https://`, `http://` or `git://`. The user's transports and credentials work as in their
//! shell (ssh-agent, `~/.ssh/config`, `GIT_SSH_COMMAND`, credential helpers,
//! `http.extraHeader`, ...), and no TLS or ssh library is linked; libgit2 stays for the local
//! work (worktrees, commits, merges).
//!
//! A run never waits for a person: no terminal prompt (`GIT_TERMINAL_PROMPT=0`), no askpass
//! program, ssh in batch mode unless the user chose the ssh command, stdin empty, and a
//! timeout ([`TIMEOUT_ENV`] seconds, [`DEFAULT_TIMEOUT`] by default) that kills git with
//! everything it started (its ssh). Runs go through `orchestra_process` (own process group,
//! capped output): call them from a blocking thread (`spawn_blocking`) in async code.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use orchestra_process::{Command, Output, ProcessError};
use thiserror::Error;

use crate::error::{GitError, Result};
use crate::remote::{mask_secrets, shown_url};

/// The environment variable giving the timeout of one git run against a remote, in seconds.
pub const TIMEOUT_ENV: &str = "ORCHESTRA_GIT_TIMEOUT";
/// The timeout of one git run against a remote when [`TIMEOUT_ENV`] is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The ssh command git is given when the user chose none (`GIT_SSH_COMMAND`, `GIT_SSH`,
/// `core.sshCommand`): never ask for a password or a host key.
const BATCH_SSH: &str = "ssh -o BatchMode=yes";
/// How many lines of git's stderr an error keeps (its end, where git says why).
const STDERR_LINES: usize = 8;

/// Why a run of `git` against a remote failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// No `git` program on `PATH`.
    #[error(
        "the `git` program was not found on PATH (orchestra runs git for every remote: install git)"
    )]
    Missing,
    /// `git` could not be started or waited for.
    #[error("cannot run git")]
    Run(#[source] ProcessError),
    /// `git` ran past the timeout and was killed (with its ssh).
    #[error(
        "git did not finish within {secs}s and was stopped (the timeout is {TIMEOUT_ENV}, in seconds)"
    )]
    TimedOut {
        /// The timeout, in seconds.
        secs: u64,
    },
    /// `git` failed; the end of what it said (credentials in URLs masked).
    #[error("git ended with {ending}: {stderr}")]
    Failed {
        /// How it ended (`exit status: 128`).
        ending: String,
        /// The last lines of its stderr.
        stderr: String,
    },
}

/// The timeout of one git run against a remote: [`TIMEOUT_ENV`] (whole seconds, more than 0,
/// an `s` after the number allowed), else [`DEFAULT_TIMEOUT`]. A value that is no such number
/// is [`GitError::BadTimeout`].
pub fn network_timeout() -> Result<Duration> {
    match std::env::var(TIMEOUT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_TIMEOUT),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_TIMEOUT),
        Ok(v) => parse_timeout(&v).ok_or(GitError::BadTimeout { value: v }),
        Err(std::env::VarError::NotUnicode(v)) => Err(GitError::BadTimeout {
            value: v.to_string_lossy().into_owned(),
        }),
    }
}

fn parse_timeout(value: &str) -> Option<Duration> {
    let v = value.trim();
    let v = v.strip_suffix('s').unwrap_or(v);
    let secs: u64 = v.trim().parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// One git operation on the remote `url`: what it is called in errors (`"clone"`,
/// `"fetch from"`, `"push to"`, ...) and where git runs (a clone, or anywhere).
pub(crate) struct Net<'a> {
    op: &'static str,
    url: &'a str,
    dir: Option<&'a Path>,
}

impl<'a> Net<'a> {
    /// `op` on `url`, run in `dir` (the clone) or, without one, in the current directory.
    pub(crate) fn new(op: &'static str, url: &'a str, dir: Option<&'a Path>) -> Self {
        Net { op, url, dir }
    }

    /// Runs `git ARGS` and returns its stdout; a failure is [`GitError::Remote`].
    pub(crate) fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.output(args)?;
        if !out.success() {
            return Err(self.failed(&out));
        }
        Ok(out.stdout.text())
    }

    /// Runs `git ARGS` to its end: its output whatever its exit status. Not finding git, not
    /// being able to run it and the timeout are [`GitError::Remote`].
    pub(crate) fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let timeout = network_timeout()?;
        let mut cmd = Command::new("git")
            .args(args)
            .timeout(timeout)
            // git's messages are read (push's porcelain reasons) and shown: one language.
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            // Empty: no askpass program at all (git then fails instead of asking).
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env("GCM_INTERACTIVE", "never");
        if let Some(dir) = self.dir {
            cmd = cmd.current_dir(dir);
        }
        if !self.user_chose_ssh() {
            cmd = cmd.env("GIT_SSH_COMMAND", BATCH_SSH);
        }
        let out = cmd.run_blocking().map_err(|e| match &e {
            ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                self.error(NetError::Missing)
            }
            _ => self.error(NetError::Run(e)),
        })?;
        if out.timed_out() {
            return Err(self.error(NetError::TimedOut {
                secs: timeout.as_secs(),
            }));
        }
        Ok(out)
    }

    /// The error of a run that ended badly, with the end of git's stderr.
    pub(crate) fn failed(&self, out: &Output) -> GitError {
        let text = mask_secrets(&out.stderr.text(), self.url);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n");
        self.error(NetError::Failed {
            ending: out.ending.to_string(),
            stderr: if tail.is_empty() {
                "(it said nothing)".to_owned()
            } else {
                tail
            },
        })
    }

    fn error(&self, source: NetError) -> GitError {
        GitError::Remote {
            op: self.op,
            url: shown_url(self.url),
            source,
        }
    }

    /// Whether the user chose how git runs ssh (`GIT_SSH_COMMAND`, `GIT_SSH`, or
    /// `core.sshCommand` in git's configuration as seen from where git runs).
    fn user_chose_ssh(&self) -> bool {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if set("GIT_SSH_COMMAND") || set("GIT_SSH") {
            return true;
        }
        let config = match self.dir.and_then(|d| git2::Repository::open(d).ok()) {
            Some(repo) => repo.config(),
            None => git2::Config::open_default(),
        };
        config
            .ok()
            .and_then(|c| c.get_string("core.sshCommand").ok())
            .is_some_and(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_whole_seconds() {
        assert_eq!(parse_timeout("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout(" 5s "), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("0"), None);
        assert_eq!(parse_timeout("2m"), None);
        assert_eq!(parse_timeout("-1"), None);
    }

    #[test]
    fn a_missing_remote_fails_naming_it_with_gits_words() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("nowhere.git").display().to_string();
        let err = Net::new("list the branches of", &url, None)
            .run(["ls-remote", "--", &url])
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot list the branches of {url}")),
            "{err}"
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            cause.starts_with("git ended with exit status: 128: ")
                && cause.contains("does not appear to be a git repository"),
            "{cause}"
        );
    }
}
