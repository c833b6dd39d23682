//! Usage errors and help: exit codes from one place.

use super::common::{orchestra, workspace_root};

#[test]
fn unknown_flags_and_commands_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let run = orchestra(
        &workspace_root(),
        home.path(),
        &["compile", "--fromat", "json", "x.yaml"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unexpected argument '--fromat'"),
        "{}",
        run.stderr
    );
    let run = orchestra(&workspace_root(), home.path(), &["compil", "x.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("similar subcommand 'compile'") || run.stderr.contains("'compile'"),
        "{}",
        run.stderr
    );
    let run = orchestra(
        &workspace_root(),
        home.path(),
        &["compile", "--format", "svg", "x.yaml"],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn help_lists_the_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let run = orchestra(&workspace_root(), home.path(), &["--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("compile"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Exit codes:\n    0  success"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  130  interrupted"), "{}", run.stdout);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::binary::orchestra_bin())
        .args(["compile", "pipelines/pr-review.yaml", "--format", "json"])
        .current_dir(workspace_root())
        .env_clear()
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn commands_printed_after_a_run_elsewhere_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("proj");
    super::common::copy_dir(&super::common::tests_dir().join("runtime"), &project);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let orchestra = |args: &[&str]| {
        let out = std::process::Command::new(crate::binary::orchestra_bin())
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The session database is the project's (proj/.orchestra/), not one under the current
    // directory: the command to go on must say so.
    let (code, stdout) = orchestra(&["run", "proj/limits/steps.yaml"]);
    assert_eq!(code, 3, "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("orchestra resume"))
        .unwrap();
    let cmd = line.split('`').nth(1).unwrap();
    assert!(cmd.contains(" --db proj/.orchestra/orchestra.db "), "{cmd}");
    let args: Vec<&str> = cmd
        .split_whitespace()
        .skip(1)
        .map(|a| if a == "N" { "100" } else { a })
        .collect();
    let (code, stdout) = orchestra(&args);
    assert_eq!(code, 0, "{cmd}: {stdout}");
    assert!(stdout.starts_with("completed: "), "{stdout}");
}

#[test]
fn an_invalid_project_file_is_reported_where_the_database_is_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orchestra.yaml"), "databse: x.db\n").unwrap();
    let run = orchestra(dir.path(), dir.path(), &["status"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("unknown key `databse`")
            && run.stderr.contains("orchestra.yaml:1:1")
            && run.stderr.contains("did you mean `database`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_that_is_not_an_orchestra_database_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = workspace_root().join("tests/fixtures/release-0.1/orchestra.db");
    let real = std::fs::read(fixture).unwrap();
    // Random bytes, a database cut short, and another program's text file.
    let mut noise = Vec::with_capacity(8192);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..8192 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x.to_le_bytes()[0]);
    }
    let cases: [(&str, &[u8]); 3] = [
        ("random.db", &noise),
        ("truncated.db", &real[..real.len() / 3]),
        ("notes.db", b"these are my notes, not a database\n"),
    ];
    for (name, bytes) in cases {
        let db = dir.path().join(name);
        std::fs::write(&db, bytes).unwrap();
        for args in [
            vec!["status", "--db", db.to_str().unwrap()],
            vec!["resume", "x", "--db", db.to_str().unwrap()],
        ] {
            let run = orchestra(dir.path(), dir.path(), &args);
            assert_eq!(run.code, 2, "{name} {args:?}: {}", run.transcript());
            assert!(
                run.stderr.contains("is not a readable orchestra database"),
                "{name}: {}",
                run.stderr
            );
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
    }
}

#[test]
fn the_database_is_a_path_or_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| orchestra(dir.path(), dir.path(), args);

    // A PostgreSQL URL is opened (nothing listens at this loopback port); its password is
    // never shown.
    let port = closed_port();
    let pg = run(&[
        "status",
        "--db",
        &format!("postgres://me:secret@127.0.0.1:{port}/orchestra"),
    ]);
    assert_eq!(pg.code, 2, "{}", pg.transcript());
    assert_eq!(
        pg.stderr,
        format!(
            "error: cannot connect to database postgres://me:***@127.0.0.1:{port}/orchestra: \
             connection refused by 127.0.0.1:{port}; is the PostgreSQL server running there?\n"
        )
    );

    let other = run(&["cleanup", "--db", "mysql://me:secret@db.example/o"]);
    assert_eq!(other.code, 2, "{}", other.transcript());
    assert!(
        other
            .stderr
            .contains("unsupported database `mysql://me:***@db.example/o`"),
        "{}",
        other.stderr
    );

    // `sqlite:` names a file; there is none yet.
    let sqlite = run(&["status", "--db", "sqlite:sessions.db"]);
    assert_eq!(sqlite.code, 0, "{}", sqlite.transcript());
    assert_eq!(
        sqlite.stdout,
        "no sessions yet (no database at sessions.db)\n"
    );
    let missing = run(&["resume", "abc", "--db", "sqlite://sessions.db"]);
    assert_eq!(missing.code, 2, "{}", missing.transcript());
    assert!(
        missing
            .stderr
            .starts_with("error: there is no session database at sessions.db;"),
        "{}",
        missing.stderr
    );

    // The project's `database:` takes the same values.
    std::fs::write(
        dir.path().join("orchestra.yaml"),
        format!("database: postgresql://127.0.0.1:{port}/orchestra\n"),
    )
    .unwrap();
    let pg = run(&["status"]);
    assert_eq!(pg.code, 2, "{}", pg.transcript());
    assert!(
        pg.stderr.starts_with(&format!(
            "error: cannot connect to database postgresql://127.0.0.1:{port}/orchestra: \
             connection refused"
        )),
        "{}",
        pg.stderr
    );
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}
