//! The interaction layer shared by `orchestra mcp` and `orchestra ui`: drives started detached
//! (an `orchestra run` / `resume` process of its own that outlives the caller), one human line
//! for a session's interactive agent (through its attach socket when a process drives it, by a
//! detached resume with the line when it is paused), the chat a paused session waits at, and
//! stopping a session wherever the process that drives it runs, the way Ctrl-C does.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::attach::AttachError;
use crate::error::RuntimeError;

mod answer;
mod chat;
mod detached;
mod stop;

pub use answer::{DEFAULT_WAIT, answer};
pub use chat::{PausedChat, live_chat, paused_chat};
pub use detached::{Drive, last_events, start};
pub use stop::{StopHow, Stopping, stop, wait_released};

/// How drives are started detached: the `orchestra` executable, where it runs, the database it
/// drives sessions of, and where their logs go.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The `orchestra` executable.
    pub program: PathBuf,
    /// The directory drives run in.
    pub cwd: PathBuf,
    /// The session database (a path, or a URL).
    pub db: PathBuf,
    /// Given to drives in this environment variable rather than as `--db` (a URL may hold a
    /// password, and a command line is readable by every user of the machine).
    pub db_env: Option<&'static str>,
    /// What the attach socket of a session is placed beside (see [`crate::attach::socket_path`]).
    pub socket_anchor: PathBuf,
    /// The directory of the drives' logs and event files.
    pub logs: PathBuf,
    /// Who attaches, as a second attach client is told ("`orchestra ui` by alice (pid 42)").
    pub who: String,
}

/// What a detached drive started.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Started {
    /// The session id.
    pub session: String,
    /// The process driving it (`orchestra run` or `orchestra resume`, its own process group).
    pub pid: u32,
    /// Its output (progress lines, chats, the outcome).
    pub log: String,
    /// Its events, one JSON object per line (docs/events.md).
    pub events: String,
    /// What to do next.
    pub next: String,
}

/// One line of a chat.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ChatLine {
    /// `agent`, `human`, `notice` (from Orchestra, not the agent), or `command` (the
    /// `/approve`, `/reject` or `/done` that ended the chat).
    pub who: String,
    /// What was said.
    pub text: String,
}

/// What one human line did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Answered {
    /// The session id.
    pub session: String,
    /// `resumed`: the session was paused and a process now resumes it with the line (see
    /// `started`); `live`: the process running it took the line.
    pub delivered: String,
    /// For `live`: what the chat said after the line (the agent's answers, notices), and
    /// `/approve` etc. when it ended.
    pub replies: Vec<ChatLine>,
    /// For `live`: how the drive ended, when it ended while the server listened.
    pub finished: Option<String>,
    /// For `resumed`: the process resuming the session.
    pub started: Option<Started>,
}

/// Why an interaction failed. The messages are the ones `orchestra mcp` gives as tool errors
/// (without their `error: `).
#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    /// Reading the session failed (an unknown session, a database error).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A file or directory of the drives' logs could not be made or opened.
    #[error("cannot {what} {}", path.display())]
    Logs {
        /// `create`, `write` or `open`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The drive could not be started.
    #[error("cannot start `orchestra {command}`")]
    Spawn {
        /// `run` or `resume`.
        command: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The drive ended before its session started; `output` is what it printed (the CLI's own
    /// error), or a sentence naming its log when it printed nothing.
    #[error("{output}")]
    Ended {
        /// Its exit code, if it exited (2: bad input, 4: busy; see `orchestra --help`).
        code: Option<i32>,
        /// What it printed.
        output: String,
    },
    /// The drive did not start its session in time.
    #[error("`orchestra {command}` (pid {pid}) did not start session {session} within {}; see {log}", orchestra_spec::fmt_duration(*.waited))]
    Slow {
        /// `run` or `resume`.
        command: &'static str,
        /// Its process.
        pid: u32,
        /// The session.
        session: String,
        /// How long it was given.
        waited: Duration,
        /// Its log.
        log: String,
    },
    /// The answer is not one non-empty line.
    #[error("{0}")]
    BadLine(&'static str),
    /// The session is completed: no chat, nothing to resume.
    #[error("session {0} is completed; there is nothing to attach to (see `orchestra status {0}`)")]
    Completed(String),
    /// Another human is attached to the session.
    #[error("session {session} is held by {holder}; only one human can be attached at a time")]
    Held {
        /// The session.
        session: String,
        /// Who holds it.
        holder: String,
    },
    /// The session's attach socket failed.
    #[error("cannot attach to session {session}")]
    Attach {
        /// The session.
        session: String,
        /// Why.
        #[source]
        source: AttachError,
    },
    /// The driving process closed the attach connection without an outcome.
    #[error(
        "the process running session {0} went away without saying how it ended; see `orchestra status {0}`"
    )]
    Gone(String),
    /// The live session did not ask for a human in time.
    #[error("session {session} did not ask for a human within {}; the line was not delivered", orchestra_spec::fmt_duration(*.waited))]
    NoPrompt {
        /// The session.
        session: String,
        /// How long it was given.
        waited: Duration,
    },
    /// No live process drives the session (nothing to stop).
    #[error("session {session} is not running (it is {status}); there is nothing to stop")]
    NotRunning {
        /// The session.
        session: String,
        /// Its status.
        status: String,
    },
    /// The driving process could not be signalled.
    #[error("cannot interrupt process {pid} driving session {session}")]
    Signal {
        /// The session.
        session: String,
        /// The process.
        pid: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl InteractionError {
    /// What kind of failure it is, for callers that answer with a status: a problem with what
    /// was asked (`BadInput`), a session in a state that does not allow it (`Conflict`), an
    /// unknown session (`NotFound`), or a failure of this machine (`Internal`).
    pub fn kind(&self) -> ErrorKind {
        use orchestra_store::ErrorClass;
        match self {
            InteractionError::Runtime(RuntimeError::Store(crate::WorkerError::Store(s)))
                if s.exit_class() == ErrorClass::Usage =>
            {
                ErrorKind::NotFound
            }
            InteractionError::Runtime(RuntimeError::Busy { .. }) => ErrorKind::Conflict,
            InteractionError::Ended { code: Some(2), .. } | InteractionError::BadLine(_) => {
                ErrorKind::BadInput
            }
            InteractionError::Ended { code: Some(4), .. }
            | InteractionError::Completed(_)
            | InteractionError::Held { .. }
            | InteractionError::NoPrompt { .. }
            | InteractionError::NotRunning { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// See [`InteractionError::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked is wrong.
    BadInput,
    /// No such session.
    NotFound,
    /// The session's state does not allow it.
    Conflict,
    /// A failure of this machine.
    Internal,
}
