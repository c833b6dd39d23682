//! The one place the CLI opens the session store. `--db`, `ORCHESTRA_DATABASE` and `database:`
//! take a URL-like value: a path, `sqlite:PATH` or `sqlite://PATH` is a SQLite file;
//! `postgres://` (or `postgresql://`) is a PostgreSQL database, whose password (from the URL or
//! `PGPASSWORD`) is never printed; any other `scheme://` is refused, naming the value.
//!
//! Commands carry the database as the value given (a `PathBuf`: a path, or a URL) and ask this
//! module what it is.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use orchestra_runtime::{Engine, RuntimeError, error_chain};
use orchestra_store::{ErrorClass, StoreError};
use orchestra_store_postgres::{
    DEFAULT_POOL_SIZE, PgOptions, PgStore, is_postgres_url, mask_password,
};
use orchestra_store_sqlite::SqliteStore;

use crate::exit;

/// The help of a command's `--db` option, ending with `$default` (what the command uses
/// without one): one text for every command.
macro_rules! db_help {
    ($default:literal) => {
        concat!(
            "The session database: a path, `sqlite:PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB` ",
            "(what the URL leaves out comes from the libpq variables PGHOST, PGPORT, PGUSER, ",
            "PGDATABASE, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT; `?pool_size=N` connections at most) ",
            $default
        )
    };
}
pub(crate) use db_help;

/// Where a session database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL (which may hold a password: never print it, print
    /// [`shown`]).
    Postgres(String),
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// A URL of a kind orchestra does not know.
    #[error(
        "unsupported database `{value}`: give a file path, a `sqlite:PATH` URL or a `postgres://` URL (`{scheme}://` is not a kind of database orchestra knows)"
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
        Some(_) if is_postgres_url(text) => return Ok(Location::Postgres(text.to_owned())),
        Some(s) => {
            return Err(OpenError::Unsupported {
                value: mask_password(text),
                scheme: s.to_owned(),
            });
        }
        None => text.strip_prefix("sqlite:").unwrap_or(text),
    };
    Ok(Location::Sqlite(base.join(file)))
}

impl Location {
    /// The value commands carry: the database file, or the URL.
    pub(crate) fn value(&self) -> PathBuf {
        match self {
            Location::Sqlite(path) => path.clone(),
            Location::Postgres(url) => PathBuf::from(url),
        }
    }
}

/// Whether the database value `db` names a database on a server (a URL), not a file.
pub(crate) fn is_server(db: &Path) -> bool {
    db.to_str().is_some_and(is_postgres_url)
}

/// The database value `db` as it may be printed: a path as it is, a URL without its password.
pub(crate) fn shown(db: &Path) -> String {
    match db.to_str() {
        Some(url) if is_postgres_url(url) => mask_password(url),
        _ => db.display().to_string(),
    }
}

/// What the attach socket of a session of `db` is placed beside (see
/// `orchestra_runtime::attach::socket_path`): the SQLite file, or for a database on a server,
/// a file of the project at `root` (`.orchestra/postgres`, which need not exist): attaching to
/// a running session is local to the machine that drives it.
pub(crate) fn socket_anchor(db: &Path, root: &Path) -> PathBuf {
    if is_server(db) {
        root.join(".orchestra").join("postgres")
    } else {
        db.to_path_buf()
    }
}

/// How `command` (`orchestra mcp`, `orchestra ui`) starts drives of sessions of `db` detached
/// (this executable, in `cwd`), their logs and event files in `DIR/` beside the database (for a
/// database on a server, in the project's `.orchestra/`).
pub(crate) fn launcher(
    db: &Path,
    cwd: &Path,
    dir: &str,
    command: &str,
) -> io::Result<orchestra_runtime::interaction::Launcher> {
    let anchor = socket_anchor(db, &crate::engine::sessions_root(db, cwd));
    let logs = anchor.parent().unwrap_or_else(|| Path::new(".")).join(dir);
    Ok(orchestra_runtime::interaction::Launcher {
        program: std::env::current_exe()?,
        cwd: cwd.to_path_buf(),
        db: db.to_path_buf(),
        db_env: is_server(db).then_some(crate::engine::DATABASE_ENV),
        socket_anchor: anchor,
        logs,
        who: crate::human::describe(command),
    })
}

/// An engine over the database `db` (a value [`locate`] accepts; relative to the current
/// directory), for the project at `root`. A PostgreSQL password comes from the URL or
/// `PGPASSWORD`; its pool has the URL's `pool_size`, else the default.
pub(crate) fn engine(db: &Path, root: &Path) -> Result<Engine, OpenError> {
    engine_with_pool(db, root, DEFAULT_POOL_SIZE)
}

/// [`engine`] with a PostgreSQL pool of `pool_size` connections when the URL gives no
/// `pool_size` (a worker's, sized by how many sessions it drives at once).
pub(crate) fn engine_with_pool(
    db: &Path,
    root: &Path,
    pool_size: usize,
) -> Result<Engine, OpenError> {
    tracing::debug!(database = %shown(db), "opening the session database");
    let store: Box<dyn orchestra_store::Store> = match locate(db.as_os_str(), Path::new(""))? {
        Location::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        Location::Postgres(url) => Box::new(PgStore::connect_with(
            &url,
            PgOptions {
                pool_size,
                ..PgOptions::default()
            },
        )?),
    };
    Ok(Engine::new(store, root)?)
}

/// Prints why a database could not be opened and returns the exit code.
pub(crate) fn report(e: &OpenError) -> io::Result<u8> {
    report_to(&mut io::stderr().lock(), e)
}

/// [`report`] to `w`.
pub(crate) fn report_to(w: &mut dyn io::Write, e: &OpenError) -> io::Result<u8> {
    match e {
        OpenError::Runtime(e) => crate::engine::report_error_to(w, e),
        OpenError::Unsupported { .. } => {
            writeln!(w, "error: {e}")?;
            Ok(exit::BAD_INPUT)
        }
        OpenError::Store(s) => {
            writeln!(w, "error: {}", error_chain(e))?;
            Ok(match s.exit_class() {
                ErrorClass::Usage | ErrorClass::BadDatabase => exit::BAD_INPUT,
                ErrorClass::Busy | ErrorClass::LeaseLost => exit::SESSION_BUSY,
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
    fn postgres_urls_name_postgres_databases_and_are_shown_without_password() {
        for url in [
            "postgres://u:secret@db/o",
            "postgresql://db/o",
            "POSTGRES://u:secret@db:5433/o?sslmode=disable",
        ] {
            let location = at(url).unwrap();
            assert_eq!(location, Location::Postgres(url.to_owned()));
            let value = location.value();
            assert!(is_server(&value));
            assert!(!shown(&value).contains("secret"), "{}", shown(&value));
            assert_eq!(
                socket_anchor(&value, Path::new("/proj")),
                Path::new("/proj/.orchestra/postgres")
            );
        }
        assert_eq!(
            shown(Path::new("postgres://u:secret@db/o")),
            "postgres://u:***@db/o"
        );
        assert!(!is_server(Path::new("/proj/.orchestra/o.db")));
        assert_eq!(
            socket_anchor(Path::new("/p/o.db"), Path::new("/proj")),
            Path::new("/p/o.db")
        );
    }

    #[test]
    fn other_urls_are_refused_by_name() {
        let e = at("mysql://db/o").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported database `mysql://db/o`: give a file path, a `sqlite:PATH` URL or a \
             `postgres://` URL (`mysql://` is not a kind of database orchestra knows)"
        );
        let e = at("mysql://me:secret@db/o").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn the_exit_codes_are_bad_input_for_unsupported_databases() {
        let unsupported = OpenError::Unsupported {
            value: "mysql://db".into(),
            scheme: "mysql".into(),
        };
        assert_eq!(report(&unsupported).unwrap(), exit::BAD_INPUT);
        let unreachable = OpenError::Store(StoreError::Unreachable {
            database: "postgres://db/o".into(),
            reason: "connection refused".into(),
            source: None,
        });
        assert_eq!(report(&unreachable).unwrap(), exit::BAD_INPUT);
        let read_only = OpenError::Store(StoreError::ReadOnly {
            database: "/x.db".into(),
            op: "open it for writing",
            source: "read-only".into(),
        });
        assert_eq!(report(&read_only).unwrap(), exit::BAD_INPUT);
    }
}
