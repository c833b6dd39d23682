//! Command nodes at run time: render the argv over the state and inputs (and an instance's
//! `item` and `item_index`, for the target of a `for_each` edge; each element into one
//! argument, never through a shell), run the program with the project's subprocess runner
//! (process group, killed on timeout, output capped) in the node's directory, and return
//! `{exit_code, stdout, stderr}` with the declared writes. A non-zero exit code is data; a
//! program that cannot be started, or runs past the node's timeout, fails the node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use orchestra_graph::{COMMAND_MAX_OUTPUT, CommandNode, Compiled, ResolvedAgent};
use orchestra_process::{Command, Ending, ProcessError};

use crate::runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner};

/// How much longer than a command node's `timeout` the executor waits for it: the process
/// runner's own timeout comes first, kills the process group and says which program it was.
pub(crate) const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// Runs command nodes itself and every other agent with `inner` (the harness).
pub(crate) struct CommandNodes {
    inner: Arc<dyn NodeRunner>,
    compiled: Arc<Compiled>,
    /// Repository name -> the directory the session works in (its worktree when writable).
    roots: HashMap<String, PathBuf>,
    /// Environment variables not passed on (the providers' API keys).
    hidden: Vec<String>,
}

impl CommandNodes {
    pub(crate) fn new(
        inner: Arc<dyn NodeRunner>,
        compiled: Arc<Compiled>,
        roots: HashMap<String, PathBuf>,
    ) -> Self {
        let hidden = crate::plan::key_env_names(&compiled);
        CommandNodes {
            inner,
            compiled,
            roots,
            hidden,
        }
    }

    /// Where the node runs: the worktree the git layer chose (writable repository), else its
    /// repository's directory, else the project root.
    fn workdir(&self, call: &NodeCall, node: &CommandNode) -> PathBuf {
        if let Some(dir) = &call.workdir {
            return dir.to_path_buf();
        }
        match &node.repo {
            Some(repo) => self
                .roots
                .get(repo)
                .cloned()
                .or_else(|| self.compiled.repo(repo).map(|r| r.path.clone()))
                .unwrap_or_else(|| self.compiled.project_root.clone()),
            None => self.compiled.project_root.clone(),
        }
    }

    async fn run_command(
        &self,
        call: &NodeCall,
        agent: &ResolvedAgent,
        node: &CommandNode,
    ) -> Result<NodeResult, NodeError> {
        let argv = render_argv(call, node)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(NodeError::Fatal(format!(
                "command node `{}` has an empty `command`",
                call.agent
            )));
        };
        let mut cmd = Command::new(program)
            .args(args)
            .current_dir(self.workdir(call, node))
            .timeout(agent.timeout.0)
            .max_output(COMMAND_MAX_OUTPUT);
        for name in &self.hidden {
            cmd = cmd.env_remove(name);
        }
        for (k, v) in &node.env {
            cmd = cmd.env(k, v);
        }
        let out = cmd
            .run()
            .await
            .map_err(|e| cannot_run(&call.agent, program, &e))?;
        let exit_code = match out.ending {
            Ending::TimedOut(after) => {
                return Err(NodeError::Retryable(format!(
                    "command `{program}` timed out after {}; its process group was killed",
                    orchestra_spec::fmt_duration(after)
                )));
            }
            Ending::Exited(status) => exit_code(status),
        };
        let output = json!({
            "exit_code": exit_code,
            "stdout": out.stdout.text(),
            "stderr": out.stderr.text(),
        });
        let writes = crate::harness::extract_writes(agent, &output).map_err(|why| {
            NodeError::Fatal(format!(
                "the output of command node `{}` cannot be written: {why}",
                call.agent
            ))
        })?;
        Ok(NodeResult {
            output,
            writes,
            exit_code: Some(exit_code),
            ..NodeResult::default()
        })
    }
}

impl NodeRunner for CommandNodes {
    fn run<'a>(&'a self, call: &'a NodeCall) -> BoxFuture<'a, Result<NodeResult, NodeError>> {
        let agent = self.compiled.agents.get(call.agent_idx);
        match agent.and_then(|a| a.command.as_deref().map(|c| (a, c))) {
            Some((agent, node)) => Box::pin(self.run_command(call, agent, node)),
            None => self.inner.run(call),
        }
    }
}

/// The argv of `node` rendered over the call's state and inputs (and its item, for an instance
/// of a `for_each` target), one argument per element.
fn render_argv(call: &NodeCall, node: &CommandNode) -> Result<Vec<String>, NodeError> {
    let templated = node
        .argv
        .iter()
        .any(|a| a.contains("{{") || a.contains("{%"));
    if !templated {
        return Ok(node.argv.clone());
    }
    let state = Value::Object((*call.state).clone());
    let inputs = Value::Object((*call.inputs).clone());
    let item = call.item.as_deref().map(|(i, v)| (v, *i));
    node.argv
        .iter()
        .enumerate()
        .map(|(i, a)| {
            orchestra_prompts::render_inline_item(a, &state, &inputs, item).map_err(|e| {
                NodeError::Fatal(format!(
                    "cannot render argument {i} of the `command` of `{}` ({a:?}): {e}",
                    call.agent
                ))
            })
        })
        .collect()
}

/// The exit code of a program that exited; `128 + N` when it was killed by signal N (as
/// shells report it).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    -1
}

/// The node error of a program that could not be run, naming it and saying why.
fn cannot_run(agent: &str, program: &str, e: &ProcessError) -> NodeError {
    let why = match e {
        ProcessError::Spawn { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound if program.contains('/') => {
                format!("`{program}` does not exist")
            }
            std::io::ErrorKind::NotFound => {
                format!("program `{program}` not found in PATH")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("`{program}` is not executable (permission denied)")
            }
            _ => format!("cannot start `{program}`: {source}"),
        },
        other => crate::error::error_chain(other),
    };
    NodeError::Fatal(format!("command node `{agent}`: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_cannot_start_is_named() {
        let nf = ProcessError::Spawn {
            program: "nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            cannot_run("check", "nope", &nf).to_string(),
            "command node `check`: program `nope` not found in PATH"
        );
        assert_eq!(
            cannot_run("check", "./x.sh", &nf).to_string(),
            "command node `check`: `./x.sh` does not exist"
        );
        let denied = ProcessError::Spawn {
            program: "./x.sh".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            cannot_run("check", "./x.sh", &denied).to_string(),
            "command node `check`: `./x.sh` is not executable (permission denied)"
        );
    }
}
