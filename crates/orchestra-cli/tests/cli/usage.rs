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
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestra"))
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
