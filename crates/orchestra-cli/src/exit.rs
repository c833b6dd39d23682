//! Exit codes, in one place (see docs/ARCHITECTURE.md, "Exit codes").

use std::fmt::Write as _;
use std::process::ExitCode;

use orchestra_store::SessionStatus;

/// Success; also a session that paused for a human (the way to attach is printed).
pub(crate) const SUCCESS: u8 = 0;
/// The session failed: node errors past retries, circuit breaker, unsatisfiable join, loop
/// limit without `on_max_loops`.
pub(crate) const SESSION_FAILED: u8 = 1;
/// Bad input or usage: invalid pipeline, unknown flag, unknown session, checkpoint or node, a file
/// given as the database that is not an orchestra database (or is a newer orchestra's), a
/// PostgreSQL database that cannot be reached (refused, authentication failed, no such
/// database), an `--events` file that cannot be opened, a wrong `OTEL_*` variable or
/// `ORCHESTRA_GIT_TIMEOUT`.
pub(crate) const BAD_INPUT: u8 = 2;
/// The session stopped at a limit (`max_tokens`, `max_cost`, `max_steps`); resumable with
/// higher limits.
pub(crate) const STOPPED_AT_LIMIT: u8 = 3;
/// The session is busy: another process holds its lease (also: this drive stalled past its
/// lease and another process took the session over; its last step was dropped).
pub(crate) const SESSION_BUSY: u8 = 4;
/// Internal error: a database, git or I/O operation failed while working (a full disk, a
/// read-only database, permissions; a git remote that cannot be reached, refuses or times out
/// while a session is set up, or `git` missing).
pub(crate) const INTERNAL: u8 = 5;
/// Interrupted (Ctrl-C); the session is resumable.
pub(crate) const INTERRUPTED: u8 = 130;

/// Every code with its meaning, for `--help`.
const TABLE: [(u8, &str); 7] = [
    (SUCCESS, "success (also: a session paused for a human)"),
    (SESSION_FAILED, "the session failed"),
    (
        BAD_INPUT,
        "bad input or usage (invalid pipeline, unknown flag, session, checkpoint or node, a file that is not an orchestra database, a database server that cannot be reached)",
    ),
    (
        STOPPED_AT_LIMIT,
        "the session stopped at a limit (max_tokens, max_cost, max_steps); resumable",
    ),
    (
        SESSION_BUSY,
        "the session is busy: another process drives it (or took it over from this one)",
    ),
    (
        INTERNAL,
        "internal error (a database, git or I/O operation failed; a git remote unreachable or timed out)",
    ),
    (INTERRUPTED, "interrupted; the session is resumable"),
];

/// The exit-code table shown at the end of `orchestra --help`, and the environment read.
pub(crate) fn help() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        let _ = writeln!(s, "  {code:>3}  {meaning}");
    }
    let _ = write!(
        s,
        "\nEnvironment:\n  {}  seconds one git run against a repository's `url:` remote may take \
         (default {})\n",
        orchestra_git::TIMEOUT_ENV,
        orchestra_git::DEFAULT_TIMEOUT.as_secs()
    );
    s
}

/// The exit code of a drive that left its session in `status`: the one mapping from how a
/// session ended to an exit code (`run`, `resume`, `replay` and `attach` all use it).
pub(crate) fn of_status(status: SessionStatus) -> u8 {
    match status {
        // Queued: `attach` handed the session back to the workers after the human's turn.
        SessionStatus::Completed | SessionStatus::Paused | SessionStatus::Queued => SUCCESS,
        SessionStatus::Failed => SESSION_FAILED,
        SessionStatus::Stopped => STOPPED_AT_LIMIT,
        SessionStatus::Interrupted => INTERRUPTED,
        // A drive never ends in these; if one is reported, something inside went wrong.
        SessionStatus::Created | SessionStatus::Running => INTERNAL,
    }
}

/// The process exit code for `code`.
pub(crate) fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
