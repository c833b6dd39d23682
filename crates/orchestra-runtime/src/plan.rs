//! From a compiled pipeline to what the harness runs: provider clients (only those agents use),
//! the tool registry over the session's repository roots, agent plans, and the condition router.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use orchestra_graph::conditions::ConditionSource;
use orchestra_graph::state::State;
use orchestra_graph::{Compiled, Edge, ToolKind};
use orchestra_providers::{Provider, RateLimitHook, RateLimited};
use orchestra_tools::{Registry, RepoRoot};

use crate::error::SetupError;
use crate::events::{Event, EventSink};
use crate::exec_condition::run_condition;
use crate::executor::Router;
use crate::harness::AgentPlan;

/// A condition implemented in Rust: gets the state and inputs, returns target names.
pub type ConditionFn =
    Arc<dyn Fn(&State, &Map<String, Value>) -> Result<Vec<String>, String> + Send + Sync>;

/// How long an executable condition may run.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the provider clients used by the agents. `env` looks up environment variables (API
/// keys); `workdir` is where `command` agents run (never the user's checkout when the pipeline
/// writes: the session worktree); `events`, when given, hears when a provider's rate limit
/// makes calls wait ([`Event::RateLimited`]).
pub fn build_providers(
    compiled: &Compiled,
    env: &dyn Fn(&str) -> Option<String>,
    workdir: &Path,
    events: Option<Arc<dyn EventSink>>,
) -> Result<HashMap<String, Arc<dyn Provider>>, SetupError> {
    let on_rate_limit = events.map(|events| {
        RateLimitHook(Arc::new(move |e: &RateLimited| {
            events.emit(Event::RateLimited {
                provider: e.provider.clone(),
                limit: e.limit,
                waiting: e.waiting,
            });
        }))
    });
    let options = orchestra_providers::BuildOptions {
        workdir: Some(workdir.to_path_buf()),
        on_rate_limit,
        ..orchestra_providers::BuildOptions::default()
    };
    let mut out: HashMap<String, Arc<dyn Provider>> = HashMap::new();
    for agent in compiled.agents.iter().filter(|a| a.has_model()) {
        let name = &agent.model.provider;
        if out.contains_key(name) {
            continue;
        }
        let rp = compiled
            .providers
            .get(name)
            .ok_or_else(|| SetupError::UnknownProvider {
                agent: agent.name.clone(),
                provider: name.clone(),
            })?;
        let base = rp
            .declared_in
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let client = orchestra_providers::build_with(name, &rp.spec, &base, env, &options)
            .map_err(|source| SetupError::Provider {
                name: name.clone(),
                detail: describe(name, &source),
                source,
            })?;
        out.insert(name.clone(), client);
    }
    Ok(out)
}

/// A provider error's text with its causes (or the `file:line:col: message` of a bad
/// responses file), without the `provider NAME` that [`SetupError::Provider`] puts first.
fn describe(name: &str, e: &orchestra_providers::ProviderError) -> String {
    let msg = match e.diagnostic() {
        Some(d) => d.to_string(),
        None => crate::error::error_chain(e),
    };
    let prefix = format!("provider `{name}`: ");
    match msg.strip_prefix(&prefix) {
        Some(rest) => rest.to_owned(),
        None => msg,
    }
}

/// Checks that the pipeline's providers can be set up here (API keys set, responses files
/// readable) without starting anything: a configuration problem is found before a session
/// starts or resumes.
pub fn check_providers(
    compiled: &Compiled,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), SetupError> {
    build_providers(compiled, env, &compiled.project_root, None).map(drop)
}

/// The names of the environment variables holding API keys (hidden from shell tools).
pub fn key_env_names(compiled: &Compiled) -> Vec<String> {
    compiled
        .providers
        .values()
        .filter_map(|p| p.spec.api_key_env.clone())
        .collect()
}

/// The tool registry of a session: every repo's built-ins over `roots` (repo name -> directory
/// the tools act on), the shell tools, and `extra` (tools registered through the library).
pub fn build_tools(
    compiled: &Compiled,
    roots: &HashMap<String, PathBuf>,
    extra: Registry,
) -> Result<Registry, SetupError> {
    let repos: Vec<RepoRoot> = compiled
        .repos
        .iter()
        .map(|r| {
            let root = roots
                .get(&r.name)
                .cloned()
                .unwrap_or_else(|| r.path.clone());
            RepoRoot::new(r.name.clone(), root, r.write)
        })
        .collect();
    let mut reg = extra.hide_env(key_env_names(compiled));
    reg.add_workspace(&repos, &compiled.shell_tools, &compiled.project_root)
        .map_err(SetupError::Tools)?;
    Ok(reg)
}

/// The MCP servers of a drive (none running yet): the compiled `mcp_servers`, run in the
/// project root, `${VAR}`s looked up with `env`, provider API keys hidden from them.
pub fn mcp_servers(
    compiled: &Compiled,
    env: crate::engine::EnvLookup,
) -> orchestra_mcp::McpServers {
    orchestra_mcp::McpServers::new(
        compiled
            .mcp_servers
            .iter()
            .map(|(name, s)| (name.clone(), s.spec.clone())),
        compiled.project_root.clone(),
        env,
    )
    .hide_env(key_env_names(compiled))
}

/// The plans of every agent, in declaration order (`None` for command nodes: no model).
pub fn agent_plans(
    compiled: &Compiled,
    providers: &HashMap<String, Arc<dyn Provider>>,
    tools: &Registry,
) -> Result<Vec<Option<AgentPlan>>, SetupError> {
    let mut plans = Vec::with_capacity(compiled.agents.len());
    // Agents share their model's name (most pipelines use a handful of models).
    let mut models: HashMap<&str, Arc<str>> = HashMap::new();
    for agent in &compiled.agents {
        if !agent.has_model() {
            plans.push(None);
            continue;
        }
        let provider = providers
            .get(&agent.model.provider)
            .cloned()
            .ok_or_else(|| SetupError::UnknownProvider {
                agent: agent.name.clone(),
                provider: agent.model.provider.clone(),
            })?;
        let names: Vec<&str> = agent
            .tools
            .iter()
            .filter(|t| !matches!(t.kind, ToolKind::Mcp { .. }))
            .map(|t| t.name.as_str())
            .collect();
        let mcp: Vec<(String, String)> = agent
            .tools
            .iter()
            .filter_map(|t| match &t.kind {
                ToolKind::Mcp { server } => Some((server.clone(), t.tool.clone())),
                _ => None,
            })
            .collect();
        let defs = tools
            .definitions(&names)
            .map_err(|source| SetupError::AgentTools {
                agent: agent.name.clone(),
                source,
            })?;
        let spec = compiled
            .providers
            .get(&agent.model.provider)
            .map(|p| &p.spec);
        let model = agent.model.model.as_deref().unwrap_or_default();
        plans.push(Some(AgentPlan {
            provider,
            model: Arc::clone(models.entry(model).or_insert_with(|| model.into())),
            price: agent_price(compiled, agent),
            max_tokens: spec.and_then(|s| s.max_tokens),
            temperature: spec.and_then(|s| s.temperature),
            tools: defs,
            mcp,
            output_retries: agent.output_max_retries,
            max_turns: agent.max_turns,
            mode: agent.mode,
            timeout: agent.timeout.0,
        }));
    }
    Ok(plans)
}

/// The price of `agent`'s model (`None`: unknown; an agent without a model name has none).
pub fn agent_price(
    compiled: &Compiled,
    agent: &orchestra_graph::ResolvedAgent,
) -> Option<orchestra_providers::Price> {
    let model = agent.model.model.as_deref().filter(|m| !m.is_empty())?;
    orchestra_providers::price_of(model, &compiled.prices)
}

/// The models of `compiled`'s agents that have no known price, each once, in declaration
/// order: their runs' cost is unknown, and `limits.max_cost` cannot count it.
pub(crate) fn unpriced_models(compiled: &Compiled) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for agent in &compiled.agents {
        if agent_price(compiled, agent).is_none() {
            let name = agent
                .model
                .model
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("(the model of provider `{}`)", agent.model.provider));
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Evaluates the pipeline's conditions: rule files in-process, executables as subprocesses,
/// registered functions by name.
pub struct ConditionRouter {
    compiled: Arc<Compiled>,
    registered: HashMap<String, ConditionFn>,
}

impl std::fmt::Debug for ConditionRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionRouter").finish_non_exhaustive()
    }
}

impl ConditionRouter {
    /// A router over `compiled`'s conditions and the `registered` functions.
    pub fn new(compiled: Arc<Compiled>, registered: HashMap<String, ConditionFn>) -> Self {
        ConditionRouter {
            compiled,
            registered,
        }
    }
}

impl Router for ConditionRouter {
    fn may_block(&self) -> bool {
        self.compiled
            .conditions
            .values()
            .any(|c| matches!(c.source, ConditionSource::Executable { .. }))
    }

    fn decide(
        &self,
        edge: &Edge,
        state: &State,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<(Option<String>, Vec<String>), String> {
        if let Some(name) = &edge.condition
            && let Some(cond) = self.compiled.conditions.get(name)
            && let ConditionSource::Rules(rules) = &cond.source
        {
            return rules
                .decide(state, inputs, loops)
                .map(|(label, targets)| (Some(label), targets))
                .map_err(|e| e.to_string());
        }
        self.route(edge, state, inputs, loops).map(|t| (None, t))
    }

    fn route(
        &self,
        edge: &Edge,
        state: &State,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<Vec<String>, String> {
        let Some(name) = &edge.condition else {
            return Err("the edge has no condition".into());
        };
        let cond = self
            .compiled
            .conditions
            .get(name)
            .ok_or_else(|| format!("condition `{name}` is not resolved"))?;
        match &cond.source {
            ConditionSource::Rules(rules) => rules
                .evaluate(state, inputs, loops)
                .map_err(|e| e.to_string()),
            ConditionSource::Executable { path, .. } => {
                let payload =
                    serde_json::json!({ "state": state, "inputs": inputs, "loops": loops });
                run_condition(path, &payload, CONDITION_TIMEOUT)
            }
            ConditionSource::Registered => {
                let f = self
                    .registered
                    .get(name)
                    .ok_or_else(|| format!("condition `{name}` was declared as registered, but no function is registered under that name"))?;
                f(state, inputs)
            }
        }
    }
}
