//! Executable conditions: `conditions/NAME` (or `NAME.*`) gets `{state, inputs, loops}` as JSON
//! on stdin and prints the chosen target name(s) on stdout (separated by whitespace or commas).

use std::path::Path;
use std::time::Duration;

use orchestra_process::Command;
use serde_json::Value;

/// Most bytes read from a condition's stdout or stderr.
const MAX_OUTPUT: usize = 64 * 1024;
/// How long a process the condition left behind may hold its output open after it exited
/// (it is then killed and what was printed is used).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Runs the executable at `path` with `input` on stdin; returns the target names it printed.
/// Blocks the thread (the executor routes executables on a blocking thread).
pub fn run_condition(path: &Path, input: &Value, timeout: Duration) -> Result<Vec<String>, String> {
    let shown = path.display();
    let payload = serde_json::to_vec(input).map_err(|e| e.to_string())?;
    let out = Command::new(path)
        .stdin(payload)
        .timeout(timeout)
        .max_output(MAX_OUTPUT)
        .linger(OUTPUT_GRACE)
        .run_blocking()
        .map_err(|e| {
            let causes = std::error::Error::source(&e).map(orchestra_spec::error_chain);
            match causes {
                Some(c) => format!("cannot run `{shown}`: {c}"),
                None => format!("cannot run `{shown}`"),
            }
        })?;
    if out.timed_out() {
        return Err(format!(
            "`{shown}` did not finish within {}",
            orchestra_spec::fmt_duration(timeout)
        ));
    }
    if !out.success() {
        let err = out.stderr.text();
        let tail: String = err
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!("`{shown}` exited with {}: {tail}", out.ending));
    }
    let names: Vec<String> = out
        .stdout
        .text()
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(format!("`{shown}` printed no target"));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

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
