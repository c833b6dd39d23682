//! Executable conditions: `conditions/NAME` (or `NAME.*`) gets `{state, inputs, loops}` as JSON
//! on stdin and prints the chosen target name(s) on stdout (separated by whitespace or commas).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Most bytes read from a condition's stdout or stderr.
const MAX_OUTPUT: usize = 64 * 1024;

/// Runs the executable at `path` with `input` on stdin; returns the target names it printed.
pub fn run_condition(path: &Path, input: &Value, timeout: Duration) -> Result<Vec<String>, String> {
    let shown = path.display();
    // A script just written may be briefly "busy" (another thread's fork still holds the
    // writer's descriptor until its exec): try again a few times.
    let mut tries = 0;
    let mut child = loop {
        match Command::new(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("cannot run `{shown}`: {e}")),
        }
    };
    let payload = serde_json::to_vec(input).map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&payload);
        }
    });
    let stdout = Drain::start(child.stdout.take());
    let stderr = Drain::start(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{shown}` did not finish within {}s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for `{shown}`: {e}")),
        }
    };
    // What the condition printed is in the pipes when it exits; a process it left behind may
    // hold them open, so wait only briefly for their end (the threads end with that process).
    drop(writer);
    let out = stdout.take(OUTPUT_GRACE);
    let err = stderr.take(OUTPUT_GRACE);
    if !status.success() {
        let tail: String = err
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!("`{shown}` exited with {status}: {tail}"));
    }
    let names: Vec<String> = out
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(format!("`{shown}` printed no target"));
    }
    Ok(names)
}

/// How long to wait for the end of a condition's output once it exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// A pipe read to its end (at most [`MAX_OUTPUT`] bytes) on a thread of its own; what was read
/// can be taken without waiting for the end.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Drain {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&buf);
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            let mut b = shared.lock().unwrap_or_else(PoisonError::into_inner);
                            let room = MAX_OUTPUT.saturating_sub(b.len());
                            b.extend_from_slice(&chunk[..n.min(room)]);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            let _ = tx.send(());
        });
        Drain { buf, done }
    }

    /// What was read, after waiting at most `grace` for the end of the pipe.
    fn take(self, grace: Duration) -> String {
        let _ = self.done.recv_timeout(grace);
        let b = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&b).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("cond.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_process_left_behind_holding_the_output_does_not_hang_it() {
        let d = tempfile::tempdir().unwrap();
        // The background `sleep` keeps stdout and stderr open after the script exits.
        let p = script(
            d.path(),
            "cat >/dev/null
echo done
sleep 30 &",
        );
        let started = Instant::now();
        let got = run_condition(&p, &serde_json::json!({}), Duration::from_secs(20));
        assert_eq!(got.unwrap(), ["done"]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn reads_state_on_stdin_and_prints_targets() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "grep -q revise && echo 'a, b' || echo c");
        let t = Duration::from_secs(5);
        assert_eq!(
            run_condition(&p, &serde_json::json!({"state": {"verdict": "revise"}}), t).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            run_condition(&p, &serde_json::json!({"state": {}}), t).unwrap(),
            ["c"]
        );
    }

    #[test]
    fn failures_and_hangs_are_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = script(d.path(), "echo oops >&2; exit 3");
        let e = run_condition(&p, &Value::Null, Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("oops"), "{e}");
        let p = script(d.path(), "sleep 30");
        let t0 = Instant::now();
        let e = run_condition(&p, &Value::Null, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
