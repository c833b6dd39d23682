//! Resolving one agent: its prompt layers, provider and model, tools, output schema and state
//! writes, with a diagnostic for everything that does not refer to something real.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use orchestra_prompts::{LayerKind, LayerLoader, TemplateScope, check_task};
use orchestra_spec::{
    AgentSpec, BASE_CHANNELS, Diagnostic, END, FAIL, LimitsSpec, Mode, PipelineSpec, ProviderKind,
    START, SourceFile, Span, Spanned, closest,
};
use serde_json::Value;

use crate::compiled::{ModelChoice, ResolvedAgent, StateWrite, ToolKind, share_model};
use crate::providers::{ProviderEntry, choose_model};
use crate::workspace::{ToolIndex, is_ident};

/// A default setting and the file it was written in.
pub(crate) type Setting<'a> = Option<(&'a Spanned<String>, &'a SourceFile)>;

/// What resolving agents needs from the rest of the compile.
#[derive(Debug)]
pub(crate) struct AgentCtx<'a, 'l> {
    pub(crate) spec: &'a PipelineSpec,
    pub(crate) src: &'a SourceFile,
    pub(crate) pipeline_path: &'a Path,
    pub(crate) loader: &'a mut LayerLoader<'l>,
    pub(crate) scope: TemplateScope<'a>,
    pub(crate) providers: &'a IndexMap<String, ProviderEntry<'a>>,
    pub(crate) default_provider: Setting<'a>,
    pub(crate) default_model: Setting<'a>,
    pub(crate) tools: &'a ToolIndex,
    /// Task layer files already checked.
    pub(crate) checked: HashSet<PathBuf>,
    /// The model choices made so far: agents with the same one share it.
    pub(crate) models: Vec<Arc<ModelChoice>>,
    /// How the compile was asked for (call nodes compile their pipelines with it).
    pub(crate) opts: &'a crate::LoadOptions,
    /// The pipelines that called this one (`call:`), outermost first.
    pub(crate) callers: &'a [PathBuf],
    /// The project root.
    pub(crate) project_root: &'a Path,
}

impl AgentCtx<'_, '_> {
    /// Resolves agent `name` (declared at `key_span`), pushing problems to `diags`.
    pub(crate) fn resolve(
        &mut self,
        index: usize,
        name: &str,
        key_span: Span,
        agent: &AgentSpec,
        diags: &mut Vec<Diagnostic>,
    ) -> ResolvedAgent {
        let src = self.src;
        if name == START || name == END || name == FAIL {
            diags.push(
                Diagnostic::error(format!("`{name}` is reserved"))
                    .at(src, key_span)
                    .with_label(
                        "START, END and FAIL are the graph's entry and exits; name the agent differently",
                    ),
            );
        } else if !is_ident(name) {
            diags.push(
                Diagnostic::error(format!("invalid agent name `{name}`"))
                    .at(src, key_span)
                    .with_label("use letters, digits, `-` and `_`"),
            );
        }
        if let Some(file) = &agent.call {
            return self.resolve_call(index, name, key_span, agent, file, diags);
        }
        if let Some(argv) = &agent.command {
            return self.resolve_command(index, name, key_span, agent, argv, diags);
        }
        crate::call::call_keys_without_call(self, name, agent, diags);
        crate::command::command_keys_without_command(self, name, agent, diags);
        let layers = self.layers(name, agent, diags);
        let model = self.model(name, key_span, agent, diags);
        let model = share_model(&mut self.models, model);
        let mut tools = Vec::with_capacity(agent.tools.len());
        for (i, t) in agent.tools.iter().enumerate() {
            if agent.tools[..i].iter().any(|p| p.value == t.value) {
                diags.push(
                    Diagnostic::warning(format!("tool `{}` is listed twice", t.value))
                        .at(src, t.span)
                        .with_label("already in this agent's `tools`"),
                );
                continue;
            }
            match self.tools.resolve(t, self.spec, src) {
                Ok(r) => tools.push(r),
                Err(d) => diags.push(d),
            }
        }
        let write_repos = write_repos(self.spec, &tools);
        let output_schema = agent.output.as_ref().map(|o| {
            check_schema(name, &o.schema, src, diags);
            Box::new(o.schema.value.clone())
        });
        // An interactive agent's output is the chat's envelope (see `interactive_output_schema`).
        let writes = match agent.mode {
            Mode::Interactive => {
                let envelope = interactive_output_schema(output_schema.as_deref());
                self.writes(agent, Some(&envelope), diags)
            }
            Mode::Autonomous => self.writes(agent, output_schema.as_deref(), diags),
        };
        let limits: &LimitsSpec = &self.spec.limits;
        ResolvedAgent {
            name: name.to_owned(),
            index,
            description: agent.description.clone(),
            layers,
            model,
            tools,
            output_schema,
            output_max_retries: agent
                .output
                .as_ref()
                .and_then(|o| o.max_retries)
                .unwrap_or(2),
            writes,
            mode: agent.mode,
            max_turns: agent.max_turns.unwrap_or(limits.max_turns),
            timeout: agent.timeout.unwrap_or(limits.node_timeout),
            retries: agent.retries.unwrap_or(limits.retries),
            write_repos,
            command: None,
            call: None,
        }
    }

    fn layers(
        &mut self,
        name: &str,
        agent: &AgentSpec,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<orchestra_prompts::ResolvedLayer> {
        let given = [
            (LayerKind::Role, &agent.role),
            (LayerKind::Persona, &agent.persona),
            (LayerKind::Personality, &agent.personality),
            (LayerKind::Task, &agent.task),
        ];
        // Sized exactly: pipelines of a thousand agents keep one of these per agent.
        let mut out = Vec::with_capacity(given.iter().filter(|(_, l)| l.is_some()).count());
        for (kind, layer) in given {
            let Some(layer) = layer else { continue };
            let Some(r) = self
                .loader
                .resolve(kind, layer, self.src, self.pipeline_path, diags)
            else {
                continue;
            };
            // A named task file is checked once, however many agents use it.
            if kind == LayerKind::Task && (r.is_inline() || self.checked.insert(r.path.clone())) {
                let source = self.loader.source_of(&r).unwrap_or(self.src);
                // The target of a `for_each` edge also sees `item` and `item_index`.
                let scope = TemplateScope {
                    item: crate::foreach::is_target(self.spec, name),
                    ..self.scope
                };
                diags.extend(check_task(&r, source, &scope));
            }
            out.push(r);
        }
        out
    }

    fn model(
        &self,
        name: &str,
        key_span: Span,
        agent: &AgentSpec,
        diags: &mut Vec<Diagnostic>,
    ) -> ModelChoice {
        let provider: Setting<'_> = agent
            .provider
            .as_ref()
            .map(|p| (p, self.src))
            .or(self.default_provider);
        let requested: Setting<'_> = agent
            .model
            .as_ref()
            .map(|m| (m, self.src))
            .or(self.default_model);
        let unresolved = ModelChoice {
            provider: provider.map(|p| p.0.value.clone()).unwrap_or_default(),
            kind: ProviderKind::Scripted,
            model: None,
            alias: None,
            requested: requested.map(|m| m.0.value.clone()),
        };
        let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        let Some((pname, psrc)) = provider else {
            diags.push(
                Diagnostic::error(format!("agent `{name}` has no provider"))
                    .at(self.src, key_span)
                    .with_label("no `provider:` here and no `defaults.provider`")
                    .with_help("set `defaults: { provider: NAME }` in the pipeline or orchestra.yaml, or `provider:` on the agent")
                    .with_help(format!("providers: {}", names.join(", "))),
            );
            return unresolved;
        };
        let Some(entry) = self.providers.get(&pname.value) else {
            let mut d = Diagnostic::error(format!("unknown provider `{}`", pname.value))
                .at(psrc, pname.span)
                .with_label("not a provider of the pipeline or of orchestra.yaml")
                .with_suggestions(&pname.value, names.iter().copied());
            d = d.with_help(if names.is_empty() {
                "no providers are defined: add some under `providers:`".to_owned()
            } else {
                format!("providers: {}", names.join(", "))
            });
            diags.push(d);
            return unresolved;
        };
        let p = &entry.resolved;
        let choice = choose_model(p, requested.map(|m| m.0.value.as_str()));
        if let Some((m, msrc)) = requested
            && choice.alias.is_none()
            && !p.spec.models.is_empty()
            && !closest(&m.value, p.spec.models.keys()).is_empty()
        {
            diags.push(
                Diagnostic::warning(format!(
                    "model `{}` is not an alias of provider `{}`; it is sent as a literal model name",
                    m.value, p.name
                ))
                .at(msrc, m.span)
                .with_suggestions(&m.value, p.spec.models.keys())
                .with_help(format!(
                    "aliases of `{}`: {}",
                    p.name,
                    p.spec.models.keys().collect::<Vec<_>>().join(", ")
                )),
            );
        }
        if choice.model.is_none() && choice.kind.needs_model() {
            diags.push(
                Diagnostic::error(format!("agent `{name}` has no model"))
                    .at(self.src, key_span)
                    .with_label(format!("provider `{}` needs a model", p.name))
                    .with_help("set `model:` on the agent or `defaults.model` (an alias of the provider's `models`, or a model name)"),
            );
        }
        choice
    }

    pub(crate) fn writes(
        &self,
        agent: &AgentSpec,
        schema: Option<&Value>,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<StateWrite> {
        let src = self.src;
        let declared: Vec<&str> = self.spec.state.keys().collect();
        let mut out = Vec::new();
        for (field, key_span, ptr) in agent.writes.iter() {
            if BASE_CHANNELS.contains(&field) {
                diags.push(
                    Diagnostic::error(format!("`{field}` cannot be written by an agent"))
                        .at(src, key_span)
                        .with_label("a base channel, filled automatically")
                        .with_help("every agent's output goes to `agent_outputs` and its final text to `messages`; declare a field under `state:` to write to"),
                );
                continue;
            }
            if !self.spec.state.contains_key(field) {
                let mut d = Diagnostic::error(format!("unknown state field `{field}`"))
                    .at(src, key_span)
                    .with_label("not declared under `state:`")
                    .with_suggestions(field, declared.iter().copied());
                d = d.with_help(if declared.is_empty() {
                    format!("declare it: `state: {{ {field}: {{ type: any }} }}`")
                } else {
                    format!("declared fields: {}", declared.join(", "))
                });
                diags.push(d);
                continue;
            }
            if let Err(why) = check_pointer(&ptr.value) {
                diags.push(
                    Diagnostic::error(format!("invalid JSON pointer `{}`", ptr.value))
                        .at(src, ptr.span)
                        .with_label(why)
                        .with_help("a JSON pointer is `\"\"` (the whole output) or starts with `/`, e.g. `/findings` or `/review/summary`"),
                );
                continue;
            }
            match schema {
                None if !ptr.value.is_empty() => diags.push(
                    Diagnostic::error(format!("`{}` points into an output that is text", ptr.value))
                        .at(src, ptr.span)
                        .with_label("this agent has no `output.schema`, so its output is its final text")
                        .with_help("give the agent `output: { schema: ... }`, or write the whole text with `\"\"`"),
                ),
                Some(s) => check_pointer_in_schema(&ptr.value, s, src, ptr.span, diags),
                None => {}
            }
            out.push(StateWrite {
                field: field.to_owned(),
                pointer: ptr.value.clone(),
            });
        }
        out
    }
}

/// The output of an interactive agent (`mode: interactive`): however the human ends the chat
/// (`/done`, `/approve`, `/reject`), the output is `{verdict, answer, comment}` — the command's
/// verdict, the agent's last answer (JSON under `output.schema`, else text) and the text typed
/// after the command. `writes:` of interactive agents point into this.
pub fn interactive_output_schema(answer: Option<&Value>) -> Value {
    serde_json::json!({
        "type": "object",
        "required": ["verdict", "answer", "comment"],
        "additionalProperties": false,
        "properties": {
            "verdict": { "type": "string", "enum": ["done", "approve", "reject"] },
            "answer": answer.cloned().unwrap_or_else(|| serde_json::json!({ "type": "string" })),
            "comment": { "type": "string" }
        }
    })
}

/// Writable repositories an agent can change, through `write-file` or a shell tool.
fn write_repos(spec: &PipelineSpec, tools: &[crate::compiled::ToolRef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tools {
        let Some(repo) = &t.repo else { continue };
        let writes = match &t.kind {
            ToolKind::Builtin { writes } => *writes,
            ToolKind::Shell { .. } => true,
            ToolKind::Registered | ToolKind::Mcp { .. } => false,
        };
        if writes && spec.workspace.repos.get(repo).is_some_and(|r| r.write) && !out.contains(repo)
        {
            out.push(repo.clone());
        }
    }
    out
}

/// Checks RFC 6901 syntax: empty, or `/`-separated tokens where `~` is followed by 0 or 1.
pub(crate) fn check_pointer(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if !p.starts_with('/') {
        return Err("does not start with `/`".into());
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
            return Err("`~` must be followed by `0` (for `~`) or `1` (for `/`)".into());
        }
    }
    Ok(())
}

/// Checks agent `agent`'s output schema, pointing at the offending key when there is one.
fn check_schema(
    agent: &str,
    schema: &Spanned<Value>,
    src: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) {
    let (err, at) = match jsonschema::meta::validate(&schema.value) {
        Err(e) if e.instance_path().to_string().ends_with("/type") => {
            let found = e.instance().to_string();
            (
                format!(
                    "{found} is not a JSON type; expected one of: array, boolean, integer, null, number, object, string"
                ),
                e.instance_path().to_string(),
            )
        }
        Err(e) => (e.to_string(), e.instance_path().to_string()),
        Ok(()) => match jsonschema::validator_for(&schema.value) {
            Ok(_) => return,
            Err(e) => {
                let at = e.instance_path().to_string();
                (e.to_string(), at)
            }
        },
    };
    // The offending key: where the error's path leads, else a `$ref` the validator could not
    // follow, else the schema itself.
    let mut path: Vec<String> = ["agents", agent, "output", "schema"]
        .map(str::to_owned)
        .to_vec();
    path.extend(
        at.split('/')
            .skip(1)
            .map(|seg| seg.replace("~1", "/").replace("~0", "~")),
    );
    if at.is_empty()
        && let Some(r) = ref_path(&schema.value)
    {
        path.extend(r);
    }
    let steps: Vec<&str> = path.iter().map(String::as_str).collect();
    let span = orchestra_spec::span_at_path(src, &steps)
        .filter(|s| s.is_known())
        .unwrap_or(schema.span);
    let help = if err.contains("is not present in a registry") {
        "schemas are not fetched: write the referenced schema inline, or under `$defs` and refer to it as `#/$defs/NAME`"
    } else {
        "`output.schema` is a JSON Schema (draft 2020-12), e.g. `{ type: object, required: [findings], properties: { findings: { type: array } } }`"
    };
    diags.push(
        Diagnostic::error("invalid output schema")
            .at(src, span)
            .with_label(err)
            .with_help(help),
    );
}

/// The path to the first `$ref` in `schema` that is not local to it (`#...`).
fn ref_path(schema: &Value) -> Option<Vec<String>> {
    match schema {
        Value::Object(m) => {
            if m.get("$ref")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.starts_with('#'))
            {
                return Some(vec!["$ref".to_owned()]);
            }
            m.iter().find_map(|(k, v)| {
                ref_path(v).map(|mut p| {
                    p.insert(0, k.clone());
                    p
                })
            })
        }
        Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
            ref_path(v).map(|mut p| {
                p.insert(0, i.to_string());
                p
            })
        }),
        _ => None,
    }
}

/// Warns (or errors, when the schema forbids other properties) when the first token of
/// `pointer` is not a property of `schema`.
fn check_pointer_in_schema(
    pointer: &str,
    schema: &Value,
    src: &SourceFile,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(first) = pointer.split('/').nth(1) else {
        return;
    };
    let first = first.replace("~1", "/").replace("~0", "~");
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    if props.contains_key(&first) {
        return;
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    let msg = format!("the output schema has no property `{first}`");
    let d = if closed {
        Diagnostic::error(msg)
    } else {
        Diagnostic::warning(msg)
    };
    diags.push(
        d.at(src, span)
            .with_label(if closed {
                "the schema does not allow other properties"
            } else {
                "this write is empty unless the output happens to have it"
            })
            .with_suggestions(&first, props.keys().map(String::as_str))
            .with_help(format!(
                "properties: {}",
                props.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointer_syntax() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/b~0c~1d").is_ok());
        assert!(check_pointer("/").is_ok());
        assert_eq!(check_pointer("a").unwrap_err(), "does not start with `/`");
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }
}
