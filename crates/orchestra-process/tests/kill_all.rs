//! `kill_all` ends the process groups of every run in progress (what a process about to exit
//! at once calls), checked with real programs by pid. A binary of its own: it would end the
//! runs of other tests.

#![expect(clippy::unwrap_used, reason = "tests fail loudly by unwrapping")]

use std::time::Duration;

use orchestra_process::Command;

#[tokio::test]
async fn kill_all_ends_every_run_in_progress() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let tx = tx.clone();
        runs.push(tokio::spawn(async move {
            let mut on_stdout = |bytes: &[u8]| {
                for pid in String::from_utf8_lossy(bytes).split_whitespace() {
                    let _ = tx.send(pid.parse().unwrap());
                }
            };
            Command::new("sh")
                .args(["-c", "sleep 100 & echo $!; wait"])
                .run_streaming(&mut on_stdout)
                .await
                .unwrap()
        }));
    }
    let mut children = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    orchestra_process::kill_all();
    for run in runs {
        let out = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run did not end")
            .unwrap();
        assert_eq!(out.ending.to_string(), "killed by signal 9");
    }
    for pid in children.drain(..) {
        exited(pid).await;
    }
}

/// Waits until process `pid` has exited (its pidfd becomes readable; a pid that no longer
/// exists has exited too), at most 10 s.
async fn exited(pid: i32) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let fd = match pidfd_open(Pid::from_raw(pid).unwrap(), PidfdFlags::empty()) {
        Err(rustix::io::Errno::SRCH) => return,
        Err(e) => panic!("pidfd_open({pid}): {e}"),
        Ok(fd) => fd,
    };
    let ready = tokio::task::spawn_blocking(move || {
        let timeout = Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        poll(&mut [PollFd::new(&fd, PollFlags::IN)], Some(&timeout)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ready, 1, "process {pid} is still running");
}
