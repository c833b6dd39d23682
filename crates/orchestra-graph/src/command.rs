//! Command nodes: an agent entry with `command: [argv]` runs a program instead of a model. Its
//! argv elements are templates over `state` and `inputs`; its output is `{exit_code, stdout,
//! stderr}`. Resolving one checks the argv, its repository and environment, and that nothing of
//! a model agent (prompt layers, model, tools, ...) is given with it.

use std::sync::Arc;

use orchestra_prompts::check_inline;
use orchestra_spec::{AgentSpec, Diagnostic, ProviderKind, Span, Spanned, span_at_path};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agents::AgentCtx;
use crate::compiled::{ModelChoice, ResolvedAgent};

/// How many bytes of each of stdout and stderr a command node keeps (its start and its end,
/// around a line saying how much was cut).
pub const COMMAND_MAX_OUTPUT: usize = 64 * 1024;

/// What a command node runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandNode {
    /// The argv as written: each element a minijinja template over `state` and `inputs`,
    /// rendered into exactly one argument.
    pub argv: Vec<String>,
    /// The repository it runs in (else the project root).
    pub repo: Option<String>,
    /// Fixed environment variables.
    pub env: Vec<(String, String)>,
}

/// The keys of an agent that a command node cannot have, and why.
pub(crate) const MODEL_KEYS: [&str; 10] = [
    "role",
    "persona",
    "personality",
    "task",
    "model",
    "provider",
    "tools",
    "output",
    "mode",
    "max_turns",
];

/// The JSON Schema of a command node's output; its `writes` point into it.
pub fn command_output_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "required": ["exit_code", "stdout", "stderr"],
        "additionalProperties": false,
        "properties": {
            "exit_code": { "type": "integer" },
            "stdout": { "type": "string" },
            "stderr": { "type": "string" }
        }
    })
}

/// Which of [`MODEL_KEYS`] `agent` sets.
pub(crate) fn model_keys_given(agent: &AgentSpec) -> Vec<&'static str> {
    let given = [
        agent.role.is_some(),
        agent.persona.is_some(),
        agent.personality.is_some(),
        agent.task.is_some(),
        agent.model.is_some(),
        agent.provider.is_some(),
        !agent.tools.is_empty(),
        agent.output.is_some(),
        agent.mode != orchestra_spec::Mode::Autonomous,
        agent.max_turns.is_some(),
    ];
    MODEL_KEYS
        .iter()
        .zip(given)
        .filter_map(|(k, g)| g.then_some(*k))
        .collect()
}

impl AgentCtx<'_, '_> {
    /// Resolves command node `name` (its `command` is `argv`), pushing problems to `diags`.
    pub(crate) fn resolve_command(
        &mut self,
        index: usize,
        name: &str,
        key_span: Span,
        agent: &AgentSpec,
        argv: &Spanned<Vec<Spanned<String>>>,
        diags: &mut Vec<Diagnostic>,
    ) -> ResolvedAgent {
        let src = self.src;
        for key in model_keys_given(agent) {
            let span = span_at_path(src, &["agents", name, key])
                .filter(|s| s.is_known())
                .unwrap_or(key_span);
            diags.push(
                Diagnostic::error(format!("`{key}` cannot be given with `command`"))
                    .at(src, span)
                    .with_label("a command node runs a program, not a model")
                    .with_help(format!(
                        "remove `{key}`, or make `{name}` a model agent by removing `command`"
                    )),
            );
        }
        if argv.value.is_empty() {
            diags.push(
                Diagnostic::error(format!("`command` of `{name}` is empty"))
                    .at(src, argv.span)
                    .with_label("no program to run")
                    .with_help(
                        "give the program then its arguments, e.g. `command: [cargo, test]`",
                    ),
            );
        } else if argv.value[0].value.trim().is_empty() {
            diags.push(
                Diagnostic::error("the program of `command` is empty")
                    .at(src, argv.value[0].span)
                    .with_label("the first element names the program to run"),
            );
        }
        // The target of a `for_each` edge also sees `item` and `item_index`.
        let scope = orchestra_prompts::TemplateScope {
            item: crate::foreach::is_target(self.spec, name),
            ..self.scope
        };
        for arg in &argv.value {
            diags.extend(check_inline(&arg.value, src, arg.span, &scope, "`command`"));
        }
        let repo = agent
            .repo
            .as_ref()
            .and_then(|r| self.command_repo(r, diags));
        let mut env = Vec::with_capacity(agent.env.len());
        for (key, span, value) in agent.env.iter() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                diags.push(
                    Diagnostic::error(format!("invalid environment variable name `{key}`"))
                        .at(src, span)
                        .with_label("names cannot be empty or hold `=`"),
                );
                continue;
            }
            env.push((key.to_owned(), value.clone()));
        }
        let schema = command_output_schema();
        let writes = self.writes(agent, Some(&schema), diags);
        let write_repos = repo
            .as_ref()
            .filter(|r| self.spec.workspace.repos.get(r).is_some_and(|s| s.write))
            .cloned()
            .into_iter()
            .collect();
        let limits = &self.spec.limits;
        ResolvedAgent {
            name: name.to_owned(),
            index,
            description: agent.description.clone(),
            layers: Vec::new(),
            model: Arc::new(ModelChoice {
                provider: String::new(),
                kind: ProviderKind::Command,
                model: None,
                alias: None,
                requested: None,
            }),
            tools: Vec::new(),
            output_schema: None,
            output_max_retries: 0,
            writes,
            mode: orchestra_spec::Mode::Autonomous,
            max_turns: 1,
            timeout: agent.timeout.unwrap_or(limits.node_timeout),
            retries: agent.retries.unwrap_or(limits.retries),
            write_repos,
            command: Some(Box::new(CommandNode {
                argv: argv.value.iter().map(|a| a.value.clone()).collect(),
                repo,
                env,
            })),
            call: None,
        }
    }

    /// The repository a command node names, if it is one of the workspace's.
    fn command_repo(&self, repo: &Spanned<String>, diags: &mut Vec<Diagnostic>) -> Option<String> {
        let repos = &self.spec.workspace.repos;
        if repos.contains_key(&repo.value) {
            return Some(repo.value.clone());
        }
        let names: Vec<&str> = repos.keys().collect();
        let mut d = Diagnostic::error(format!("unknown repository `{}`", repo.value))
            .at(self.src, repo.span)
            .with_label("not under `workspace.repos`")
            .with_suggestions(&repo.value, names.iter().copied());
        d = d.with_help(if names.is_empty() {
            "declare it: `workspace: { repos: { NAME: { path: ..., write: true } } }`".to_owned()
        } else {
            format!("repositories: {}", names.join(", "))
        });
        diags.push(d);
        None
    }
}

/// Complains about `repo` and `env` on an agent that is not a command node.
pub(crate) fn command_keys_without_command(
    ctx: &AgentCtx<'_, '_>,
    name: &str,
    agent: &AgentSpec,
    diags: &mut Vec<Diagnostic>,
) {
    let mut given: Vec<(&str, Span)> = Vec::new();
    if let Some(r) = &agent.repo {
        given.push(("repo", r.span));
    }
    if !agent.env.is_empty() {
        let span = span_at_path(ctx.src, &["agents", name, "env"]).unwrap_or_default();
        given.push(("env", span));
    }
    for (key, span) in given {
        diags.push(
            Diagnostic::error(format!("`{key}` is only for command nodes"))
                .at(ctx.src, span)
                .with_label(format!("`{name}` has no `command`"))
                .with_help(
                    "a model agent reaches repositories through its `tools` (`repo:read-file`, ...)",
                ),
        );
    }
}
