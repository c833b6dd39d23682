//! The pipeline file (`pipelines/*.yaml`) as written: serde types only. Checking that names refer
//! to real things is the compiler's job (`orchestra-graph`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inputs::InputSpec;
use crate::join::Join;
use crate::provider::{DefaultsSpec, ProviderSpec};
use crate::span::Spanned;
use crate::values::{Dur, LayerRef, Names, SpannedMap};

/// The reserved name of the graph's entry point.
pub const START: &str = "START";
/// The reserved name of the graph's exit.
pub const END: &str = "END";
/// The reserved name of the exit that ends a session as failed.
pub const FAIL: &str = "FAIL";
/// The base channel that `on_error` routes append an agent's failure to.
pub const ERRORS: &str = "errors";
/// State channels every pipeline has; they cannot be redeclared.
pub const BASE_CHANNELS: [&str; 4] = ["messages", "agent_outputs", "metadata", ERRORS];

/// A pipeline: agents with layered prompts, tools and a model, and the graph between them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Orchestra pipeline")]
pub struct PipelineSpec {
    /// The pipeline's name; used in session branch names (`{prefix}{name}/{session}`).
    pub name: Spanned<String>,
    /// What the pipeline does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default provider and model alias for agents that do not set their own.
    #[serde(default)]
    pub defaults: DefaultsSpec,
    /// Providers, merged over (and overriding by name) the providers of `orchestra.yaml`.
    #[serde(default)]
    pub providers: SpannedMap<ProviderSpec>,
    /// Inputs given on the command line with `--input key=value`, available as `inputs.key`;
    /// typed, checked before a session starts.
    #[serde(default)]
    pub inputs: SpannedMap<InputSpec>,
    /// Repositories the agents work on, and shell tools over them.
    #[serde(default)]
    pub workspace: WorkspaceSpec,
    /// State fields beyond the base channels `messages`, `agent_outputs`, `metadata` and
    /// `errors`.
    #[serde(default)]
    pub state: SpannedMap<StateFieldSpec>,
    /// The agents, by name. Declaration order is the order their writes are applied in.
    pub agents: SpannedMap<AgentSpec>,
    /// The edges of the graph, from `START` to `END`.
    pub graph: Vec<EdgeSpec>,
    /// Session-wide limits.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Files written from the final state when the session completes (e.g. a review in
    /// Markdown); their paths are printed at the end of the run.
    #[serde(default)]
    pub outputs: SpannedMap<OutputFileSpec>,
    /// Model prices in USD per million tokens, by model name (not alias), over those of
    /// `orchestra.yaml` and the built-in ones: `{ MODEL: { input, output, cache_read,
    /// cache_write } }`.
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub prices: SpannedMap<crate::PriceSpec>,
    /// MCP servers whose tools agents list as `SERVER:TOOL` or `SERVER:*`, merged over (and
    /// replacing by name) those of `orchestra.yaml`.
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub mcp_servers: SpannedMap<crate::McpServerSpec>,
}

/// A file written from the final state when a session completes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputFileSpec {
    /// The state field written: a string as it is, any other value as pretty JSON.
    pub from: Spanned<String>,
    /// Where to write it, relative to the project root: a minijinja template over `session`,
    /// `pipeline`, `name` (this output's name) and `inputs`. Default:
    /// `.orchestra/outputs/{{ session }}/{{ name }}.md` (`.json` for non-string values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<String>>,
    /// The file's text: a minijinja template over `value` (the `from` field's value), `state`
    /// (the final state), `inputs`, `session`, `pipeline` and `name`. Default: the value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Spanned<String>>,
    /// What the file holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The repositories and shell tools of a pipeline.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Repositories by name; tools are named `repo:tool`.
    #[serde(default)]
    pub repos: SpannedMap<RepoSpec>,
    /// Shell tools: commands run as argv arrays, never through a shell.
    #[serde(default)]
    pub tools: Vec<ShellToolSpec>,
}

/// A repository the agents can read (and write, with `write: true`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSpec {
    /// Path to the repository, relative to the pipeline file's directory's project root
    /// (the directory holding `orchestra.yaml`, else the current directory). Required unless
    /// `url:` is given; with `url:` it is where this process keeps its clone (default
    /// `.orchestra/clones/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<String>>,
    /// A git remote the repository lives in, any URL `git` takes: a path to a bare repository,
    /// `file://`, `ssh://`, `user@host:path`, `https://`, `http://` or `git://` (reached with
    /// the `git` program and the user's credentials): each process works in its own clone
    /// (see `path:`), fetches before a session starts or resumes, and pushes the session
    /// branch after every commit, so a session can go on on another machine. Needs
    /// `write: true`. A relative path is relative to the project root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Spanned<String>>,
    /// Whether agents may change it. Writable repos get a session branch and worktree, and the
    /// `write-file` tool.
    #[serde(default)]
    pub write: bool,
    /// What happens when parallel writers' changes conflict at a join.
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// What the repository is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How a merge conflict between parallel writers is handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// The conflicted files (with markers) go to the next agent in state (`metadata.conflicts`).
    Agent,
    /// The session pauses for a human to resolve the conflict.
    #[default]
    Pause,
    /// The session fails.
    Fail,
}

/// A shell tool: a command run as an argv array.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellToolSpec {
    /// The tool's name; agents refer to it as `repo:name`, or `name` when it has no repo.
    pub name: Spanned<String>,
    /// The repository the command runs in (its working directory). Without one, the tool is
    /// cross-repo and runs in the project root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<Spanned<String>>,
    /// The argv: program then arguments. An element that is exactly `{{arg}}` is replaced by the
    /// argument's value as one argv entry (an array argument gives one entry per item).
    pub command: Spanned<Vec<String>>,
    /// What the tool does (shown to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The arguments the model may give.
    #[serde(default)]
    pub args: SpannedMap<ToolArgSpec>,
    /// Fixed environment variables for the command.
    #[serde(default)]
    pub env: SpannedMap<String>,
    /// How long the command may run (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// How many bytes of output are kept (default 64 KiB); the rest is cut with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<usize>,
}

/// An argument of a shell tool.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolArgSpec {
    /// The JSON type of the argument (`string` by default).
    #[serde(default = "ArgType::default_string", rename = "type")]
    pub ty: ArgType,
    /// What the argument means (shown to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the model must give it (default true unless a default is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The value used when the model gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Pass the value in this environment variable instead of (or besides) the argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// JSON types of tool arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArgType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list of strings.
    Array,
}

impl ArgType {
    fn default_string() -> Self {
        ArgType::String
    }
}

/// A declared state field.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateFieldSpec {
    /// The JSON type values must have (`any` by default).
    #[serde(default, rename = "type")]
    pub ty: FieldType,
    /// How a write is combined with the current value (`replace` by default).
    #[serde(default)]
    pub reducer: Reducer,
    /// The allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// The initial value (else null, or the reducer's empty value: `[]`, `{}`, `0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the field holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// JSON types of state fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Any JSON value.
    #[default]
    Any,
    /// A string.
    String,
    /// A number.
    Number,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A mapping.
    Object,
}

/// How writes to a state field combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reducer {
    /// The write replaces the value; two writes in one step are an error naming both writers.
    #[default]
    Replace,
    /// The written item (or each item of a written list) is appended.
    Append,
    /// The written mapping is merged key by key into the value.
    Merge,
    /// The written number is added to the value.
    Sum,
}

/// An agent: prompt layers, model, tools, output and what it writes into state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// What the agent does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Role layer: `prompts/roles/NAME.yaml` or inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Spanned<LayerRef>>,
    /// Persona layer: `prompts/personas/NAME.yaml` or inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<Spanned<LayerRef>>,
    /// Personality layer: `prompts/personalities/NAME.yaml` or inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Spanned<LayerRef>>,
    /// Task layer: `prompts/tasks/NAME.yaml` or inline; a minijinja template over `state`,
    /// `inputs` and `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Spanned<LayerRef>>,
    /// Model alias (`smart`, `worker`, `cheap`, ...) looked up in the provider's `models`; an
    /// unknown alias is used as a literal model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Spanned<String>>,
    /// Provider override (else `defaults.provider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Spanned<String>>,
    /// Tools: `repo:tool` (built-in or shell tool of that repo) or an unscoped tool name.
    #[serde(default)]
    pub tools: Vec<Spanned<String>>,
    /// Structured output: a JSON Schema the agent's final answer must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
    /// State writes: state field -> JSON pointer into the output (`""` is the whole output).
    #[serde(default)]
    pub writes: SpannedMap<Spanned<String>>,
    /// `autonomous` (default) or `interactive` (a chat with a human).
    #[serde(default)]
    pub mode: Mode,
    /// Most model turns in the tool-calling loop (default `limits.max_turns`; at least 1).
    #[serde(
        default,
        deserialize_with = "crate::values::at_least_one_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// Per-node timeout (default `limits.node_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Node retries after a transient failure its provider did not retry itself: an invalid
    /// answer, the node's timeout, an error of a provider with `max_retries: 0` (default
    /// `limits.retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Where the session goes when this agent fails after its retries, instead of failing: an
    /// agent (or `END`, `FAIL`). The failure is appended to state `errors` as
    /// `{agent, step, error}`; the circuit breaker (`limits.max_failures`) still counts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<Spanned<String>>,
    /// Makes the agent a command node: a program run without a model, as an argv (program
    /// then arguments, never through a shell). Each element is a minijinja template over
    /// `state` and `inputs` (and `item`, `item_index` for the target of a `for_each` edge),
    /// rendered on its own into exactly one argument. The node's output
    /// is `{exit_code, stdout, stderr}` (each stream capped at 64 KiB, its start and end kept);
    /// a non-zero exit code is data for `writes` and conditions, not a failure. A program that
    /// cannot be started, or that runs past `timeout`, fails the node. Not with `role`,
    /// `persona`, `personality`, `task`, `model`, `provider`, `tools`, `output`, `mode` or
    /// `max_turns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// A command node's repository: it runs in its directory — the session worktree when the
    /// repository is writable, and its changes there are committed like an agent's. Without
    /// one it runs in the project root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<Spanned<String>>,
    /// Fixed environment variables of a command node's program (set as written, not
    /// templates). API keys of the pipeline's providers are never passed on.
    #[serde(default)]
    pub env: SpannedMap<String>,
    /// Makes the agent a call node: it runs another pipeline (this file, relative to the
    /// calling pipeline's directory) as a child session with its own checkpoints. The child is
    /// compiled with the caller; a call cycle is a compile error. The node's output is the
    /// child's final state, plus `outputs` (each of the child's `outputs:` files' text), so
    /// `writes: { doc: /outputs/doc }` or `{ design: /design }` read it. The child's failure
    /// is the node's (its `retries` and `on_error` apply); its tokens and cost count in the
    /// caller's. Not with `role`, `persona`, `personality`, `task`, `model`, `provider`,
    /// `tools`, `output`, `mode`, `max_turns`, `command`, `repo`, `env` or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Spanned<String>>,
    /// A call node's inputs for the child: input name -> value. A string is a minijinja
    /// template over the caller's `state` and `inputs`, rendered when the node runs; the text
    /// is then read as the input's type (like `run --input`). Keys must be inputs the child
    /// declares, and every input it requires without a default must be given.
    #[serde(default)]
    pub with: SpannedMap<Spanned<Value>>,
}

/// Structured output of an agent.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The JSON Schema the output must satisfy.
    pub schema: Spanned<Value>,
    /// How many times an invalid output is sent back to the model with the validation errors
    /// (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// How an agent runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs to completion on its own.
    #[default]
    Autonomous,
    /// A chat with a human; `/done`, `/approve`, `/reject` end it.
    Interactive,
}

/// An edge (or group of edges) of the graph.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// Source node(s): agents or `START`. Several sources make a fan-in.
    pub from: Names,
    /// Target node(s): agents, `END`, or `FAIL` (ends the session as failed). Several targets
    /// make a fan-out; with `condition`, the targets the condition may choose from.
    pub to: Names,
    /// For several sources: `all` (default) runs the target once after every source has
    /// finished; `any` runs it once on the first arrival; a number N runs it once N of the
    /// sources have finished since it last ran (a quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Spanned<Join>>,
    /// A condition choosing among `to`: `conditions/NAME.yaml`, an executable
    /// `conditions/NAME[.*]`, or a function registered through the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Spanned<String>>,
    /// How many times this edge may lead back into a loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loops: Option<Spanned<u32>>,
    /// Where to go instead once `max_loops` is used up: an agent or `END`. Without it the session
    /// fails with a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_max_loops: Option<Spanned<String>>,
    /// Why the session failed, when this edge leads to `FAIL`: a minijinja template over
    /// `state` and `inputs`, shown by the run's last line and by `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Spanned<String>>,
    /// Dynamic fan-out: a state field holding a list, read when the edge fires; one task of the
    /// (single, agent or command node) target runs per item, named `TARGET[N]`, its task
    /// template (or a command node's argv) seeing `{{ item }}` and `{{ item_index }}`
    /// (0-based). The instances run in parallel in one step (bounded by `max_parallel`), the
    /// next step waits for every one, their writes are applied in item order; with 0 items the
    /// target runs no task and its edges fire as if it had run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<Spanned<String>>,
}

/// Session-wide limits.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Most super-steps in one session (default 200).
    #[serde(default = "LimitsSpec::default_max_steps")]
    pub max_steps: u32,
    /// Failed node runs (after retries) before the circuit breaker stops the session (default 3).
    #[serde(default = "LimitsSpec::default_max_failures")]
    pub max_failures: u32,
    /// Timeout of one node run (default 10m).
    #[serde(default = "LimitsSpec::default_node_timeout")]
    pub node_timeout: Dur,
    /// Token budget of the session (input + output); the session stops cleanly when it is spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Cost budget of the session in US dollars, from the model prices (`prices:`); the session
    /// stops cleanly once it is spent. Runs of models without a known price do not count.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::usd_opt"
    )]
    #[schemars(range(min = 0))]
    pub max_cost: Option<f64>,
    /// Most nodes running at once (default 32; at least 1).
    #[serde(
        default = "LimitsSpec::default_max_parallel",
        deserialize_with = "crate::values::at_least_one"
    )]
    #[schemars(range(min = 1))]
    pub max_parallel: u32,
    /// Retries of a node after a transient failure its provider did not retry itself, with
    /// exponential backoff and jitter (default 2).
    #[serde(default = "LimitsSpec::default_retries")]
    pub retries: u32,
    /// Most model turns of one agent run (default 20; at least 1).
    #[serde(
        default = "LimitsSpec::default_max_turns",
        deserialize_with = "crate::values::at_least_one"
    )]
    #[schemars(range(min = 1))]
    pub max_turns: u32,
}

impl LimitsSpec {
    fn default_max_steps() -> u32 {
        200
    }
    fn default_max_failures() -> u32 {
        3
    }
    fn default_node_timeout() -> Dur {
        Dur(std::time::Duration::from_secs(600))
    }
    fn default_max_parallel() -> u32 {
        32
    }
    fn default_retries() -> u32 {
        2
    }
    fn default_max_turns() -> u32 {
        20
    }
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_steps: Self::default_max_steps(),
            max_failures: Self::default_max_failures(),
            node_timeout: Self::default_node_timeout(),
            max_tokens: None,
            max_cost: None,
            max_parallel: Self::default_max_parallel(),
            retries: Self::default_retries(),
            max_turns: Self::default_max_turns(),
        }
    }
}
