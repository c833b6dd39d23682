//! Running a shell tool's process through `orchestra-process`: no shell, stdin closed, stdout
//! and stderr captured within a cap, and on timeout the process and its whole process group
//! killed; the report the model reads.

use std::path::Path;
use std::time::Duration;

use orchestra_process::{Capture, Command, Ending};

use crate::error::ToolFailure;
use crate::output::split_budget;

/// One process to run.
pub(super) struct Run<'a> {
    pub(super) program: &'a str,
    pub(super) argv: &'a [String],
    pub(super) env: &'a [(String, String)],
    pub(super) hidden_env: &'a [String],
    pub(super) cwd: &'a Path,
    pub(super) timeout: Duration,
    pub(super) max_output: usize,
}

impl Run<'_> {
    /// Runs the process; `Ok` with the report when it exits with status 0, else `Err` with it.
    pub(super) async fn execute(self) -> Result<String, ToolFailure> {
        let mut cmd = Command::new(self.program)
            .args(self.argv)
            .current_dir(self.cwd)
            .timeout(self.timeout)
            .max_output(self.max_output);
        for name in self.hidden_env {
            cmd = cmd.env_remove(name);
        }
        for (k, v) in self.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd
            .run()
            .await
            .map_err(|e| ToolFailure::new(crate::error_chain(&e)))?;
        let status_line = match out.ending {
            Ending::Exited(_) => out.ending.to_string(),
            Ending::TimedOut(after) => format!(
                "timed out after {}; the process and its process group were killed",
                orchestra_spec::fmt_duration(after)
            ),
        };
        let mut report = render(&status_line, &out.stdout, &out.stderr, self.max_output);
        if out.lingered {
            report.push_str(
                "\n[background processes kept the output open after exit and were killed]",
            );
        }
        tracing::debug!(program = self.program, %status_line, "shell tool finished");
        if out.success() {
            Ok(report)
        } else {
            Err(ToolFailure(report))
        }
    }
}

/// The status line, then stdout and stderr (each only if not empty), within `max` bytes of output.
fn render(status_line: &str, out: &Capture, err: &Capture, max: usize) -> String {
    let (budget_out, budget_err) = split_budget(out.total(), err.total(), max);
    let mut text = String::from(status_line);
    for (label, capture, budget) in [("stdout", out, budget_out), ("stderr", err, budget_err)] {
        if capture.total() == 0 {
            continue;
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("--- {label} ---\n"));
        text.push_str(&capture.render(budget));
    }
    if out.total() == 0 && err.total() == 0 {
        text.push_str("\n(no output)");
    }
    let total = out.total() + err.total();
    if total > max as u64 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[output truncated: {total} bytes in all (stdout {}, stderr {}); {max} shown]",
            out.total(),
            err.total()
        ));
    }
    text
}
