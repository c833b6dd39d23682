//! Shell tools run as real processes: injection attempts stay literal argv entries, timeouts kill
//! the process group, output is capped, failures are tool errors.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use orchestra_spec::{ShellToolSpec, SourceFile, parse_yaml};
use orchestra_tools::Registry;
use serde_json::json;

use crate::common::{dir_with, fails, ok, write};

fn spec(yaml: &str) -> ShellToolSpec {
    parse_yaml(&SourceFile::new("pipeline.yaml", yaml), "tool").unwrap()
}

fn with_tool(yaml: &str, cwd: &Path) -> Registry {
    let mut r = Registry::new();
    r.add_shell_tool(&spec(yaml), cwd).unwrap();
    r
}

/// An executable script at `root/path`.
fn script(root: &Path, path: &str, body: &str) {
    write(root, path, body);
    let p = root.join(path);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const ARGV_SCRIPT: &str = "#!/bin/sh\necho \"argc=$#\"\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho \"MODE=[${MODE-unset}]\"\n";

/// Whether process `pid` is gone (or a zombie).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Whether process `pid` is gone within a minute (a bound on a hang, not a timing check).
fn wait_dead(pid: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test]
async fn injection_attempts_reach_the_program_literally() {
    let dir = dir_with(&[("canary.txt", "alive"), ("home/canary.txt", "alive")]);
    let root = dir.path();
    script(root, "bin/argv.sh", ARGV_SCRIPT);
    let home = root.join("home").display().to_string();
    let r = with_tool(
        &format!(
            "{{name: echo-args, repo: app, command: [./bin/argv.sh, fixed, '{{{{text}}}}', '{{{{more}}}}'],
              env: {{HOME: '{home}'}},
              args: {{text: {{}}, more: {{type: array, default: []}}, mode: {{env: MODE, required: false}}}}}}"
        ),
        root,
    );
    let attacks = [
        "; rm -rf ~",
        "; rm -rf canary.txt",
        "$(touch pwned1)",
        "`touch pwned2`",
        "x\ntouch pwned3",
        "&& touch pwned4 || touch pwned4",
        "| touch pwned5 > pwned6",
        "*",
        "'\"\\",
    ];
    let out = ok(
        &r,
        "app:echo-args",
        json!({"text": "a b  c", "more": attacks, "mode": "$(touch pwned7); `touch pwned8`"}),
    )
    .await;
    let mut expected = format!(
        "exit status: 0\n--- stdout ---\nargc={}\n[fixed]\n[a b  c]\n",
        attacks.len() + 2
    );
    for a in attacks {
        expected.push_str(&format!("[{a}]\n"));
    }
    expected.push_str("MODE=[$(touch pwned7); `touch pwned8`]\n");
    assert_eq!(out, expected);
    for i in 1..=8 {
        assert!(
            !root.join(format!("pwned{i}")).exists(),
            "pwned{i} was created"
        );
    }
    assert!(root.join("canary.txt").exists() && root.join("home/canary.txt").exists());
}

#[tokio::test]
async fn option_injection_is_refused_without_a_double_dash() {
    let dir = dir_with(&[]);
    script(dir.path(), "argv.sh", ARGV_SCRIPT);
    let r = with_tool(
        "{name: t, command: [./argv.sh, '{{ref}}'], args: {ref: {}}}",
        dir.path(),
    );
    let e = fails(&r, "t", json!({"ref": "--output=/tmp/x"})).await;
    assert!(e.contains("starts with `-`"), "{e}");
    let r = with_tool(
        "{name: t, command: [./argv.sh, --, '{{ref}}'], args: {ref: {}}}",
        dir.path(),
    );
    let out = ok(&r, "t", json!({"ref": "--output=/tmp/x"})).await;
    assert!(out.contains("argc=2\n[--]\n[--output=/tmp/x]\n"), "{out}");
}

#[tokio::test]
async fn timeouts_kill_the_process_quickly() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: slow, command: [sleep, '30'], timeout: 300ms}",
        dir.path(),
    );
    let started = Instant::now();
    let e = fails(&r, "slow", json!({})).await;
    // Not waited for: `sleep 30` would still be running.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        e,
        "timed out after 300ms; the process and its process group were killed\n(no output)"
    );
}

#[tokio::test]
async fn timeouts_kill_the_whole_process_group() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: spawner, command: [sh, -c, 'sleep 30 & echo $! > bg.pid; echo started; wait'], timeout: 500ms}",
        dir.path(),
    );
    let started = Instant::now();
    let e = fails(&r, "spawner", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the background sleep"
    );
    assert!(
        e.contains("timed out after 500ms") && e.contains("started"),
        "{e}"
    );
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
    assert!(wait_dead(pid.trim()), "background sleep {pid} survived");
}

#[tokio::test]
async fn background_children_holding_output_open_are_killed_after_exit() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: daemon, command: [sh, -c, 'sleep 30 & echo $! > bg.pid; echo started']}",
        dir.path(),
    );
    let started = Instant::now();
    let out = ok(&r, "daemon", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the background sleep"
    );
    assert_eq!(
        out,
        "exit status: 0\n--- stdout ---\nstarted\n\n[background processes kept the output open after exit and were killed]"
    );
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
    assert!(wait_dead(pid.trim()), "background sleep {pid} survived");
}

#[tokio::test]
async fn output_is_capped_with_a_note() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: loud, command: [sh, -c, 'yes 0123456789 | head -n 20000; echo tail-end'], max_output: 1000}",
        dir.path(),
    );
    let out = ok(&r, "loud", json!({})).await;
    assert!(out.len() < 1300, "{} bytes", out.len());
    assert!(
        out.starts_with("exit status: 0\n--- stdout ---\n0123456789\n"),
        "{out}"
    );
    assert!(out.contains("bytes cut ...]\n"), "{out}");
    assert!(out.contains("tail-end\n"), "{out}");
    assert!(
        out.ends_with(
            "[output truncated: 220009 bytes in all (stdout 220009, stderr 0); 1000 shown]"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn failures_report_status_and_both_streams() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: bad, command: [sh, -c, 'echo out; echo oops >&2; exit 3']}",
        dir.path(),
    );
    assert_eq!(
        fails(&r, "bad", json!({})).await,
        "exit status: 3\n--- stdout ---\nout\n--- stderr ---\noops\n"
    );
    let r = with_tool(
        "{name: nope, command: [definitely-not-a-program-xyz]}",
        dir.path(),
    );
    let e = fails(&r, "nope", json!({})).await;
    assert!(
        e.starts_with("cannot start `definitely-not-a-program-xyz`: "),
        "{e}"
    );
}

#[tokio::test]
async fn stdin_is_closed_and_programs_resolve_in_the_working_directory() {
    let dir = dir_with(&[]);
    script(
        dir.path(),
        "scripts/read-stdin.sh",
        "#!/bin/sh\ncat\necho done in $(basename \"$PWD\")\n",
    );
    let r = with_tool(
        "{name: t, repo: app, command: [./scripts/read-stdin.sh], timeout: 5s}",
        dir.path(),
    );
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        ok(&r, "app:t", json!({})).await,
        format!("exit status: 0\n--- stdout ---\ndone in {name}\n")
    );
}

#[tokio::test]
async fn hidden_variables_do_not_reach_tools() {
    let dir = dir_with(&[]);
    let yaml = "{name: show-home, command: [sh, -c, 'echo \"${HOME-unset}\"']}";
    let plain = with_tool(yaml, dir.path());
    let home = std::env::var("HOME").expect("tests run with HOME set");
    assert_eq!(
        ok(&plain, "show-home", json!({})).await,
        format!("exit status: 0\n--- stdout ---\n{home}\n")
    );
    let mut hiding = Registry::new().hide_env(["HOME"]);
    hiding.add_shell_tool(&spec(yaml), dir.path()).unwrap();
    assert_eq!(
        ok(&hiding, "show-home", json!({})).await,
        "exit status: 0\n--- stdout ---\nunset\n"
    );
}

#[tokio::test]
async fn argument_errors_are_tool_errors() {
    let dir = dir_with(&[]);
    let r = with_tool(
        "{name: head, command: [head, -n, '{{count}}', '{{file}}'], args: {count: {type: integer, default: 2}, file: {}}}",
        dir.path(),
    );
    write(dir.path(), "f.txt", "1\n2\n3\n");
    assert_eq!(
        ok(&r, "head", json!({"file": "f.txt"})).await,
        "exit status: 0\n--- stdout ---\n1\n2\n"
    );
    assert_eq!(
        fails(&r, "head", json!({"count": "x", "file": "f.txt"})).await,
        "argument `count` must be an integer, got a string `\"x\"`"
    );
    assert_eq!(
        fails(&r, "head", json!({})).await,
        "missing required argument `file`"
    );
}

#[tokio::test]
async fn an_enormous_timeout_or_output_cap_is_no_panic() {
    let dir = dir_with(&[]);
    // The largest values YAML can give: adding to them overflowed.
    let r = with_tool(
        "{ name: hi, command: [echo, hi], timeout: 18446744073709551615, max_output: 18446744073709551615 }",
        dir.path(),
    );
    let out = ok(&r, "hi", json!({})).await;
    assert!(out.contains("hi"), "{out}");
}
