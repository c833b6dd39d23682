//! Orchestra's input language: the pipeline file, the project file (`orchestra.yaml`), prompt
//! layer and condition files, parsed with source spans; diagnostics with file:line:col and
//! "did you mean"; and three-level file discovery.
//!
//! This crate only reads and describes input. Whether names refer to real agents, tools and files
//! is checked by the compiler in `orchestra-graph`.

mod chain;
mod condition;
mod diag;
mod discovery;
mod duration;
mod inputs;
mod instance;
mod join;
mod load;
mod locate;
mod mcp;
mod pipeline;
mod price;
mod project;
mod provider;
mod shell;
mod span;
mod tool;
mod values;

pub use chain::error_chain;
pub use condition::{ConditionFile, RuleSpec};
pub use diag::{Diagnostic, Severity, SourceFile, closest, did_you_mean, display_path};
pub use discovery::{Discovery, Found, Level, find_project_file};
pub use duration::fmt_duration;
pub use inputs::{InputSpec, InputType};
pub use instance::{agent_of, instance_name, split_instance, task_order};
pub use join::Join;
pub use load::{MAX_ALIASES, MAX_DEPTH, MAX_EVENTS, MAX_FILE_BYTES, parse_yaml, read_source};
pub use locate::span_at_path;
pub use mcp::{
    ExpandError, MCP_CALL_TIMEOUT, MCP_STARTUP_TIMEOUT, McpServerSpec, check_refs, expand_env,
};
pub use pipeline::{
    AgentSpec, ArgType, BASE_CHANNELS, END, ERRORS, EdgeSpec, FAIL, FieldType, LimitsSpec, Mode,
    OnConflict, OutputFileSpec, OutputSpec, PipelineSpec, Reducer, RepoSpec, START, ShellToolSpec,
    StateFieldSpec, ToolArgSpec, WorkspaceSpec,
};
pub use price::{PriceSpec, usd, usd_opt};
pub use project::{GitConfig, PROJECT_FILE, ProjectConfig};
pub use provider::{CommandFormat, DefaultsSpec, ProviderKind, ProviderSpec, check_api_base};
pub use shell::{CommandPart, ShellCommand, ShellToolIssue, placeholder, valid_env_name};
pub use span::{Span, Spanned};
pub use tool::ToolDef;
pub use values::{Dur, LayerFile, LayerRef, Names, SpannedMap};

/// Built-in tools every repository has, and whether they need write access.
pub const BUILTIN_TOOLS: [(&str, bool); 5] = [
    ("read-file", false),
    ("list-files", false),
    ("search-code", false),
    ("get-git-diff", false),
    ("write-file", true),
];

/// The JSON Schema of pipeline files, generated from the types.
pub fn pipeline_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PipelineSpec)).unwrap_or_default()
}

/// The JSON Schema of `orchestra.yaml`, generated from the types.
pub fn project_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ProjectConfig)).unwrap_or_default()
}
