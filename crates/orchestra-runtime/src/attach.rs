//! Attaching to a live session: the process driving a session listens on a Unix socket next to
//! the database (`.orchestra/sessions/ID.sock`); `orchestra attach` connects, receives the
//! session's progress and its chats, and sends the human's lines.
//!
//! The protocol is newline-delimited JSON. The client opens with [`ClientMsg::Hello`]; the server
//! answers [`ServerMsg::Welcome`] or, when another human is attached or a chat is held by the
//! driving process's own terminal, [`ServerMsg::Busy`] naming who holds it, and closes. Then the
//! server streams [`ServerMsg::Event`]s and [`ServerMsg::Chat`]s, sends [`ServerMsg::Prompt`]
//! when it waits for a line, and ends with [`ServerMsg::Finished`]; the client sends
//! [`ClientMsg::Line`]s.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::events::Event;
use crate::interactive::ChatEvent;
use crate::outcome::Finish;

mod private;
mod server;

pub use private::UnsafeDir;
pub use server::AttachServer;

/// Longest socket path used as is (the OS limit is a little over 100 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// Why attaching failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Another process already serves the session at this path.
    #[error("another process already serves session `{session}` at {}", path.display())]
    Live {
        /// The session.
        session: String,
        /// The socket.
        path: PathBuf,
    },
    /// The directory of the socket is not private to this user.
    #[error(transparent)]
    UnsafeDir(#[from] UnsafeDir),
    /// The socket could not be created.
    #[error("cannot listen at {}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Nobody listens at the socket (no live process drives the session here).
    #[error("cannot connect to {}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The connection broke.
    #[error("the attach connection failed")]
    Io(#[from] io::Error),
    /// The other side sent something that is not the protocol.
    #[error("the attach protocol was not followed: {0}")]
    Protocol(String),
}

/// What an attach client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first message: who is attaching (shown to a second client as the holder).
    Hello {
        /// E.g. "`orchestra attach` by alice (pid 4242 on /dev/pts/3)".
        who: String,
    },
    /// A line the human typed.
    Line {
        /// The line, without its end.
        text: String,
    },
}

/// What the driving process sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The client is attached.
    Welcome {
        /// Session id.
        session: String,
        /// The driving process, e.g. "`orchestra run` (pid 4000)".
        driver: String,
    },
    /// Someone else holds the session; the connection closes.
    Busy {
        /// Who.
        holder: String,
    },
    /// A progress event of the session.
    Event {
        /// The event.
        event: Event,
    },
    /// Something of a chat with the attached human.
    Chat {
        /// The chat event.
        event: ChatEvent,
    },
    /// The chat waits for the human's next line.
    Prompt,
    /// The drive ended; the connection closes.
    Finished {
        /// How it ended.
        outcome: Outcome,
    },
}

/// How a drive ended, as told to attach clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `completed`, `failed`, `stopped`, `paused`, `interrupted`, or `error` (the drive could
    /// not run at all).
    pub status: String,
    /// The error, limit, or pause reason.
    pub detail: Option<String>,
}

impl From<&Finish> for Outcome {
    fn from(f: &Finish) -> Self {
        Outcome {
            status: f.status().as_str().to_owned(),
            detail: f.note(),
        }
    }
}

/// The socket of `session` for the database at `db`: `sessions/ID.sock` beside the database,
/// or, when that path is too long for a Unix socket, a file under the temp directory named
/// after a hash of the database's path.
pub fn socket_path(db: &Path, session: &str) -> PathBuf {
    let dir = db
        .parent()
        .map_or_else(|| PathBuf::from("sessions"), |p| p.join("sessions"));
    let near = dir.join(format!("{session}.sock"));
    if near.as_os_str().len() <= MAX_SOCKET_PATH {
        return near;
    }
    let canonical = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    // One directory per user: another user cannot have made it first.
    std::env::temp_dir()
        .join(format!("orchestra-sessions-{}", private::my_uid()))
        .join(format!("{h:016x}-{session}.sock"))
}

/// The answer to a [`connect`].
#[derive(Debug)]
pub enum Joined {
    /// Attached: the driver and the connection.
    Attached {
        /// The driving process.
        driver: String,
        /// Messages from the driver.
        incoming: Incoming,
        /// Lines to the driver.
        outgoing: Outgoing,
    },
    /// Someone else holds the session.
    Busy {
        /// Who.
        holder: String,
    },
}

/// Connects to the live session at `path` as `who`.
pub async fn connect(path: &Path, who: &str) -> Result<Joined, AttachError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| AttachError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    private::check_peer(&stream, path)?;
    let (read, write) = stream.into_split();
    let mut incoming = Incoming {
        lines: BufReader::new(read).lines(),
    };
    let mut outgoing = Outgoing { write };
    outgoing
        .send(&ClientMsg::Hello {
            who: who.to_owned(),
        })
        .await?;
    match incoming.next().await? {
        Some(ServerMsg::Welcome { driver, .. }) => Ok(Joined::Attached {
            driver,
            incoming,
            outgoing,
        }),
        Some(ServerMsg::Busy { holder }) => Ok(Joined::Busy { holder }),
        Some(other) => Err(AttachError::Protocol(format!(
            "expected a welcome, got {other:?}"
        ))),
        None => Err(AttachError::Protocol(
            "the driving process closed the connection at once".into(),
        )),
    }
}

/// Messages from the driving process.
#[derive(Debug)]
pub struct Incoming {
    lines: Lines<BufReader<OwnedReadHalf>>,
}

impl Incoming {
    /// The next message; `None` when the connection closed.
    pub async fn next(&mut self) -> Result<Option<ServerMsg>, AttachError> {
        loop {
            let Some(line) = self.lines.next_line().await? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| AttachError::Protocol(format!("unreadable message ({e})")));
        }
    }
}

/// Lines to the driving process.
#[derive(Debug)]
pub struct Outgoing {
    write: OwnedWriteHalf,
}

impl Outgoing {
    /// Sends a line the human typed.
    pub async fn line(&mut self, text: &str) -> Result<(), AttachError> {
        self.send(&ClientMsg::Line {
            text: text.to_owned(),
        })
        .await
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), AttachError> {
        let mut text = serde_json::to_string(msg)
            .map_err(|e| AttachError::Protocol(format!("cannot encode a message ({e})")))?;
        text.push('\n');
        self.write.write_all(text.as_bytes()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_sit_beside_the_database_unless_the_path_is_too_long() {
        let p = socket_path(Path::new("/p/.orchestra/orchestra.db"), "s1");
        assert_eq!(p, Path::new("/p/.orchestra/sessions/s1.sock"));
        let deep = format!("/{}/orchestra.db", "d".repeat(120));
        let p = socket_path(Path::new(&deep), "s1");
        assert!(p.starts_with(std::env::temp_dir()));
        assert!(p.to_string_lossy().ends_with("-s1.sock"));
        assert_eq!(p, socket_path(Path::new(&deep), "s1"));
    }

    #[tokio::test]
    async fn the_socket_and_its_directory_are_private_whatever_the_umask() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let tmp = tempfile::tempdir().unwrap();
        // A group-writable parent, as a umask of 002 makes: the socket's own directory and
        // the socket are private all the same.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
        let db = tmp.path().join("orchestra.db");
        let path = socket_path(&db, "s1");
        let server =
            AttachServer::bind(&path, "s1", "the test".into(), None, String::new()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        drop(server);

        // A socket directory of this user's that others could write to (an earlier release
        // made it under the umask) is tightened before use.
        let open = tmp.path().join("open");
        let open_db = open.join("orchestra.db");
        let open_sockets = open.join("sessions");
        std::fs::create_dir_all(&open_sockets).unwrap();
        std::fs::set_permissions(&open_sockets, std::fs::Permissions::from_mode(0o777)).unwrap();
        let server = AttachServer::bind(
            &socket_path(&open_db, "s1"),
            "s1",
            "the test".into(),
            None,
            String::new(),
        )
        .unwrap();
        assert_eq!(mode(&open_sockets), 0o700);
        drop(server);
        // One that belongs to someone else is refused (tests run as root here, which can give
        // a directory away).
        if private::my_uid() == 0 {
            let theirs = tmp.path().join("theirs");
            let their_sockets = theirs.join("sessions");
            std::fs::create_dir_all(&their_sockets).unwrap();
            std::os::unix::fs::chown(&their_sockets, Some(65534), Some(65534)).unwrap();
            let err = AttachServer::bind(
                &socket_path(&theirs.join("orchestra.db"), "s1"),
                "s1",
                "the test".into(),
                None,
                String::new(),
            )
            .unwrap_err();
            assert!(matches!(err, AttachError::UnsafeDir(_)), "{err}");
        }
    }

    #[test]
    fn messages_have_a_stable_wire_form() {
        let m = ServerMsg::Finished {
            outcome: Outcome::from(&Finish::Completed {
                warnings: Vec::new(),
            }),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"finished","outcome":{"status":"completed","detail":null}}"#
        );
        let c: ClientMsg = serde_json::from_str(r#"{"type":"line","text":"hi"}"#).unwrap();
        assert_eq!(c, ClientMsg::Line { text: "hi".into() });
        let e = ServerMsg::Event {
            event: Event::Warning {
                message: "w".into(),
            },
        };
        let back: ServerMsg = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
