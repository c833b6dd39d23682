//! File permissions: a database and its WAL and shared-memory files are private to their owner
//! whatever the umask, and a database this user cannot write is refused with an error that says
//! so. The checks run in child processes (the test binary re-executed): one under `umask 022`
//! (the umask is the whole process's), and, when the tests run as root (who may write any
//! file), one as the user `nobody`, for whom read-only files are read-only.

use std::env;
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orchestra_store::{Store, StoreError};
use orchestra_store_sqlite::SqliteStore;

use crate::common::new_session;

const MODE_ENV: &str = "ORCHESTRA_STORE_PERMISSIONS_CHILD";
const DB_ENV: &str = "ORCHESTRA_STORE_PERMISSIONS_DB";
const RESULT: &str = "CHILD-RESULT ";
/// The user `nobody`.
const NOBODY: u32 = 65_534;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The entry point of the child processes; does nothing unless a parent test set the mode.
#[test]
#[ignore = "entry point of the child processes spawned by the other tests of this module"]
fn child_entry() {
    let Ok(mode) = env::var(MODE_ENV) else { return };
    let db = PathBuf::from(env::var(DB_ENV).unwrap());
    let result = match mode.as_str() {
        "modes" => {
            let mut s = SqliteStore::open(&db).unwrap();
            s.create_session(&new_session("s", 1)).unwrap();
            // While the connection is open, the WAL and shared-memory files exist.
            let control = db.with_file_name("control.txt");
            fs::write(&control, "made by std with the default mode 0666\n").unwrap();
            [
                control,
                db.clone(),
                db.with_extension("db-wal"),
                db.with_extension("db-shm"),
            ]
            .iter()
            .map(|p| format!("{:o}", mode_of(p)))
            .collect::<Vec<_>>()
            .join(" ")
        }
        "open" => match SqliteStore::open(&db) {
            Ok(_) => "opened".to_owned(),
            Err(e @ StoreError::ReadOnly { .. }) => format!("read-only: {e}"),
            Err(e) => format!("other: {e:?}"),
        },
        other => panic!("unknown child mode {other}"),
    };
    println!("{RESULT}{result}");
}

fn child(mode: &str, db: &Path) -> Command {
    let mut c = Command::new(env::current_exe().unwrap());
    c.args([
        "--exact",
        "permissions::child_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE_ENV, mode)
    .env(DB_ENV, db)
    .stdin(Stdio::null());
    c
}

fn result_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed ({:?}, signal {:?}):\n{stdout}\n{}",
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once(RESULT).map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("no result line in child output:\n{stdout}"))
}

#[test]
fn database_files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::db_path(dir.path());
    let c = child("modes", &db);
    // `sh` sets the umask, then becomes the test binary.
    let exe = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(ToOwned::to_owned).collect();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"umask 022 && exec "$0" "$@""#)
        .arg(exe)
        .args(args)
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null());
    let modes = result_of(&mut sh);
    assert_eq!(
        modes, "644 600 600 600",
        "control file, database, WAL, shared memory"
    );
    assert_eq!(mode_of(&db), 0o600, "after the connection closed");
}

#[test]
fn an_existing_database_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    drop(SqliteStore::open(&db).unwrap());
    fs::set_permissions(&db, Permissions::from_mode(0o640)).unwrap();
    drop(SqliteStore::open(&db).unwrap());
    assert_eq!(mode_of(&db), 0o640, "a mode the user chose is theirs");
}

/// Whether this process writes files whatever their mode (root): then a read-only database is
/// opened by a child running as `nobody`.
fn privileged(dir: &Path) -> bool {
    let probe = dir.join("probe");
    fs::write(&probe, "").unwrap();
    fs::set_permissions(&probe, Permissions::from_mode(0o444)).unwrap();
    let writable = fs::OpenOptions::new().write(true).open(&probe).is_ok();
    fs::remove_file(&probe).unwrap();
    writable
}

/// Opens `db` in a child process as a user who cannot write what is read-only.
fn open_unprivileged(db: &Path, privileged: bool) -> String {
    let mut c = child("open", db);
    if privileged {
        c.uid(NOBODY).gid(NOBODY);
    }
    result_of(&mut c)
}

#[test]
fn a_read_only_database_is_refused_as_read_only() {
    let dir = tempfile::tempdir().unwrap();
    // `nobody` may look into the directory, not write it.
    fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
    let root = privileged(dir.path());

    let file = dir.path().join("read-only.db");
    drop(SqliteStore::open(&file).unwrap());
    fs::set_permissions(&file, Permissions::from_mode(0o444)).unwrap();
    let got = open_unprivileged(&file, root);
    assert!(
        got.starts_with(&format!(
            "read-only: database {} is read-only, so orchestra cannot open it for writing",
            file.display()
        )),
        "{got}"
    );
    assert!(got.contains("make it writable"), "{got}");

    // A new database in a directory this user cannot write.
    let sub = dir.path().join("read-only-dir");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, Permissions::from_mode(0o555)).unwrap();
    let fresh = sub.join("new.db");
    let got = open_unprivileged(&fresh, root);
    assert!(
        got.starts_with(&format!(
            "read-only: database {} is read-only, so orchestra cannot create the file",
            fresh.display()
        )),
        "{got}"
    );
    fs::set_permissions(&sub, Permissions::from_mode(0o755)).unwrap();
}
