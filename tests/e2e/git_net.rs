//! Git across machines over network transports, with the real binary and the real `git`:
//! `git://` (a `git daemon`), smart `http://` (`git http-backend` behind
//! `tests/git/http_backend.py`, with and without basic auth), `ssh://` and `host:path` (ssh
//! being `tests/git/fake_ssh`, which runs git's remote command here) — all on loopback. What
//! orchestra pushed is checked in the bare repository and with `git ls-remote` over the same
//! transport. Remotes that cannot be reached: `git_net_bad.rs`.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::common::{tests_dir, wait_until};
use super::git_remote::{Machine, Remote, wait_for_session_branch};

/// A server of the remote's directory; killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// Its loopback port.
    pub(crate) port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (now).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git daemon` serving the repositories beside the remote on `port`, pushes allowed. Run as
/// `git-daemon` itself (`git daemon` would be a parent that leaves it behind when killed).
pub(crate) fn git_daemon(remote: &Remote, port: u16) -> Server {
    let base = remote.url.parent().unwrap();
    let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
    let exec_path = String::from_utf8(exec_path.stdout).unwrap();
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args(["--export-all", "--enable=receive-pack", "--reuseaddr"])
        .arg(format!("--base-path={}", base.display()))
        .args(["--listen=127.0.0.1", &format!("--port={port}")])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts");
    wait_until("git daemon listening", || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    Server { child, port }
}

/// Smart HTTP for the repositories beside the remote (pushes enabled on it); with `auth`
/// (`user:password`) every request needs that basic auth.
pub(crate) fn http_backend(remote: &Remote, auth: Option<&str>) -> Server {
    remote.git(&["config", "http.receivepack", "true"]);
    let mut child = Command::new("python3")
        .arg(tests_dir().join("git/http_backend.py"))
        .arg(remote.url.parent().unwrap())
        .args(auth)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("http_backend.py printed {line:?}, not its port"));
    Server { child, port }
}

/// `git ls-remote --heads URL` (with the machine's ssh, when given): the branches under
/// `orchestra/` the remote has, as seen over the network.
pub(crate) fn listed(url: &str, env: &[(&str, &str)]) -> Vec<String> {
    let out = Command::new("git")
        .args(["ls-remote", "--heads", url])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').nth(1)?.strip_prefix("refs/heads/"))
        .filter(|b| b.starts_with("orchestra/"))
        .map(str::to_owned)
        .collect()
}

/// The fake ssh, and where it logs its calls (in the remote's directory).
fn fake_ssh(remote: &Remote) -> (PathBuf, PathBuf) {
    (
        tests_dir().join("git/fake_ssh"),
        remote.url.parent().unwrap().join("ssh.log"),
    )
}

/// Runs the pipeline on `m` to its end, and checks the session branch on the remote holds
/// every writer's commit, once each. Returns the branch.
fn run_to_the_end(m: &Machine, remote: &Remote, url: &str) -> String {
    let before = remote.session_branches();
    let run = m.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let branch = remote
        .session_branches()
        .into_iter()
        .find(|b| !before.contains(b))
        .expect("a new session branch on the remote");
    assert!(
        run.transcript().contains(&format!(
            "branch {branch} holds the work on repository `app`, pushed to {url}"
        )),
        "{}",
        run.transcript()
    );
    assert_eq!(remote.agents(&branch), ["writer-1", "writer-2", "writer-3"]);
    branch
}

#[test]
fn over_git_daemon_a_killed_session_is_resumed_elsewhere_once_the_remote_is_back() {
    let remote = Remote::new(None);
    let port = free_port();
    let daemon = git_daemon(&remote, port);
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let a = remote.machine_at("a", 600, &url);
    let b = remote.machine_at("b", 0, &url);

    let mut run = a.spawn(&["run", "pipelines/remote-edit.yaml"]);
    let branch = wait_for_session_branch(&remote);
    let id = branch.rsplit('/').next().unwrap().to_owned();
    wait_until("writer-1's commit on the remote", || {
        (remote.agents(&branch) == ["writer-1"]).then_some(())
    });
    wait_until("checkpoint 1 stored", || {
        let s = a.json(&["status", &id], 0);
        (s["checkpoints"].as_array().map_or(0, Vec::len) >= 2).then_some(())
    });
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(remote.agents(&branch), ["writer-1"], "killed too late");
    let stored = a.json(&["status", &id], 0)["checkpoints"].clone();

    // The remote is down: B's resume fails at once naming it, and nothing recorded is lost.
    drop(daemon);
    let down = b.orchestra(&["resume", &id]);
    assert_eq!(down.code, 5, "{}", down.transcript());
    assert!(
        down.stderr.contains(&format!("cannot clone {url}"))
            && down.stderr.contains("git ended with exit status: 128"),
        "{}",
        down.transcript()
    );
    assert_eq!(b.json(&["status", &id], 0)["checkpoints"], stored);
    assert_eq!(remote.agents(&branch), ["writer-1"]);

    // Back up: B clones over git://, goes on from writer-1's pushed commit.
    let _daemon = git_daemon(&remote, port);
    let resumed = b.orchestra(&["resume", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    assert!(
        resumed.transcript().contains(&format!(
            "branch {branch} holds the work on repository `app`, pushed to {url}"
        )),
        "{}",
        resumed.transcript()
    );
    assert_eq!(remote.agents(&branch), ["writer-1", "writer-2", "writer-3"]);
    remote.git(&["fsck", "--strict"]);

    // Cleanup deletes the session branch on the network remote.
    assert_eq!(listed(&url, &[]), std::slice::from_ref(&branch));
    let clean = b.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(listed(&url, &[]).is_empty(), "{}", clean.transcript());
}

#[test]
fn over_smart_http_a_session_pushes_each_commit_and_cleanup_deletes_its_branch() {
    let remote = Remote::new(None);
    let server = http_backend(&remote, None);
    let url = format!("http://127.0.0.1:{}/remote.git", server.port);
    let a = remote.machine_at("a", 0, &url);
    let branch = run_to_the_end(&a, &remote, &url);
    assert_eq!(listed(&url, &[]), [branch]);
    let clean = a.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(listed(&url, &[]).is_empty(), "{}", clean.transcript());
    assert!(remote.session_branches().is_empty());
}

#[test]
fn over_ssh_and_scp_like_urls_through_the_users_ssh() {
    let remote = Remote::new(None);
    let (ssh, log) = fake_ssh(&remote);
    let path = remote.url.display().to_string();

    // The user's GIT_SSH_COMMAND is used as it is.
    let url = format!("ssh://git@remote.example{path}");
    let a = remote
        .machine_at("a", 0, &url)
        .with_env("GIT_SSH_COMMAND", ssh.to_str().unwrap())
        .with_env("FAKE_SSH_LOG", log.to_str().unwrap());
    run_to_the_end(&a, &remote, &url);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains(&format!("git@remote.example git-receive-pack '{path}'"))
            && !calls.contains("BatchMode"),
        "{calls}"
    );

    // Without one, `ssh` (here the fake, first on PATH) runs in batch mode: it never asks.
    let bin = remote.url.parent().unwrap().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&ssh, bin.join("ssh")).unwrap();
    let url = format!("git@remote.example:{path}");
    let b = remote
        .machine_at("b", 0, &url)
        .with_env("PATH", &search_path_with(&bin))
        .with_env("FAKE_SSH_LOG", log.to_str().unwrap());
    std::fs::write(&log, "").unwrap();
    let branch = run_to_the_end(&b, &remote, &url);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls
            .lines()
            .all(|l| l.starts_with("-o BatchMode=yes ") && l.contains("git@remote.example")),
        "{calls}"
    );
    assert!(calls.contains("git-upload-pack"), "{calls}");

    let clean = b.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(!remote.session_branches().contains(&branch));
}

/// `PATH` with `dir` first.
pub(crate) fn search_path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
