//! Network remotes that fail: a closed port, an ssh that cannot connect, a server that never
//! answers (the timeout), a bad `ORCHESTRA_GIT_TIMEOUT`, and credentials in an `http://` URL,
//! which never show in anything orchestra prints — even when a push is refused.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::common::Run;
use super::git_net::{free_port, http_backend};
use super::git_remote::{Machine, Remote};

/// Far below [`super::common::PATIENCE`]: a failure to reach a remote is quick.
const QUICK: Duration = Duration::from_secs(30);

/// Runs the pipeline on `m`, checks it fails with exit code 5 within [`QUICK`] naming
/// `url` (`cannot clone URL`) and saying `why`, and returns the run.
fn fails_fast(m: &Machine, url: &str, why: &str) -> Run {
    let started = Instant::now();
    let run = m.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!("cannot clone {url}")) && run.stderr.contains(why),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    assert!(
        !m.clone_dir().join(".git").exists(),
        "no half clone is kept"
    );
    run
}

#[test]
fn remotes_that_cannot_be_reached_fail_within_seconds_naming_them() {
    let remote = Remote::new(None);

    let url = format!("git://127.0.0.1:{}/x.git", free_port());
    let a = remote.machine_at("a", 0, &url);
    fails_fast(&a, &url, "git ended with exit status: 128");

    let url = format!("ssh://git@unreachable.example{}", remote.url.display());
    let ssh = super::common::tests_dir().join("git/fake_ssh");
    let b = remote
        .machine_at("b", 0, &url)
        .with_env("GIT_SSH_COMMAND", ssh.to_str().unwrap())
        .with_env("FAKE_SSH_FAIL", "unreachable.example");
    fails_fast(
        &b,
        &url,
        "ssh: connect to host unreachable.example port 22: Connection refused",
    );

    // A server that takes the connection and never answers: git is stopped at the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "git://127.0.0.1:{}/x.git",
        silent.local_addr().unwrap().port()
    );
    let c = remote
        .machine_at("c", 0, &url)
        .with_env("ORCHESTRA_GIT_TIMEOUT", "2");
    fails_fast(
        &c,
        &url,
        "git did not finish within 2s and was stopped (the timeout is ORCHESTRA_GIT_TIMEOUT, in seconds)",
    );
    drop(silent);

    let d = remote
        .machine_at("d", 0, remote.url.to_str().unwrap())
        .with_env("ORCHESTRA_GIT_TIMEOUT", "soon");
    let run = d.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "ORCHESTRA_GIT_TIMEOUT is `soon`, not a whole number of seconds above 0 (such as 120)"
        ),
        "{}",
        run.transcript()
    );
    assert!(remote.session_branches().is_empty());
}

#[test]
fn credentials_in_an_http_url_never_show_even_when_a_push_is_refused() {
    const SECRET: &str = "s3cr3t-t0ken";
    let remote = Remote::new(None);
    let server = http_backend(&remote, Some(&format!("bob:{SECRET}")));
    // The remote takes writer-1's commit and refuses writer-2's.
    let hook = remote.url.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if git cat-file -e \"$new:out/writer-2.txt\" 2>/dev/null; then\n    echo \"no writer-2 here\" >&2; exit 1\n  fi\ndone\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let host = format!("127.0.0.1:{}/remote.git", server.port);
    let url = format!("http://bob:{SECRET}@{host}");
    let shown = format!("http://bob:***@{host}");
    let a = remote.machine_at("a", 0, &url);
    let events = a.root.join("events.jsonl");
    let run = a.orchestra(&[
        "run",
        "pipelines/remote-edit.yaml",
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let branch = remote.session_branches().pop().expect("the session branch");
    assert_eq!(remote.agents(&branch), ["writer-1"], "the credentials work");
    assert!(
        run.stderr
            .contains(&format!("{shown} refused to update refs/heads/{branch}")),
        "{}",
        run.transcript()
    );
    let id = branch.rsplit('/').next().unwrap();
    let mut seen = vec![run.transcript(), std::fs::read_to_string(&events).unwrap()];
    for args in [
        &["show", id][..],
        &["show", id, "--json"],
        &["status", id, "--json"],
        &["status", "--json"],
        &["report", id],
    ] {
        seen.push(a.orchestra(args).transcript());
    }
    let status = a.json(&["status", id], 0);
    assert_eq!(status["meta"]["git"]["app"]["url"], shown.as_str());
    for text in &seen {
        assert!(!text.contains(SECRET), "the password shows in:\n{text}");
    }

    // A wrong password: git fails at once (no prompt), the password is not shown either.
    let b = remote.machine_at("b", 0, &format!("http://bob:wrong-pw@{host}"));
    let run = fails_fast(
        &b,
        &format!("http://bob:***@{host}"),
        "Authentication failed",
    );
    assert!(
        !run.transcript().contains("wrong-pw"),
        "{}",
        run.transcript()
    );
}
