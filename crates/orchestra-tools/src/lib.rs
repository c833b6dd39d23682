//! Tools for Orchestra agents: a [`Registry`] of named tools with JSON Schema definitions for the
//! model, built-in repository tools, shell tools from `workspace.tools`, and Rust functions.
//!
//! Names are `repo:tool` for tools of a repository (the built-ins `read-file`, `list-files`,
//! `search-code`, `get-git-diff`, and `write-file` for writable repositories, plus shell tools with
//! a `repo:`), or unscoped for cross-repo shell tools and Rust tools.
//!
//! Safety rules, enforced here rather than trusted to the model:
//! - file tools resolve paths inside their repository only: absolute paths, `..` above the root
//!   and symbolic links leading out are refused, and nothing is written inside `.git`;
//! - shell tools run an argv array with no shell; each model-provided value becomes one argv
//!   entry (or an environment variable), and a value starting with `-` is refused where the
//!   program would read it as an option (put a literal `--` before the placeholder to allow it);
//! - every call has a timeout and an output cap, and a failure is a tool result with
//!   `is_error: true` that the model can act on, never a Rust error or a panic.
//!
//! ```no_run
//! # async fn demo() -> Result<(), orchestra_tools::ToolError> {
//! use orchestra_tools::{Registry, RepoRoot};
//! let mut tools = Registry::new();
//! tools.add_repo_builtins(&RepoRoot::new("app", "/path/to/app", false))?;
//! let defs = tools.definitions(&["app:read-file", "app:search-code"])?;
//! let out = tools
//!     .call("app:read-file", serde_json::json!({ "path": "src/main.rs" }))
//!     .await;
//! # let _ = (defs, out); Ok(()) }
//! ```

mod builtins;
mod confine;
mod error;
mod func;
mod names;
mod output;
mod registry;
mod shell;

use std::time::Duration;

pub use confine::RepoRoot;
pub use error::{ToolError, ToolFailure};
pub use names::valid_tool_name;
pub use orchestra_spec::ToolDef;
pub use output::cap_text;
pub use registry::{Registry, ToolLimits, ToolOutput};

/// Default timeout of shell tools.
pub const SHELL_DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default output cap of shell tools, in bytes.
pub const SHELL_DEFAULT_MAX_OUTPUT: usize = 64 * 1024;

/// "a string", "an array", ... for messages about JSON values.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `now + after`, or a moment decades away when that does not fit an `Instant` (a timeout of
/// `18446744073709551615` seconds in the pipeline must not panic).
pub(crate) fn deadline_after(now: std::time::Instant, after: Duration) -> std::time::Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

pub(crate) use orchestra_spec::error_chain;
