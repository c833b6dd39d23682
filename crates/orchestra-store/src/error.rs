//! The error type of every store operation.

use std::path::PathBuf;
use std::time::Duration;

/// A backend's own error (SQLite's, PostgreSQL's, ...), kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
///
/// Messages are lowercase and name what they are about (session id, database path) so the CLI
/// can print them as they are; [`StoreError::exit_class`] tells the CLI which exit code applies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No session has this id (or id prefix).
    #[error("no session matches `{id}`")]
    NotFound {
        /// The id or prefix that was looked up.
        id: String,
    },
    /// A session id prefix (or tail) matches several sessions.
    #[error("session `{prefix}` is ambiguous: it matches {}; give more of the id", candidates.join(", "))]
    Ambiguous {
        /// The prefix or tail that was looked up.
        prefix: String,
        /// The matching ids (at most [`crate::MAX_AMBIGUOUS_CANDIDATES`], sorted).
        candidates: Vec<String>,
    },
    /// `create_session` was called with an id that is already taken.
    #[error("a session with id `{id}` already exists")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// `commit_checkpoint` was called twice for the same step.
    #[error("checkpoint {step} of session `{session}` already exists")]
    CheckpointExists {
        /// The session id.
        session: String,
        /// The step.
        step: u64,
    },
    /// A write fenced on a session's lease ([`Store::commit_fenced`](crate::Store::commit_fenced))
    /// was refused, and nothing of it written: another process took the lease over (the writer
    /// stalled past its lease), or it was released.
    #[error(
        "lost the lease of session `{session}` to {}",
        holder.as_deref().unwrap_or("nobody (it was released)")
    )]
    LeaseLost {
        /// The session id.
        session: String,
        /// Who holds the lease now (`pid@host`), if anyone.
        holder: Option<String>,
    },
    /// A record is inconsistent with what is stored (for example a checkpoint whose parent
    /// step does not exist).
    #[error("invalid {what} for session `{session}`: {reason}")]
    InvalidRecord {
        /// What kind of record.
        what: &'static str,
        /// The session id.
        session: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database was written by a newer orchestra with a schema this binary does not know.
    #[error(
        "database {database} has schema version {found}, newer than the {supported} this \
         orchestra supports; upgrade orchestra"
    )]
    TooNew {
        /// The database, as people name it (a file path; a URL without its password).
        database: String,
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this binary supports.
        supported: i64,
    },
    /// The database is not an orchestra database (not one at all, damaged, or another
    /// program's).
    #[error("{database} is not a readable orchestra database ({reason})")]
    Corrupt {
        /// The database, as people name it.
        database: String,
        /// What was found.
        reason: String,
        /// The backend's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Another connection kept the database locked for longer than the busy timeout.
    #[error("database {database} stayed locked for more than {timeout:?} while trying to {op}")]
    Busy {
        /// The database, as people name it.
        database: String,
        /// The configured busy timeout.
        timeout: Duration,
        /// What was being done.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The database cannot be written: its file (or its directory) is read-only for this user,
    /// or the server refuses writes.
    #[error(
        "database {database} is read-only, so orchestra cannot {op}; make it writable (the file \
         and its directory) or use another database"
    )]
    ReadOnly {
        /// The database, as people name it.
        database: String,
        /// What was being done.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The database server cannot be reached or refuses the connection: nothing listens at its
    /// address, it does not answer in time, the authentication fails, the database does not
    /// exist.
    #[error("cannot connect to database {database}: {reason}")]
    Unreachable {
        /// The database, as people name it (a URL without its password).
        database: String,
        /// What went wrong, for people (`connection refused by 127.0.0.1:5432; ...`).
        reason: String,
        /// The backend's error, when the reason does not say it all.
        #[source]
        source: Option<BoxError>,
    },
    /// The connection to the database server was lost (or could not be made again) while
    /// working: the server restarted, stopped or the network failed. Nothing of the operation
    /// was stored; it may succeed once the server is back ([`StoreError::is_connection_lost`]).
    #[error("database {database} failed to {op}: {reason}")]
    ConnectionLost {
        /// The database, as people name it (a URL without its password).
        database: String,
        /// What was being done.
        op: &'static str,
        /// What happened to the connection, for people.
        reason: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The directory that should hold the database could not be created.
    #[error("failed to create directory {} for the database", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of the backend (I/O, a full disk, a lost connection, ...).
    #[error("database {database} failed to {op}")]
    Backend {
        /// The database, as people name it.
        database: String,
        /// What was being done.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// A value could not be encoded as JSON.
    #[error("failed to encode {what} as json")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A number does not fit the signed 64-bit integers databases store.
    #[error("{what} = {value} is too large to store")]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u64,
    },
}

/// The broad class of a [`StoreError`], for mapping to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The user named something that does not exist or is ambiguous (exit code 2).
    Usage,
    /// The database belongs to a newer binary, is not an orchestra database, cannot be
    /// written or cannot be reached (exit code 2: the user points at another database or fixes
    /// this one).
    BadDatabase,
    /// The database is busy (exit code 4 territory; the caller may retry).
    Busy,
    /// Another process took the session over: this one must stop driving it (exit code 4:
    /// the session is busy).
    LeaseLost,
    /// A bug in the caller or an internal failure (exit code 5).
    Internal,
}

impl StoreError {
    /// The broad class of this error.
    pub fn exit_class(&self) -> ErrorClass {
        match self {
            Self::NotFound { .. } | Self::Ambiguous { .. } => ErrorClass::Usage,
            Self::TooNew { .. }
            | Self::Corrupt { .. }
            | Self::ReadOnly { .. }
            | Self::Unreachable { .. } => ErrorClass::BadDatabase,
            Self::Busy { .. } => ErrorClass::Busy,
            Self::LeaseLost { .. } => ErrorClass::LeaseLost,
            Self::AlreadyExists { .. }
            | Self::CheckpointExists { .. }
            | Self::InvalidRecord { .. }
            | Self::CreateDir { .. }
            | Self::Backend { .. }
            | Self::ConnectionLost { .. }
            | Self::Encode { .. }
            | Self::OutOfRange { .. } => ErrorClass::Internal,
        }
    }

    /// Whether the error says "database is locked / busy".
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    /// Whether the error is a lost connection to the database server
    /// ([`StoreError::ConnectionLost`]): transient, unlike the session's own failures.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Self::ConnectionLost { .. })
    }

    /// Whether another process took over (or released) the lease a fenced write needed.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost { .. })
    }

    /// `NotFound` for the session `id`.
    pub fn not_found(id: &str) -> Self {
        Self::NotFound { id: id.to_owned() }
    }

    /// `InvalidRecord` of `what` for `session`.
    pub fn invalid(what: &'static str, session: &str, reason: impl Into<String>) -> Self {
        Self::InvalidRecord {
            what,
            session: session.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_lists_candidates() {
        let e = StoreError::Ambiguous {
            prefix: "ab".into(),
            candidates: vec!["abc".into(), "abd".into()],
        };
        assert_eq!(
            e.to_string(),
            "session `ab` is ambiguous: it matches abc, abd; give more of the id"
        );
        assert_eq!(e.exit_class(), ErrorClass::Usage);
    }

    #[test]
    fn too_new_names_path_and_versions() {
        let e = StoreError::TooNew {
            database: "/x/o.db".into(),
            found: 9,
            supported: 1,
        };
        let msg = e.to_string();
        assert!(msg.contains("/x/o.db") && msg.contains('9') && msg.contains("upgrade"));
        assert_eq!(e.exit_class(), ErrorClass::BadDatabase);
    }

    #[test]
    fn read_only_says_so_and_keeps_the_cause() {
        use std::error::Error as _;
        let e = StoreError::ReadOnly {
            database: "/x/o.db".into(),
            op: "enable write-ahead logging",
            source: "attempt to write a readonly database".into(),
        };
        assert_eq!(
            e.to_string(),
            "database /x/o.db is read-only, so orchestra cannot enable write-ahead logging; make \
             it writable (the file and its directory) or use another database"
        );
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("attempt to write a readonly database")
        );
        assert_eq!(e.exit_class(), ErrorClass::BadDatabase);
    }
}
