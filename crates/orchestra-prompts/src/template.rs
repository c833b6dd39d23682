//! The task layer as a minijinja template: compile-time checks (syntax, variables) and rendering
//! with strict undefined, so a missing variable is an error naming the variable, file and line.

use std::path::PathBuf;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, escape_formatter};
use orchestra_spec::{Diagnostic, SourceFile, Span};
use serde::{Deserialize, Serialize};

use crate::layer::ResolvedLayer;

/// Most template instructions one render may execute (stops runaway loops).
const FUEL: u64 = 20_000_000;

/// The fields of the `agent` variable a task template can use.
pub const AGENT_FIELDS: [&str; 5] = ["name", "description", "provider", "model", "tools"];

/// Said of an unknown filter or test: where the known ones are listed.
pub const UNKNOWN_CALLABLE_HELP: &str = "templates have minijinja's built-in filters (`default`, `length`, `upper`, `join`, `tojson`, ...) and tests (`defined`, `none`, `odd`, `startingwith`, ...); see the minijinja documentation";

/// Functions minijinja provides to every template.
const GLOBALS: [&str; 4] = ["range", "dict", "namespace", "debug"];

/// What a task template sees as `agent`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentVars {
    /// The agent's name.
    pub name: String,
    /// The agent's description.
    pub description: Option<String>,
    /// The provider it runs on.
    pub provider: Option<String>,
    /// The model name it uses.
    pub model: Option<String>,
    /// Its tools' full names.
    pub tools: Vec<String>,
}

/// The values a system prompt is composed against.
#[derive(Clone, Copy, Debug)]
pub struct PromptContext<'a> {
    /// The graph state (an object of channels).
    pub state: &'a serde_json::Value,
    /// The pipeline's inputs (an object of strings).
    pub inputs: &'a serde_json::Value,
    /// The agent being prompted.
    pub agent: &'a AgentVars,
    /// For an instance of a `for_each` target: its item and the item's 0-based index.
    pub item: Option<(&'a serde_json::Value, u32)>,
}

/// Why a task template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The template uses a variable that has no value.
    #[error("undefined variable `{variable}` in task template {}:{line}", path.display())]
    Undefined {
        /// The variable as written, e.g. `state.plan`.
        variable: String,
        /// The file holding the template.
        path: PathBuf,
        /// The line of that file.
        line: u32,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
    /// The template is not valid minijinja.
    #[error("invalid task template {}:{line}: {detail}", path.display())]
    Syntax {
        /// The file holding the template.
        path: PathBuf,
        /// The line of that file.
        line: u32,
        /// What is wrong.
        detail: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
    /// Rendering failed for another reason (a filter error, too much work, ...).
    #[error("cannot render task template {}:{line}: {detail}", path.display())]
    Render {
        /// The file holding the template.
        path: PathBuf,
        /// The line of that file.
        line: u32,
        /// What went wrong.
        detail: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
}

/// The template environment of every text orchestra renders from a pipeline: strict undefined, `trim_blocks` + `lstrip_blocks` (a line holding
/// only a `{% ... %}` tag leaves no blank line), `null` rendered as nothing, and a fuel limit.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            escape_formatter(out, state, value)
        }
    });
    env
}

/// Composes the system prompt: the role, persona, personality and task layers in that order,
/// separated by a blank line; the task layer is rendered against `ctx`.
pub fn compose(layers: &[ResolvedLayer], ctx: &PromptContext<'_>) -> Result<String, PromptError> {
    let mut parts: Vec<String> = Vec::with_capacity(layers.len());
    let mut ordered: Vec<&ResolvedLayer> = layers.iter().collect();
    ordered.sort_by_key(|l| l.kind);
    for layer in ordered {
        let text = if layer.kind == crate::LayerKind::Task {
            render_task(layer, ctx)?
        } else {
            layer.text.clone()
        };
        let text = text.trim();
        if !text.is_empty() {
            parts.push(text.to_owned());
        }
    }
    Ok(parts.join("\n\n"))
}

/// Renders a task layer against `ctx` with strict undefined.
pub fn render_task(layer: &ResolvedLayer, ctx: &PromptContext<'_>) -> Result<String, PromptError> {
    // Text with no tag, expression or comment renders as itself (less the one trailing newline
    // minijinja drops): no environment to build and no template to compile, which was a tenth
    // of a 1000-agent fan-out's time.
    if !is_template(&layer.text) {
        let text = layer.text.as_str();
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        return Ok(text.to_owned());
    }
    render_template(layer, ctx)
}

/// [`render_task`] through minijinja.
fn render_template(layer: &ResolvedLayer, ctx: &PromptContext<'_>) -> Result<String, PromptError> {
    let env = environment();
    let path = layer.path.clone();
    let tmpl = env
        .template_from_str(&layer.text)
        .map_err(|e| PromptError::Syntax {
            path: path.clone(),
            line: layer.file_line(e.line().unwrap_or(1)),
            detail: detail(&e),
            source: e,
        })?;
    let base = minijinja::context! {
        state => minijinja::Value::from(minijinja::value::Serde(ctx.state)),
        inputs => minijinja::Value::from(minijinja::value::Serde(ctx.inputs)),
        agent => minijinja::Value::from(minijinja::value::Serde(ctx.agent)),
    };
    let vars = match ctx.item {
        Some((item, index)) => minijinja::context! {
            item => minijinja::Value::from(minijinja::value::Serde(item)),
            item_index => index,
            ..base
        },
        None => base,
    };
    tmpl.render(vars).map_err(|e| {
        let line = layer.file_line(e.line().unwrap_or(1));
        if e.kind() == ErrorKind::UndefinedError {
            PromptError::Undefined {
                variable: failing_source(&e, &layer.text).unwrap_or_else(|| detail(&e)),
                path,
                line,
                source: e,
            }
        } else {
            PromptError::Render {
                path,
                line,
                detail: detail(&e),
                source: e,
            }
        }
    })
}

/// Whether `text` has any template syntax (`{{`, `{%` or `{#`); without, it renders as itself.
fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

fn detail(e: &minijinja::Error) -> String {
    e.detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned)
}

/// The template source of the failing expression, e.g. `state.plan`.
fn failing_source(e: &minijinja::Error, text: &str) -> Option<String> {
    e.range()
        .and_then(|r| text.get(r))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The names a task template may refer to, for compile-time checks.
#[derive(Clone, Copy, Debug)]
pub struct TemplateScope<'a> {
    /// State channels (base and declared).
    pub state: &'a [String],
    /// Declared inputs.
    pub inputs: &'a [String],
    /// Whether `item` and `item_index` are defined (the target of a `for_each` edge).
    pub item: bool,
}

/// Checks a task layer at compile time: template syntax, and that every variable it uses exists
/// (`state.X` a channel, `agent.X` a field; `inputs.X` undeclared is a warning). `source` is the
/// file the layer's text lives in.
pub fn check_task(
    layer: &ResolvedLayer,
    source: &SourceFile,
    scope: &TemplateScope<'_>,
) -> Vec<Diagnostic> {
    let env = environment();
    let tmpl = match env.template_from_str(&layer.text) {
        Ok(t) => t,
        Err(e) => {
            let tline = e.line().unwrap_or(1);
            let token = failing_source(&e, &layer.text).unwrap_or_default();
            let span = span_of(source, layer.file_line(tline), &token);
            let mut d = Diagnostic::error(format!("invalid task template: {}", detail(&e)))
                .at(source, span)
                .with_label("minijinja syntax error");
            if detail(&e).contains("end of input") {
                d = d.with_help(
                    "is a `{% for %}` or `{% if %}` missing its `{% endfor %}` or `{% endif %}`?",
                );
            }
            return vec![d.with_help(
                "task templates use minijinja (Jinja2) syntax: `{{ state.field }}`, `{% if ... %}...{% endif %}`",
            )];
        }
    };
    let mut vars: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    vars.sort();
    let mut diags: Vec<Diagnostic> = crate::unknown_callables(&env, &layer.text, false)
        .into_iter()
        .map(|u| {
            Diagnostic::error(format!(
                "unknown {} `{}` in task template",
                u.kind.as_str(),
                u.name
            ))
            .at(
                source,
                span_of(source, layer.file_line(u.line as usize), &u.name),
            )
            .with_label(format!("no such {}", u.kind.as_str()))
            .with_help(UNKNOWN_CALLABLE_HELP)
        })
        .collect();
    for var in vars {
        // `state.metadata.conflicts` is checked as `state.metadata`: what lies below a channel
        // is data, not something the compiler knows.
        let (root, field) = match var.split_once('.') {
            Some((r, f)) => (r, Some(f.split('.').next().unwrap_or(f))),
            None => (var.as_str(), None),
        };
        let span = || {
            let tline = template_line_of(&layer.text, &var);
            span_of(source, layer.file_line(tline), &var)
        };
        match (root, field) {
            ("state", Some(f)) if !scope.state.iter().any(|s| s == f) => diags.push(
                Diagnostic::error(format!("unknown state field `{f}` in task template"))
                    .at(source, span())
                    .with_label("not a state channel of this pipeline")
                    .with_suggestions(f, scope.state.iter().map(String::as_str))
                    .with_help(format!("state channels: {}", scope.state.join(", "))),
            ),
            ("inputs", Some(f)) if !scope.inputs.iter().any(|s| s == f) => {
                let mut d = Diagnostic::warning(format!("input `{f}` is not declared"))
                    .at(source, span())
                    .with_label("not in the pipeline's `inputs:`")
                    .with_suggestions(f, scope.inputs.iter().map(String::as_str));
                d = d.with_help(format!(
                    "declare it under `inputs:` (with a `default:` if it is optional), or the template fails when `--input {f}=...` is not given"
                ));
                diags.push(d);
            }
            ("agent", Some(f)) if !AGENT_FIELDS.contains(&f) => diags.push(
                Diagnostic::error(format!("unknown agent field `{f}` in task template"))
                    .at(source, span())
                    .with_label("not a field of `agent`")
                    .with_suggestions(f, AGENT_FIELDS)
                    .with_help(format!("`agent` has: {}", AGENT_FIELDS.join(", "))),
            ),
            ("state" | "inputs" | "agent", _) => {}
            ("item" | "item_index", _) if scope.item => {}
            ("item" | "item_index", _) => diags.push(
                Diagnostic::error(format!("`{root}` is only defined for the target of a `for_each` edge"))
                    .at(source, span())
                    .with_label("this agent is not the target of a `for_each` edge")
                    .with_help("fan out with `- { from: planner, to: THIS_AGENT, for_each: FIELD }`; each task then sees `{{ item }}` and `{{ item_index }}`"),
            ),
            (r, _) if GLOBALS.contains(&r) => {}
            (r, _) => diags.push(
                Diagnostic::error(format!("unknown variable `{r}` in task template"))
                    .at(source, span())
                    .with_label("not defined")
                    .with_suggestions(r, ["state", "inputs", "agent"])
                    .with_help("a task template sees `state`, `inputs` and `agent`, e.g. `{{ state.findings }}`, `{{ inputs.base }}`, `{{ agent.name }}`"),
            ),
        }
    }
    diags
}

/// The 1-based line of the template text where `needle` first occurs (1 if nowhere).
fn template_line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(1, |i| text[..i].matches('\n').count() + 1)
}

/// A span on line `line` of `source` covering the first occurrence of `needle`, or the line's
/// first non-blank character.
fn span_of(source: &SourceFile, line: u32, needle: &str) -> Span {
    let Some(idx) = usize::try_from(line).ok().and_then(|l| l.checked_sub(1)) else {
        return Span::default();
    };
    let mut offset = 0usize;
    for (i, text) in source.text.split_inclusive('\n').enumerate() {
        if i == idx {
            let content = text.trim_end_matches(['\n', '\r']);
            let (byte, len) = match content.find(needle).filter(|_| !needle.is_empty()) {
                Some(b) => (b, needle.len()),
                None => {
                    let b = content.len() - content.trim_start().len();
                    (b, content.trim().len())
                }
            };
            let col = content[..byte].chars().count() + 1;
            return Span {
                line,
                col: u32::try_from(col).unwrap_or(1),
                offset: offset + byte,
                len,
            };
        }
        offset += text.len();
    }
    Span::default()
}

#[cfg(test)]
mod tests;
