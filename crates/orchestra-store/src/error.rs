//! The error type of every store operation.

use std::path::PathBuf;
use std::time::Duration;

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
    /// A session id prefix matches several sessions.
    #[error("session prefix `{prefix}` is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix that was looked up.
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
        "database {} has schema version {found}, newer than the {supported} this orchestra \
         supports; upgrade orchestra",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this binary supports.
        supported: i64,
    },
    /// The file is not an orchestra database (not SQLite, damaged, or another program's).
    #[error("{} is not a readable orchestra database ({reason})", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found.
        reason: String,
        /// The underlying SQLite error, when there is one.
        #[source]
        source: Option<rusqlite::Error>,
    },
    /// Another connection kept the database locked for longer than the busy timeout.
    #[error("database {} stayed locked for more than {timeout:?} while trying to {op}", path.display())]
    Busy {
        /// The database file.
        path: PathBuf,
        /// The configured busy timeout.
        timeout: Duration,
        /// What was being done.
        op: &'static str,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
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
    /// Any other SQLite failure.
    #[error("database {} failed to {op}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
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
    /// A number does not fit SQLite's signed 64-bit integers.
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
    /// The database belongs to a newer binary or is not an orchestra database (exit code 2).
    BadDatabase,
    /// The database is busy (exit code 4 territory; the caller may retry).
    Busy,
    /// A bug in the caller or an internal failure (exit code 5).
    Internal,
}

impl StoreError {
    /// The broad class of this error.
    pub fn exit_class(&self) -> ErrorClass {
        match self {
            Self::NotFound { .. } | Self::Ambiguous { .. } => ErrorClass::Usage,
            Self::TooNew { .. } | Self::Corrupt { .. } => ErrorClass::BadDatabase,
            Self::Busy { .. } => ErrorClass::Busy,
            Self::AlreadyExists { .. }
            | Self::CheckpointExists { .. }
            | Self::InvalidRecord { .. }
            | Self::CreateDir { .. }
            | Self::Sqlite { .. }
            | Self::Encode { .. }
            | Self::OutOfRange { .. } => ErrorClass::Internal,
        }
    }

    /// Whether the error says "database is locked / busy".
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. })
    }

    pub(crate) fn not_found(id: &str) -> Self {
        Self::NotFound { id: id.to_owned() }
    }

    pub(crate) fn invalid(what: &'static str, session: &str, reason: impl Into<String>) -> Self {
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
            "session prefix `ab` is ambiguous: it matches abc, abd"
        );
        assert_eq!(e.exit_class(), ErrorClass::Usage);
    }

    #[test]
    fn too_new_names_path_and_versions() {
        let e = StoreError::TooNew {
            path: PathBuf::from("/x/o.db"),
            found: 9,
            supported: 1,
        };
        let msg = e.to_string();
        assert!(msg.contains("/x/o.db") && msg.contains('9') && msg.contains("upgrade"));
        assert_eq!(e.exit_class(), ErrorClass::BadDatabase);
    }
}
