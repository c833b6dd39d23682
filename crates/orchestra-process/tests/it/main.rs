//! Integration tests of orchestra-process with real programs: output and exit codes, stdin,
//! caps, and process groups — killed whole on timeout and on cancellation (checked by pid),
//! never hanging on a grandchild that holds the output open.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

use std::time::{Duration, Instant};

use orchestra_process::{Command, Ending, ProcessError};

/// `sh -c script`.
fn sh(script: &str) -> Command {
    Command::new("sh").arg("-c").arg(script)
}

/// The numbers a script printed, one per line.
fn pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Waits until process `pid` has exited (its pidfd becomes readable; a pid that no longer
/// exists at all has exited too); fails if it is still running after `patience`.
async fn exited(pid: i32, patience: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let p = Pid::from_raw(pid).unwrap();
    let fd = match pidfd_open(p, PidfdFlags::empty()) {
        Err(rustix::io::Errno::SRCH) => return,
        Err(e) => panic!("pidfd_open({pid}): {e}"),
        Ok(fd) => fd,
    };
    let ready = tokio::task::spawn_blocking(move || {
        let timeout = Timespec {
            tv_sec: i64::try_from(patience.as_secs()).unwrap(),
            tv_nsec: 0,
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        poll(&mut fds, Some(&timeout)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        ready, 1,
        "process {pid} is still running after {patience:?}"
    );
}

fn alive(pid: i32) -> bool {
    let p = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::test_kill_process(p).is_ok()
}

#[tokio::test]
async fn output_and_exit_status_are_reported() {
    let out = sh("echo out; echo err >&2; exit 3").run().await.unwrap();
    assert_eq!(out.code(), Some(3));
    assert!(!out.success() && !out.timed_out() && !out.lingered);
    assert_eq!(out.stdout.text(), "out\n");
    assert_eq!(out.stderr.text(), "err\n");
    assert_eq!(out.ending.to_string(), "exit status: 3");
}

#[tokio::test]
async fn input_goes_to_stdin_and_env_and_dir_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = sh("cat; echo \"[$GREETING]\"; pwd; echo \"[$HOME]\"")
        .stdin("hello\n")
        .env("GREETING", "hi there")
        .env_remove("HOME")
        .current_dir(dir.path())
        .run()
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    let real = dir.path().canonicalize().unwrap();
    assert_eq!(
        out.stdout.text(),
        format!("hello\n[hi there]\n{}\n[]\n", real.display())
    );
}

#[tokio::test]
async fn input_a_program_does_not_read_is_no_error() {
    let big = vec![b'x'; 1024 * 1024];
    let out = sh("echo ignored").stdin(big).run().await.unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout.text(), "ignored\n");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let started = Instant::now();
    let out = sh("echo $$; sleep 100 & echo $!; sleep 100 & echo $!; wait")
        .timeout(Duration::from_millis(300))
        .run()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(out.timed_out(), "{out:?}");
    assert_eq!(out.ending, Ending::TimedOut(Duration::from_millis(300)));
    let pids = pids(&out.stdout.text());
    assert_eq!(pids.len(), 3, "the shell and its two children: {pids:?}");
    for pid in pids {
        exited(pid, Duration::from_secs(10)).await;
    }
}

#[tokio::test]
async fn a_grandchild_holding_the_output_does_not_hang_the_run() {
    let started = Instant::now();
    // The background `sleep` keeps stdout and stderr open after the shell exits.
    let out = sh("echo done; sleep 100 & echo $!")
        .timeout(Duration::from_secs(60))
        .run()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(out.success() && out.lingered, "{out:?}");
    let text = out.stdout.text();
    assert!(text.starts_with("done\n"), "{text}");
    let pids = pids(&text);
    assert_eq!(pids.len(), 1, "{text}");
    exited(pids[0], Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_detached_child_that_closed_its_output_is_left_alone() {
    let out = sh("sleep 100 </dev/null >/dev/null 2>&1 & echo $!")
        .run()
        .await
        .unwrap();
    assert!(out.success() && !out.lingered, "{out:?}");
    let pids = pids(&out.stdout.text());
    assert_eq!(pids.len(), 1);
    assert!(alive(pids[0]), "the detached child was killed");
    let p = rustix::process::Pid::from_raw(pids[0]).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::KILL).unwrap();
    exited(pids[0], Duration::from_secs(10)).await;
}

#[tokio::test]
async fn dropping_a_run_kills_its_group() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    let mut seen = Vec::new();
    let mut on_stdout = |bytes: &[u8]| {
        seen.extend_from_slice(bytes);
        for pid in pids(&String::from_utf8_lossy(&seen)) {
            let _ = tx.send(pid);
        }
        seen.clear();
    };
    let cmd = sh("sleep 100 & echo $!; wait");
    let run = cmd.run_streaming(&mut on_stdout);
    let pid = tokio::select! {
        out = run => panic!("the run ended: {out:?}"),
        pid = rx.recv() => pid.unwrap(),
    };
    // The run's future was dropped at the end of the `select!`.
    exited(pid, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn output_is_capped_and_streamed_whole() {
    let mut streamed = 0usize;
    let mut count = |bytes: &[u8]| streamed += bytes.len();
    let out = sh("i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; echo e >&2")
        .max_stdout(1000)
        .run_streaming(&mut count)
        .await
        .unwrap();
    assert!(out.success());
    let total = out.stdout.total();
    assert_eq!(streamed as u64, total);
    assert!(total > 100_000, "{total}");
    assert!(!out.stdout.is_complete() && out.stderr.is_complete());
    let text = out.stdout.text();
    assert!(
        text.starts_with("line-0\n") && text.ends_with("line-19999\n"),
        "{text}"
    );
    assert!(text.contains("bytes cut ...]"), "{text}");
    assert!(text.len() < 1100, "{}", text.len());
    assert_eq!(out.stderr.text(), "e\n");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_error() {
    let e = Command::new("/no/such/program").run().await.unwrap_err();
    assert!(matches!(e, ProcessError::Spawn { .. }), "{e:?}");
    assert_eq!(e.to_string(), "cannot start `/no/such/program`");
    let e = Command::new("true")
        .current_dir("/no/such/dir")
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot run `true`: its working directory `/no/such/dir` does not exist"
    );
}

#[tokio::test]
async fn a_relative_program_path_is_relative_to_the_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let script = dir.path().join("bin/hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho hello from $0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("./bin/hello.sh")
        .current_dir(dir.path())
        .run()
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.text().starts_with("hello from "));
}

#[test]
fn runs_outside_a_runtime() {
    let out = sh("read x; echo got $x")
        .stdin("it\n")
        .run_blocking()
        .unwrap();
    assert_eq!(out.stdout.text(), "got it\n");
    let out = sh("sleep 100 & wait")
        .timeout(Duration::from_millis(100))
        .run_blocking()
        .unwrap();
    assert!(out.timed_out());
}

/// On a blocking thread of a single-threaded runtime (where the executor routes executable
/// conditions), the runtime itself drives the run: it ends, and its timeout works.
#[tokio::test]
async fn runs_on_a_blocking_thread_of_the_runtime() {
    let out = tokio::task::spawn_blocking(|| {
        let done = sh("cat").stdin("via the runtime").run_blocking().unwrap();
        let slow = sh("sleep 100 & wait")
            .timeout(Duration::from_millis(100))
            .run_blocking()
            .unwrap();
        (done, slow)
    })
    .await
    .unwrap();
    assert_eq!(out.0.stdout.text(), "via the runtime");
    assert!(out.1.timed_out());
}

/// Run by [`a_run_dies_with_the_process_that_started_it`] in a process of its own: starts a
/// program in its own group through `Command`, prints its pid, and waits to be killed.
#[tokio::test]
#[ignore = "a helper process of another test, not a test"]
async fn parent_entry() {
    if std::env::var_os("ORCHESTRA_PROCESS_PARENT").is_none() {
        return;
    }
    let mut print = |bytes: &[u8]| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).unwrap();
        out.flush().unwrap();
    };
    let _ = sh("echo $$; sleep 100").run_streaming(&mut print).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_run_dies_with_the_process_that_started_it() {
    use std::io::BufRead as _;
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "parent_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ORCHESTRA_PROCESS_PARENT", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = parent.stdout.take().unwrap();
    let pid = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The harness prints `test parent_entry ... ` before it, on the same line.
            .find_map(|l| l.split_whitespace().last()?.parse::<i32>().ok())
    })
    .await
    .unwrap()
    .expect("the helper process printed its child's pid");
    assert!(alive(pid));
    // `kill -9` of the parent alone: the child is in a group of its own, out of reach of a
    // kill of the parent's group, and must die all the same.
    parent.kill().unwrap();
    parent.wait().unwrap();
    exited(pid, Duration::from_secs(10)).await;
}
