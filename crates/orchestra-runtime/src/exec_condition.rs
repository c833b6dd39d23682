//! Executable conditions: `conditions/NAME` (or `NAME.*`) gets `{state, inputs, loops}` as JSON
//! on stdin and prints the chosen target name(s) on stdout (separated by whitespace or commas).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
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
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || read_capped(stdout.as_mut()));
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || read_capped(stderr.as_mut()));
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
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
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

fn read_capped(r: Option<&mut impl Read>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
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
