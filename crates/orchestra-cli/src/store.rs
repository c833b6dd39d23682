//! The one place the CLI opens the session store. `--db` and `database:` take a URL-like value:
//! a path, `sqlite:PATH` or `sqlite://PATH` is a SQLite file; `postgres://` (or
//! `postgresql://`) is recognised but not supported by this build yet; any other `scheme://`
//! is refused, naming the value.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use orchestra_runtime::{Engine, RuntimeError, error_chain};
use orchestra_store::{ErrorClass, StoreError};
use orchestra_store_sqlite::SqliteStore;

use crate::exit;

/// Where a session database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// A PostgreSQL URL (its text is not repeated: it may hold a password).
    #[error(
        "PostgreSQL databases are not supported by this build yet; give a SQLite file (a path) instead"
    )]
    Postgres,
    /// A URL of a kind orchestra does not know.
    #[error(
        "unsupported database `{value}`: give a file path or a `sqlite:PATH` URL (`{scheme}://` is not a kind of database orchestra knows)"
    )]
    Unsupported {
        /// The value as given.
        value: String,
        /// Its scheme.
        scheme: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine could not be started.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// The scheme of `value` when it is a `scheme://...` URL (RFC 3986 scheme characters).
fn scheme(value: &str) -> Option<&str> {
    let (scheme, _) = value.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Where the database named by `value` is; a relative SQLite path is taken from `base`.
pub(crate) fn locate(value: &OsStr, base: &Path) -> Result<Location, OpenError> {
    let Some(text) = value.to_str() else {
        return Ok(Location::Sqlite(base.join(value)));
    };
    let file = match scheme(text) {
        Some(s) if s.eq_ignore_ascii_case("sqlite") => &text[s.len() + 3..],
        Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => {
            return Err(OpenError::Postgres);
        }
        Some(s) => {
            return Err(OpenError::Unsupported {
                value: text.to_owned(),
                scheme: s.to_owned(),
            });
        }
        None => text.strip_prefix("sqlite:").unwrap_or(text),
    };
    Ok(Location::Sqlite(base.join(file)))
}

impl Location {
    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Location::Sqlite(path) => path,
        }
    }
}

/// An engine over the database `db` (a value [`locate`] accepts; relative to the current
/// directory), for the project at `root`.
pub(crate) fn engine(db: &Path, root: &Path) -> Result<Engine, OpenError> {
    let store = match locate(db.as_os_str(), Path::new(""))? {
        Location::Sqlite(path) => SqliteStore::open(path)?,
    };
    Ok(Engine::new(Box::new(store), root)?)
}

/// Prints why a database could not be opened and returns the exit code.
pub(crate) fn report(e: &OpenError) -> io::Result<u8> {
    report_to(&mut io::stderr().lock(), e)
}

/// [`report`] to `w`.
pub(crate) fn report_to(w: &mut dyn io::Write, e: &OpenError) -> io::Result<u8> {
    match e {
        OpenError::Runtime(e) => crate::engine::report_error_to(w, e),
        OpenError::Postgres | OpenError::Unsupported { .. } => {
            writeln!(w, "error: {e}")?;
            Ok(exit::BAD_INPUT)
        }
        OpenError::Store(s) => {
            writeln!(w, "error: {}", error_chain(e))?;
            Ok(match s.exit_class() {
                ErrorClass::Usage | ErrorClass::BadDatabase => exit::BAD_INPUT,
                ErrorClass::Busy => exit::SESSION_BUSY,
                _ => exit::INTERNAL,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: &str) -> Result<Location, OpenError> {
        locate(OsStr::new(value), Path::new("/proj"))
    }

    #[test]
    fn paths_and_sqlite_urls_name_sqlite_files() {
        let sqlite = |p: &str| Location::Sqlite(PathBuf::from(p));
        assert_eq!(
            at(".orchestra/o.db").unwrap(),
            sqlite("/proj/.orchestra/o.db")
        );
        assert_eq!(at("/data/o.db").unwrap(), sqlite("/data/o.db"));
        assert_eq!(at("sqlite:o.db").unwrap(), sqlite("/proj/o.db"));
        assert_eq!(at("sqlite:///data/o.db").unwrap(), sqlite("/data/o.db"));
        assert_eq!(at("sqlite://rel/o.db").unwrap(), sqlite("/proj/rel/o.db"));
        assert_eq!(at("SQLite:///x.db").unwrap(), sqlite("/x.db"));
        // Not URLs: a colon in a file name, a `://` after a path separator.
        assert_eq!(at("a:b.db").unwrap(), sqlite("/proj/a:b.db"));
        assert_eq!(at("dir/x://y").unwrap(), sqlite("/proj/dir/x://y"));
    }

    #[test]
    fn postgres_is_not_supported_yet_and_says_so() {
        for url in [
            "postgres://u:secret@db/o",
            "postgresql://db/o",
            "POSTGRES://db",
        ] {
            let e = at(url).unwrap_err();
            assert!(matches!(e, OpenError::Postgres), "{url}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with("PostgreSQL databases are not supported by this build yet"),
                "{msg}"
            );
            assert!(!msg.contains("secret"), "the password is not shown: {msg}");
        }
    }

    #[test]
    fn other_urls_are_refused_by_name() {
        let e = at("mysql://db/o").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported database `mysql://db/o`: give a file path or a `sqlite:PATH` URL \
             (`mysql://` is not a kind of database orchestra knows)"
        );
    }

    #[test]
    fn the_exit_codes_are_bad_input_for_unsupported_databases() {
        assert_eq!(report(&OpenError::Postgres).unwrap(), exit::BAD_INPUT);
        let read_only = OpenError::Store(StoreError::ReadOnly {
            database: "/x.db".into(),
            op: "open it for writing",
            source: "read-only".into(),
        });
        assert_eq!(report(&read_only).unwrap(), exit::BAD_INPUT);
    }
}
