//! The tool registry: what an agent may call, the definitions sent to the model, and the call
//! itself, with a timeout and an output cap around every tool.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use orchestra_spec::ToolDef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::builtins::{Builtin, BuiltinKind};
use crate::confine::RepoRoot;
use crate::error::{ToolError, ToolFailure};
use crate::output::cap_text;
use crate::shell::ShellTool;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The result of a tool call, sent back to the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The text the model reads.
    pub content: String,
    /// Whether the call failed (bad arguments, refused path, non-zero exit, timeout, unknown tool).
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> Self {
        ToolOutput {
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed result.
    pub fn error(content: impl Into<String>) -> Self {
        ToolOutput {
            content: content.into(),
            is_error: true,
        }
    }
}

/// Time and size limits of the built-in tools and Rust tools. Shell tools use their own
/// `timeout` (default 5 minutes) and `max_output` (default 64 KiB) from the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolLimits {
    /// How long one call may take (default 60 s).
    pub timeout: Duration,
    /// How many bytes of output a call returns; the rest is cut with a note (default 256 KiB).
    pub max_output: usize,
    /// Largest file `read-file` reads and `search-code` searches (default 8 MiB).
    pub max_file_bytes: u64,
    /// Largest content `write-file` accepts (default 4 MiB).
    pub max_write_bytes: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        ToolLimits {
            timeout: Duration::from_secs(60),
            max_output: 256 * 1024,
            max_file_bytes: 8 * 1024 * 1024,
            max_write_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What every call gets besides its arguments.
#[derive(Clone, Debug)]
pub(crate) struct CallCtx {
    pub(crate) limits: Arc<ToolLimits>,
    /// Environment variables removed from shell tools' environment.
    pub(crate) hidden_env: Arc<[String]>,
    /// When a long-running built-in should stop and report what it has.
    pub(crate) deadline: Instant,
}

/// A tool of any kind.
pub(crate) trait Tool: Send + Sync + fmt::Debug {
    /// The description shown to the model.
    fn description(&self) -> String;
    /// The JSON Schema of the arguments.
    fn parameters(&self) -> Value;
    /// How long a call may run before the registry abandons it.
    fn timeout(&self, limits: &ToolLimits) -> Duration {
        limits.timeout
    }
    /// The size the registry caps the returned text at.
    fn max_output(&self, limits: &ToolLimits) -> usize {
        limits.max_output
    }
    /// Runs the tool.
    fn call(self: Arc<Self>, args: Value, ctx: CallCtx) -> BoxFuture<Result<String, ToolFailure>>;
}

/// The tools one agent may call, by name.
///
/// Built per agent run: adding built-ins and shell tools only stores a few small values (no file
/// system or git access happens until a call), and schemas of built-ins are generated once per
/// process. The registry is `Send + Sync`; calls may run concurrently. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    tools: IndexMap<String, Arc<dyn Tool>>,
    limits: Arc<ToolLimits>,
    hidden_env: Arc<[String]>,
}

impl Registry {
    /// An empty registry with default [`ToolLimits`].
    pub fn new() -> Self {
        Registry::default()
    }

    /// Uses these limits for built-in and Rust tools.
    pub fn with_limits(mut self, limits: ToolLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Removes these variables from the environment of shell tools (for example the provider API
    /// key variables, so a tool the model drives cannot print them).
    pub fn hide_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all: Vec<String> = self.hidden_env.to_vec();
        all.extend(names.into_iter().map(Into::into));
        self.hidden_env = all.into();
        self
    }

    /// The limits of built-in and Rust tools.
    pub fn limits(&self) -> &ToolLimits {
        &self.limits
    }

    /// Adds the built-in tools of a repository: `NAME:read-file`, `NAME:list-files`,
    /// `NAME:search-code`, `NAME:get-git-diff`, and `NAME:write-file` when it is writable.
    pub fn add_repo_builtins(&mut self, repo: &RepoRoot) -> Result<(), ToolError> {
        crate::names::valid_tool_name(&repo.name).map_err(|reason| ToolError::InvalidName {
            name: repo.name.clone(),
            reason,
        })?;
        let shared = Arc::new(repo.clone());
        for kind in BuiltinKind::ALL {
            if kind.writes() && !repo.writable {
                continue;
            }
            let name = format!("{}:{}", repo.name, kind.name());
            self.insert(name, Arc::new(Builtin::new(Arc::clone(&shared), kind)))?;
        }
        Ok(())
    }

    /// Adds a shell tool from `workspace.tools`, named `repo:tool` when it has a repo, else
    /// unscoped. `cwd` is where it runs: the repo's root (its worktree for writable repos during a
    /// run) or, for an unscoped tool, the project root.
    pub fn add_shell_tool(
        &mut self,
        spec: &orchestra_spec::ShellToolSpec,
        cwd: impl Into<PathBuf>,
    ) -> Result<(), ToolError> {
        let tool = ShellTool::from_spec(spec, cwd.into())?;
        self.insert(tool.name().to_owned(), Arc::new(tool))
    }

    /// Adds everything a workspace offers: the built-ins of each repository, and each shell
    /// tool, run in its repository's root (`repos`) or, without `repo:`, in `project_root`.
    /// A shell tool naming a repository not in `repos` is an error.
    pub fn add_workspace(
        &mut self,
        repos: &[RepoRoot],
        tools: &[orchestra_spec::ShellToolSpec],
        project_root: &Path,
    ) -> Result<(), ToolError> {
        for repo in repos {
            self.add_repo_builtins(repo)?;
        }
        for spec in tools {
            let cwd = match &spec.repo {
                None => project_root.to_path_buf(),
                Some(name) => match repos.iter().find(|r| r.name == name.value) {
                    Some(repo) => repo.root.clone(),
                    None => {
                        let hint = orchestra_spec::did_you_mean(
                            &name.value,
                            repos.iter().map(|r| r.name.as_str()),
                        )
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                        return Err(ToolError::InvalidShellTool {
                            name: spec.name.value.clone(),
                            reason: format!("unknown repo `{}`{hint}", name.value),
                        });
                    }
                },
            };
            self.add_shell_tool(spec, cwd)?;
        }
        Ok(())
    }

    /// A registry holding only the named tools, in the order given (cheap: tools are shared).
    /// Build the workspace's registry once, then `select` each agent's `tools:` so an agent can
    /// call nothing it was not given. An unknown name is an error with suggestions.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Registry, ToolError> {
        let mut tools = IndexMap::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let tool = self.tools.get(name).ok_or_else(|| self.unknown(name))?;
            tools.insert(name.to_owned(), Arc::clone(tool));
        }
        Ok(Registry {
            tools,
            limits: Arc::clone(&self.limits),
            hidden_env: Arc::clone(&self.hidden_env),
        })
    }

    pub(crate) fn insert(&mut self, name: String, tool: Arc<dyn Tool>) -> Result<(), ToolError> {
        crate::names::valid_tool_name(&name).map_err(|reason| ToolError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        if self.tools.contains_key(&name) {
            return Err(ToolError::Duplicate { name });
        }
        self.tools.insert(name, tool);
        Ok(())
    }

    /// Registered names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Whether a tool of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// Number of registered tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The definitions of the named tools, in the order asked; an unknown name is an error with
    /// "did you mean" suggestions.
    pub fn definitions<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<ToolDef>, ToolError> {
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                let tool = self.tools.get(name).ok_or_else(|| self.unknown(name))?;
                Ok(def(name, tool.as_ref()))
            })
            .collect()
    }

    /// The definitions of every registered tool.
    pub fn all_definitions(&self) -> Vec<ToolDef> {
        self.tools
            .iter()
            .map(|(name, tool)| def(name, tool.as_ref()))
            .collect()
    }

    fn unknown(&self, name: &str) -> ToolError {
        ToolError::UnknownTool {
            name: name.to_owned(),
            suggestions: crate::names::suggest(name, self.tools.keys().map(String::as_str)),
        }
    }

    /// Calls a tool. Never fails as a Rust error: an unknown tool, bad arguments, a refused path,
    /// a non-zero exit or a timeout is a [`ToolOutput`] with `is_error: true` and a message the
    /// model can act on. The output is capped with a note saying how much was cut.
    pub async fn call(&self, name: &str, args: Value) -> ToolOutput {
        let Some(tool) = self.tools.get(name) else {
            let mut msg = self.unknown(name).to_string();
            if !self.tools.is_empty() {
                let all: Vec<&str> = self.names().collect();
                msg.push_str(&format!("; available tools: {}", all.join(", ")));
            }
            return ToolOutput::error(msg);
        };
        let started = Instant::now();
        let timeout = tool.timeout(&self.limits);
        let max_output = tool.max_output(&self.limits);
        let ctx = CallCtx {
            limits: Arc::clone(&self.limits),
            hidden_env: Arc::clone(&self.hidden_env),
            // Built-ins that walk many files stop a little early and report partial results.
            deadline: crate::deadline_after(started, timeout - timeout / 10),
        };
        let result = tokio::time::timeout(timeout, Arc::clone(tool).call(args, ctx)).await;
        let output = match result {
            Ok(Ok(text)) => ToolOutput::ok(cap_text(text, max_output)),
            Ok(Err(failure)) => ToolOutput::error(cap_text(failure.0, max_output)),
            Err(_) => ToolOutput::error(format!(
                "`{name}` timed out after {}",
                orchestra_spec::fmt_duration(timeout)
            )),
        };
        tracing::debug!(
            tool = name,
            is_error = output.is_error,
            bytes = output.content.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tool call finished"
        );
        output
    }
}

fn def(name: &str, tool: &dyn Tool) -> ToolDef {
    ToolDef {
        name: name.to_owned(),
        description: tool.description(),
        parameters: tool.parameters(),
    }
}

/// Parses a call's arguments into `T`; `null` counts as no arguments.
pub(crate) fn parse_args<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, ToolFailure> {
    let args = match args {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    if !args.is_object() {
        return Err(ToolFailure::new(format!(
            "invalid arguments: expected a JSON object, got {}",
            crate::json_kind(&args)
        )));
    }
    serde_json::from_value(args).map_err(|e| ToolFailure::new(format!("invalid arguments: {e}")))
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ToolFailure>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ToolFailure> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ToolFailure::new(format!("the tool crashed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn registry_is_send_and_sync() {
        assert_send_sync::<Registry>();
    }

    #[test]
    fn args_must_be_an_object() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct A {
            #[serde(default)]
            x: Option<u32>,
        }
        assert!(parse_args::<A>(Value::Null).unwrap().x.is_none());
        let e = parse_args::<A>(serde_json::json!([1])).unwrap_err();
        assert_eq!(
            e.0,
            "invalid arguments: expected a JSON object, got an array"
        );
        let e = parse_args::<A>(serde_json::json!({"y": 1})).unwrap_err();
        assert!(
            e.0.starts_with("invalid arguments: unknown field `y`"),
            "{e}"
        );
    }
}
