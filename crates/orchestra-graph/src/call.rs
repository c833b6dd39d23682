//! Call nodes: an agent entry with `call: FILE` runs another pipeline as a child session. The
//! called pipeline is compiled with its caller (its paths relative to the calling file, its
//! diagnostics with its own spans); a call cycle is an error naming the chain. `with:` fills the
//! child's inputs: its keys must be inputs the child declares, static values are checked against
//! the input's type and `enum` here, templates when the node runs. The node's output is the
//! child's final state plus `outputs` (the text of each of its `outputs:` files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestra_prompts::check_inline;
use orchestra_spec::{
    AgentSpec, Diagnostic, ProviderKind, Span, Spanned, display_path, span_at_path,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::agents::AgentCtx;
use crate::command::model_keys_given;
use crate::compiled::{Compiled, ModelChoice, ResolvedAgent};
use crate::load::{load_called, normalize};

/// What a call node runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallNode {
    /// The called file as written (relative to the calling pipeline's directory).
    pub file: String,
    /// The child's inputs: input name -> a minijinja template over the caller's `state` and
    /// `inputs` (a string), or a value given as it is.
    pub with: Vec<(String, Value)>,
    /// The called pipeline, compiled.
    pub compiled: Box<Compiled>,
}

impl CallNode {
    /// The text of `with` value `v` before it is read as its input's type: a string as it is
    /// (a template, to be rendered), anything else as JSON.
    pub fn text_of(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Whether `with` value `v` is a template (rendered when the node runs).
    pub fn is_template(v: &Value) -> bool {
        v.as_str()
            .is_some_and(|s| s.contains("{{") || s.contains("{%"))
    }
}

/// The output of a call node whose child ended with `state` and wrote `outputs` (name -> text):
/// the state's fields, plus `outputs`.
pub fn call_output(state: &Map<String, Value>, outputs: Map<String, Value>) -> Value {
    let mut out = state.clone();
    out.insert("outputs".to_owned(), Value::Object(outputs));
    Value::Object(out)
}

/// The JSON Schema of a call node's output (see [`call_output`]); its `writes` point into it.
fn call_output_schema(child: &Compiled) -> Value {
    let mut props: Map<String, Value> = child
        .channels
        .iter()
        .map(|c| (c.name.clone(), json!({})))
        .collect();
    let outputs: Map<String, Value> = child
        .outputs
        .iter()
        .map(|(name, _, _)| (name.to_owned(), json!({ "type": "string" })))
        .collect();
    props.insert(
        "outputs".to_owned(),
        json!({ "type": "object", "additionalProperties": false, "properties": outputs }),
    );
    json!({ "type": "object", "additionalProperties": false, "properties": props })
}

impl AgentCtx<'_, '_> {
    /// Resolves call node `name` (its `call` is `file`), pushing problems to `diags`.
    pub(crate) fn resolve_call(
        &mut self,
        index: usize,
        name: &str,
        key_span: Span,
        agent: &AgentSpec,
        file: &Spanned<String>,
        diags: &mut Vec<Diagnostic>,
    ) -> ResolvedAgent {
        let src = self.src;
        let mut given = model_keys_given(agent);
        for (key, set) in [
            ("command", agent.command.is_some()),
            ("repo", agent.repo.is_some()),
            ("env", !agent.env.is_empty()),
            // The child's agents have their own timeouts; the call waits for the child.
            ("timeout", agent.timeout.is_some()),
        ] {
            if set {
                given.push(key);
            }
        }
        for key in given {
            let span = span_at_path(src, &["agents", name, key])
                .filter(|s| s.is_known())
                .unwrap_or(key_span);
            diags.push(
                Diagnostic::error(format!("`{key}` cannot be given with `call`"))
                    .at(src, span)
                    .with_label("a call node runs another pipeline, not a model or a program")
                    .with_help(format!(
                        "remove `{key}`, or set it in the called pipeline's agents"
                    )),
            );
        }
        let child = self.compile_child(name, file, diags);
        let mut with = Vec::with_capacity(agent.with.len());
        for (key, key_span, value) in agent.with.iter() {
            if let Some(text) = value.value.as_str()
                && CallNode::is_template(&value.value)
            {
                diags.extend(check_inline(text, src, value.span, &self.scope, "`with`"));
            }
            with.push((key.to_owned(), value.value.clone()));
            let Some(child) = &child else { continue };
            let Some(input) = child.inputs.iter().find(|i| i.name == key) else {
                let names: Vec<&str> = child.inputs.iter().map(|i| i.name.as_str()).collect();
                diags.push(
                    Diagnostic::error(format!("`{}` has no input `{key}`", file.value))
                        .at(src, key_span)
                        .with_label("not under the called pipeline's `inputs:`")
                        .with_suggestions(key, names.iter().copied())
                        .with_help(if names.is_empty() {
                            "the called pipeline declares no inputs".to_owned()
                        } else {
                            format!("its inputs: {}", names.join(", "))
                        }),
                );
                continue;
            };
            if CallNode::is_template(&value.value) {
                continue;
            }
            let checked = child.inputs_with(&[(key.to_owned(), CallNode::text_of(&value.value))]);
            if let Some((_, why)) = checked.invalid.iter().find(|(k, _)| k == key) {
                diags.push(
                    Diagnostic::error(format!("invalid value for input `{}`: {why}", input.name))
                        .at(src, value.span)
                        .with_label(format!("`{}` takes {}", input.name, input.ty.article())),
                );
            }
        }
        if let Some(child) = &child {
            let missing: Vec<&str> = child
                .inputs
                .iter()
                .filter(|i| i.is_required() && i.default.is_none())
                .filter(|i| agent.with.get(&i.name).is_none())
                .map(|i| i.name.as_str())
                .collect();
            if !missing.is_empty() {
                let span = span_at_path(src, &["agents", name, "with"])
                    .filter(|s| s.is_known())
                    .unwrap_or(file.span);
                diags.push(
                    Diagnostic::error(format!(
                        "`{name}` does not give the required input{} {} of `{}`",
                        if missing.len() == 1 { "" } else { "s" },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        file.value
                    ))
                    .at(src, span)
                    .with_label("the called pipeline requires it")
                    .with_help(format!(
                        "add it: `with: {{ {}: \"{{{{ inputs.NAME }}}}\" }}`",
                        missing[0]
                    )),
                );
            }
        }
        // Without the child (it did not compile), pointers cannot be checked: any will do.
        let schema = child
            .as_deref()
            .map_or_else(|| json!({}), call_output_schema);
        let writes = self.writes(agent, Some(&schema), diags);
        if let Some(child) = &child {
            for (_, _, ptr) in agent.writes.iter() {
                check_output_name(&ptr.value, child, src, ptr.span, diags);
            }
        }
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
            write_repos: Vec::new(),
            command: None,
            call: child.map(|compiled| {
                Box::new(CallNode {
                    file: file.value.clone(),
                    with,
                    compiled,
                })
            }),
        }
    }

    /// Compiles the pipeline `file` called by `name`; `None` (with the reasons in `diags`)
    /// when it cannot be.
    fn compile_child(
        &mut self,
        name: &str,
        file: &Spanned<String>,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Box<Compiled>> {
        let src = self.src;
        let dir = self.pipeline_path.parent().unwrap_or(Path::new("/"));
        let path = normalize(&dir.join(&file.value));
        let shown = |p: &Path| display_path(p, &self.opts.cwd).display().to_string();
        let mut chain: Vec<PathBuf> = self.callers.to_vec();
        chain.push(self.pipeline_path.to_path_buf());
        if let Some(first) = chain.iter().position(|p| *p == path) {
            let cycle: Vec<String> = chain[first..]
                .iter()
                .chain(std::iter::once(&path))
                .map(|p| shown(p))
                .collect();
            diags.push(
                Diagnostic::error(format!("call cycle: {}", cycle.join(" -> ")))
                    .at(src, file.span)
                    .with_label(format!("`{name}` calls a pipeline that is already running"))
                    .with_help("a pipeline cannot call itself, directly or through others"),
            );
            return None;
        }
        if !path.is_file() {
            diags.push(
                Diagnostic::error(format!("cannot read `{}`: no such file", file.value))
                    .at(src, file.span)
                    .with_label(format!("looked for {}", shown(&path)))
                    .with_help("`call` is relative to the directory of the calling pipeline"),
            );
            return None;
        }
        match load_called(&path, self.opts, &chain) {
            Ok(child) => {
                if child.project_root != self.project_root {
                    diags.push(
                        Diagnostic::error(format!(
                            "`{}` belongs to another project ({})",
                            file.value,
                            child.project_root.display()
                        ))
                        .at(src, file.span)
                        .with_label("a called pipeline must be in the caller's project")
                        .with_help("move it under the directory of this project's orchestra.yaml"),
                    );
                    return None;
                }
                diags.extend(child.warnings.iter().cloned());
                Some(Box::new(child))
            }
            Err(errors) => {
                let count = errors.iter().filter(|d| d.is_error()).count();
                diags.push(
                    Diagnostic::error(format!(
                        "the pipeline `{name}` calls does not compile ({count} error{})",
                        if count == 1 { "" } else { "s" }
                    ))
                    .at(src, file.span)
                    .with_label(format!("see the errors in {}", shown(&path))),
                );
                diags.extend(errors);
                None
            }
        }
    }
}

/// A `writes` pointer `/outputs/NAME` must name one of the child's `outputs:`.
fn check_output_name(
    pointer: &str,
    child: &Compiled,
    src: &orchestra_spec::SourceFile,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) {
    let mut parts = pointer.split('/').skip(1);
    let (Some("outputs"), Some(out)) = (parts.next(), parts.next()) else {
        return;
    };
    let out = out.replace("~1", "/").replace("~0", "~");
    if child.outputs.get(&out).is_some() {
        return;
    }
    let names: Vec<&str> = child.outputs.iter().map(|(n, _, _)| n).collect();
    diags.push(
        Diagnostic::error(format!("the called pipeline has no output `{out}`"))
            .at(src, span)
            .with_label("not under its `outputs:`")
            .with_suggestions(&out, names.iter().copied())
            .with_help(if names.is_empty() {
                "it declares no `outputs:`; read a state field instead, e.g. `/FIELD`".to_owned()
            } else {
                format!("its outputs: {}", names.join(", "))
            }),
    );
}

/// Complains about `with` on an agent that is not a call node.
pub(crate) fn call_keys_without_call(
    ctx: &AgentCtx<'_, '_>,
    name: &str,
    agent: &AgentSpec,
    diags: &mut Vec<Diagnostic>,
) {
    if agent.with.is_empty() {
        return;
    }
    let span = span_at_path(ctx.src, &["agents", name, "with"]).unwrap_or_default();
    diags.push(
        Diagnostic::error("`with` is only for call nodes")
            .at(ctx.src, span)
            .with_label(format!("`{name}` has no `call`"))
            .with_help("give the pipeline to run: `call: phases/NAME.yaml`"),
    );
}
