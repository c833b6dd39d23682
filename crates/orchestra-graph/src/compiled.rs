//! The result of compiling a pipeline: everything the runtime needs, resolved and validated —
//! agents with their prompt layers, provider and model, tools; conditions; state channels;
//! inputs; repositories; and the graph itself.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use orchestra_prompts::{AgentVars, PromptContext, PromptError, ResolvedLayer, compose};
use orchestra_spec::{
    Diagnostic, Dur, LimitsSpec, Mode, OnConflict, OutputFileSpec, PriceSpec, ProjectConfig,
    ProviderKind, ProviderSpec, ShellToolSpec, SourceFile, SpannedMap,
};
use petgraph::graph::DiGraph;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::CallNode;
use crate::command::CommandNode;
use crate::conditions::ResolvedCondition;
use crate::inputs::ResolvedInput;
use crate::state::{Channels, State};
use crate::topology::{AgentIdx, Node, Topology};

/// A compiled pipeline. Serializes to JSON (and back) so the runtime can store exactly what ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Compiled {
    /// The pipeline's name.
    pub name: String,
    /// What the pipeline does (its `description:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The pipeline file as read (path as shown to the user, and text).
    #[serde(with = "source_file")]
    pub source: SourceFile,
    /// The pipeline file's absolute path.
    pub pipeline_path: PathBuf,
    /// The project configuration (defaults when there is no `orchestra.yaml`).
    pub project: ProjectConfig,
    /// The directory holding `orchestra.yaml`, else the current directory.
    pub project_root: PathBuf,
    /// `orchestra.yaml`, if there is one.
    pub project_file: Option<PathBuf>,
    /// Agents and edges, with `loop_targets` computed (shared with the executor).
    pub topology: Arc<Topology>,
    /// Agents in declaration order (`agents[i].index == i`).
    pub agents: Vec<ResolvedAgent>,
    /// Providers (the pipeline's merged over the project's), by name.
    pub providers: IndexMap<String, ResolvedProvider>,
    /// Repositories, in declaration order.
    pub repos: Vec<ResolvedRepo>,
    /// The shell tools of `workspace.tools`, as written.
    #[serde(default)]
    pub shell_tools: Vec<ShellToolSpec>,
    /// Conditions used by edges, by name.
    pub conditions: IndexMap<String, ResolvedCondition>,
    /// State channels: the base channels, then the declared fields (shared with the executor).
    pub channels: Arc<Channels>,
    /// Inputs, in declaration order.
    pub inputs: Vec<ResolvedInput>,
    /// Session limits.
    pub limits: LimitsSpec,
    /// Files written from the final state when a session completes (`outputs:`).
    #[serde(default)]
    pub outputs: SpannedMap<OutputFileSpec>,
    /// Model prices by model name: the pipeline's `prices:` merged over `orchestra.yaml`'s (the
    /// built-in ones apply to models named in neither).
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub prices: SpannedMap<PriceSpec>,
    /// MCP servers (the pipeline's merged over `orchestra.yaml`'s), by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub mcp_servers: IndexMap<String, crate::mcp::ResolvedMcpServer>,
    /// Warnings found while compiling (not serialized).
    #[serde(skip)]
    pub warnings: Vec<Diagnostic>,
}

/// An agent, resolved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolvedAgent {
    /// The agent's name.
    pub name: String,
    /// Its index in declaration order.
    pub index: AgentIdx,
    /// What it does.
    pub description: Option<String>,
    /// Its prompt layers, in composition order (absent layers are left out).
    pub layers: Vec<ResolvedLayer>,
    /// Provider and model (shared by the agents that made the same choice).
    pub model: Arc<ModelChoice>,
    /// Its tools, in the order listed.
    pub tools: Vec<ToolRef>,
    /// The JSON Schema its output must satisfy, if any (boxed: most agents have none).
    pub output_schema: Option<Box<Value>>,
    /// How often an invalid output is sent back (default 2).
    pub output_max_retries: u32,
    /// State writes, in the order written.
    pub writes: Vec<StateWrite>,
    /// Autonomous or interactive.
    pub mode: Mode,
    /// Most model turns per run.
    pub max_turns: u32,
    /// Timeout of one run.
    pub timeout: Dur,
    /// Retries after a provider error.
    pub retries: u32,
    /// Writable repositories it can change (through `write-file` or a shell tool; for a
    /// command node, its writable `repo`).
    pub write_repos: Vec<String>,
    /// For a command node, the program it runs instead of a model (boxed: most agents are
    /// model agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Box<CommandNode>>,
    /// For a call node, the pipeline it runs as a child session (boxed: most agents are model
    /// agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Box<CallNode>>,
}

impl ResolvedAgent {
    /// Whether it is a command node (a program, no model).
    pub fn is_command(&self) -> bool {
        self.command.is_some()
    }

    /// Whether it is a call node (a child pipeline, no model of its own).
    pub fn is_call(&self) -> bool {
        self.call.is_some()
    }

    /// Whether it calls a model itself (neither a command node nor a call node).
    pub fn has_model(&self) -> bool {
        self.command.is_none() && self.call.is_none()
    }
}

/// The provider and model an agent runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    /// The provider's name.
    pub provider: String,
    /// The provider's kind.
    pub kind: ProviderKind,
    /// The model name sent to the provider (`None`: none was set; fine for `scripted`/`command`).
    pub model: Option<String>,
    /// The alias it was resolved from, when it was an alias of the provider's `models`.
    pub alias: Option<String>,
    /// What was asked for (agent `model:` or `defaults.model`), alias or literal.
    pub requested: Option<String>,
}

/// A state write: `field` gets the part of the output at JSON pointer `pointer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateWrite {
    /// The state field.
    pub field: String,
    /// The JSON pointer into the output (`""`: all of it).
    pub pointer: String,
}

/// A tool an agent may call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolRef {
    /// The full name: `repo:tool` or an unscoped name.
    pub name: String,
    /// The repository, for scoped tools.
    pub repo: Option<String>,
    /// The tool's own name (after `repo:`).
    pub tool: String,
    /// What implements it.
    pub kind: ToolKind,
}

/// What implements a tool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolKind {
    /// A built-in tool of a repository.
    Builtin {
        /// Whether it changes the repository (`write-file`).
        writes: bool,
    },
    /// A shell tool from `workspace.tools`.
    Shell {
        /// Its definition.
        spec: Box<ShellToolSpec>,
    },
    /// A tool registered through the library API.
    Registered,
    /// A tool of an MCP server (`tool` is its name on the server, or `*` for all of them).
    Mcp {
        /// The server's name in `mcp_servers`.
        server: String,
    },
}

/// A provider with the file that declared it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolvedProvider {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub spec: ProviderSpec,
    /// The file that declared it (the pipeline or `orchestra.yaml`).
    pub declared_in: PathBuf,
    /// `scripted`: the responses file, resolved against the declaring file's directory.
    pub responses: Option<PathBuf>,
}

/// A repository of the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRepo {
    /// Its name (tools are `name:tool`).
    pub name: String,
    /// Its absolute path.
    pub path: PathBuf,
    /// Whether agents may change it.
    pub write: bool,
    /// The git remote it lives in (`url:`): `path` is then this process's clone of it, made on
    /// first use. Paths are absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What happens on a merge conflict between parallel writers.
    pub on_conflict: OnConflict,
    /// What it is.
    pub description: Option<String>,
}

impl Compiled {
    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&ResolvedAgent> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The provider an agent runs on.
    pub fn provider_of(&self, agent: &ResolvedAgent) -> Option<&ResolvedProvider> {
        self.providers.get(&agent.model.provider)
    }

    /// The repository called `name`.
    pub fn repo(&self, name: &str) -> Option<&ResolvedRepo> {
        self.repos.iter().find(|r| r.name == name)
    }

    /// The state before the first step.
    pub fn initial_state(&self) -> State {
        self.channels.initial()
    }

    /// What the task template of `agent` sees as `agent`.
    pub fn agent_vars(&self, agent: &ResolvedAgent) -> AgentVars {
        AgentVars {
            name: agent.name.clone(),
            description: agent.description.clone(),
            provider: Some(agent.model.provider.clone()),
            model: agent.model.model.clone(),
            tools: agent.tools.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// The system prompt of `agent` against `state` and `inputs` (JSON objects). The target of
    /// a `for_each` edge is shown with the placeholder item `<an item of FIELD>` and index 0.
    pub fn system_prompt(
        &self,
        agent: &ResolvedAgent,
        state: &Value,
        inputs: &Value,
    ) -> Result<String, PromptError> {
        let vars = self.agent_vars(agent);
        let placeholder = self
            .topology
            .fan_out_field(agent.index)
            .map(|f| Value::String(format!("<an item of {f}>")));
        compose(
            &agent.layers,
            &PromptContext {
                state,
                inputs,
                agent: &vars,
                item: placeholder.as_ref().map(|v| (v, 0)),
            },
        )
    }

    /// The graph: node `0` is `START`, nodes `1..=n` the agents, node `n + 1` is `END`, node
    /// `n + 2` is `FAIL`; each edge's weight is the index of the `graph:` entry it comes from.
    /// `on_max_loops` routes are edges too, and so are `on_error` routes (weight `usize::MAX`).
    pub fn graph(&self) -> DiGraph<Node, usize> {
        crate::analysis::build_graph(&self.topology)
    }

    /// Runs every agent on provider `name` instead of its own (e.g. `--provider anthropic`),
    /// resolving each agent's model alias against that provider's `models`; so do the agents
    /// of called pipelines.
    pub fn use_provider(&mut self, name: &str) -> Result<(), Diagnostic> {
        let Some(provider) = self.providers.get(name) else {
            let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            return Err(Diagnostic::error(format!("unknown provider `{name}`"))
                .with_suggestions(name, names.iter().copied())
                .with_help(format!("providers: {}", names.join(", "))));
        };
        let mut models = Vec::new();
        for agent in self.agents.iter_mut().filter(|a| a.has_model()) {
            let choice = crate::providers::choose_model(provider, agent.model.requested.as_deref());
            agent.model = share_model(&mut models, choice);
        }
        // Called pipelines run on it too.
        for agent in &mut self.agents {
            if let Some(call) = &mut agent.call {
                call.compiled.use_provider(name).map_err(|d| {
                    let message = format!(
                        "in `{}` (called by `{}`): {}",
                        call.file, agent.name, d.message
                    );
                    Diagnostic { message, ..d }
                })?;
            }
        }
        Ok(())
    }
}

/// `choice` as an `Arc`, the one in `made` if an equal choice was made before (agents that
/// made the same choice share it).
pub(crate) fn share_model(
    made: &mut Vec<Arc<ModelChoice>>,
    choice: ModelChoice,
) -> Arc<ModelChoice> {
    if let Some(same) = made.iter().find(|m| ***m == choice) {
        return Arc::clone(same);
    }
    let shared = Arc::new(choice);
    made.push(Arc::clone(&shared));
    shared
}

/// (De)serializes a [`SourceFile`] as `{ path, text }`.
mod source_file {
    use std::path::PathBuf;

    use orchestra_spec::SourceFile;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Repr {
        path: PathBuf,
        text: String,
    }

    pub(super) fn serialize<S: Serializer>(f: &SourceFile, s: S) -> Result<S::Ok, S::Error> {
        Repr {
            path: f.path.clone(),
            text: f.text.to_string(),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SourceFile, D::Error> {
        let r = Repr::deserialize(d)?;
        Ok(SourceFile::new(r.path, r.text))
    }
}
