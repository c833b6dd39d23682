//! Error mapping: a `postgres::Error` raised while doing something becomes the [`StoreError`]
//! that says what it means (busy, read-only, unreachable, damaged data, ...), naming the
//! database by its URL without the password.

use std::io;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Config, Row};
use serde_json::Value;

use orchestra_store::StoreError;

use crate::url::SslMode;

/// The operation of connecting (errors of it are [`StoreError::Unreachable`]).
pub(crate) const CONNECT: &str = "connect";

/// What error mapping needs to know about the connection.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The URL without its password.
    pub(crate) database: String,
    /// The server (`host:port`), for connection errors.
    pub(crate) server: String,
    /// The user, for authentication errors.
    pub(crate) user: String,
    /// The `sslmode`, for TLS errors.
    pub(crate) sslmode: SslMode,
    /// How long a statement waits for a lock before failing with `Busy`.
    pub(crate) lock_timeout: Duration,
}

impl Ctx {
    pub(crate) fn new(
        database: String,
        config: &Config,
        sslmode: SslMode,
        lock_timeout: Duration,
    ) -> Self {
        Self {
            database,
            server: crate::url::server(config),
            user: config.get_user().unwrap_or("(the login name)").to_owned(),
            sslmode,
            lock_timeout,
        }
    }

    /// Maps a postgres error raised while trying to `op`.
    pub(crate) fn err(&self, op: &'static str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |source| self.map(op, source)
    }

    pub(crate) fn map(&self, op: &'static str, source: postgres::Error) -> StoreError {
        let database = self.database.clone();
        // Only connecting can find the database unreachable (exit 2: the user fixes the URL or
        // starts the server); a connection lost while working is a failure of that work.
        if op == CONNECT
            && let Some(reason) = self.unreachable_reason(&source)
        {
            return StoreError::Unreachable {
                database,
                reason,
                source: None,
            };
        }
        // A connection lost while working (the server restarted or stopped, the network
        // failed): transient, the work may be done again once the server is back.
        if op != CONNECT
            && let Some(reason) = self.unreachable_reason(&source)
        {
            return StoreError::ConnectionLost {
                database,
                op,
                reason,
                source: source.into(),
            };
        }
        match source.code() {
            Some(c)
                if *c == SqlState::LOCK_NOT_AVAILABLE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                StoreError::Busy {
                    database,
                    timeout: self.lock_timeout,
                    op,
                    source: source.into(),
                }
            }
            Some(c)
                if *c == SqlState::READ_ONLY_SQL_TRANSACTION
                    || *c == SqlState::INSUFFICIENT_PRIVILEGE =>
            {
                StoreError::ReadOnly {
                    database,
                    op,
                    source: source.into(),
                }
            }
            Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
                StoreError::Corrupt {
                    database,
                    reason: format!("postgresql reports damage while trying to {op}"),
                    source: Some(source.into()),
                }
            }
            _ => StoreError::Backend {
                database,
                op,
                source: source.into(),
            },
        }
    }

    /// Why the connection could not be made or was lost, for people; `None` for errors of a
    /// working connection.
    fn unreachable_reason(&self, e: &postgres::Error) -> Option<String> {
        let server = &self.server;
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            return if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                Some(format!(
                    "authentication failed for user `{}` at {server} ({}); check the user and \
                     the password (in the URL or PGPASSWORD)",
                    self.user,
                    db.message()
                ))
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                Some(format!("{} at {server}; create it first", db.message()))
            } else if *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
            {
                Some(format!(
                    "the server at {server} refuses connections ({})",
                    db.message()
                ))
            } else {
                None
            };
        }
        if e.is_closed() {
            return Some(format!("the connection to {server} was closed"));
        }
        let text = chain(e);
        if let Some(tls) = text.strip_prefix("error performing TLS handshake: ") {
            let mode = self.sslmode.name();
            return Some(if tls == "server does not support TLS" {
                format!(
                    "the server at {server} does not accept TLS connections (sslmode={mode}); \
                     turn ssl on at the server, or give sslmode=prefer or disable"
                )
            } else {
                format!("the TLS handshake with {server} failed (sslmode={mode}): {tls}")
            });
        }
        if let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>()) {
            return Some(match io.kind() {
                io::ErrorKind::ConnectionRefused => format!(
                    "connection refused by {server}; is the PostgreSQL server running there?"
                ),
                io::ErrorKind::NotFound if server.contains("/.s.PGSQL.") => {
                    format!("no server listens on the socket {server}")
                }
                io::ErrorKind::TimedOut => format!("{server} did not answer in time"),
                _ => format!("{text} ({server}): {io}"),
            });
        }
        if text.starts_with("timeout waiting for server") {
            return Some(format!("{server} did not answer in time"));
        }
        if text.contains("password missing") {
            return Some(format!(
                "the server at {server} asks user `{}` for a password; give it in the URL or \
                 in PGPASSWORD",
                self.user
            ));
        }
        if text.starts_with("error connecting to server")
            || text.starts_with("error communicating with the server")
            || text.starts_with("error performing TLS handshake")
            || text.starts_with("authentication error")
        {
            return Some(format!("{text} ({server})"));
        }
        None
    }

    /// Data of the wrong shape read back while trying to `op`.
    pub(crate) fn corrupt(&self, op: &'static str, what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            database: self.database.clone(),
            reason: format!("invalid stored data while trying to {op}: {what}"),
            source: None,
        }
    }
}

/// Typed reads of a row's columns, stored data of the wrong shape reported as
/// [`StoreError::Corrupt`].
pub(crate) struct Cols<'a> {
    pub(crate) row: &'a Row,
    pub(crate) cx: &'a Ctx,
    pub(crate) op: &'static str,
}

impl Cols<'_> {
    fn get<'r, T: postgres::types::FromSql<'r>>(&'r self, i: usize) -> Result<T, StoreError> {
        self.row
            .try_get(i)
            .map_err(|e| self.cx.corrupt(self.op, format!("column {i}: {e}")))
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i)
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i)
    }

    pub(crate) fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.get(i)
    }

    pub(crate) fn f64(&self, i: usize) -> Result<f64, StoreError> {
        self.get(i)
    }

    pub(crate) fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.get(i)
    }

    pub(crate) fn u64(&self, i: usize) -> Result<u64, StoreError> {
        let v: i64 = self.get(i)?;
        u64::try_from(v).map_err(|_| self.cx.corrupt(self.op, format!("column {i} = {v}")))
    }

    pub(crate) fn opt_u64(&self, i: usize) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self.get(i)?;
        v.map(|v| {
            u64::try_from(v).map_err(|_| self.cx.corrupt(self.op, format!("column {i} = {v}")))
        })
        .transpose()
    }

    pub(crate) fn u32(&self, i: usize) -> Result<u32, StoreError> {
        let v: i64 = self.get(i)?;
        u32::try_from(v).map_err(|_| self.cx.corrupt(self.op, format!("column {i} = {v}")))
    }

    pub(crate) fn opt_u32(&self, i: usize) -> Result<Option<u32>, StoreError> {
        let v: Option<i64> = self.get(i)?;
        v.map(|v| {
            u32::try_from(v).map_err(|_| self.cx.corrupt(self.op, format!("column {i} = {v}")))
        })
        .transpose()
    }

    /// UTF-8 text kept as bytes (`BYTEA`: it may hold NUL characters).
    pub(crate) fn bytes_text(&self, i: usize) -> Result<String, StoreError> {
        let v: Vec<u8> = self.get(i)?;
        String::from_utf8(v).map_err(|e| self.cx.corrupt(self.op, format!("column {i}: {e}")))
    }

    /// JSON text parsed into `T`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, StoreError> {
        let v: &str = self.get(i)?;
        serde_json::from_str(v).map_err(|e| self.cx.corrupt(self.op, format!("column {i}: {e}")))
    }

    pub(crate) fn opt_json(&self, i: usize) -> Result<Option<Value>, StoreError> {
        let v: Option<&str> = self.get(i)?;
        v.map(|v| {
            serde_json::from_str(v)
                .map_err(|e| self.cx.corrupt(self.op, format!("column {i}: {e}")))
        })
        .transpose()
    }

    pub(crate) fn status<T: std::str::FromStr>(&self, i: usize) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        let v: &str = self.get(i)?;
        v.parse()
            .map_err(|e| self.cx.corrupt(self.op, format!("column {i}: {e}")))
    }
}

/// An error and its causes, `: `-separated (`invalid configuration: password missing`).
fn chain(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `value` as JSON text.
pub(crate) fn to_json(
    what: &'static str,
    value: &impl serde::Serialize,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}
