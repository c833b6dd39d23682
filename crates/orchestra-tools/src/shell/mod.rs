//! Shell tools from `workspace.tools`: an argv template whose `{{arg}}` elements are replaced by
//! the model's argument values, each value one argv entry (or one environment variable). No shell
//! is ever involved, so `;`, `$(...)`, backticks and newlines in values stay literal text.

mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orchestra_spec::{ArgType, CommandPart as Part, ShellToolSpec};
use serde_json::{Map, Value, json};

use crate::error::{ToolError, ToolFailure};
use crate::registry::{BoxFuture, CallCtx, Tool};
use crate::{SHELL_DEFAULT_MAX_OUTPUT, SHELL_DEFAULT_TIMEOUT, json_kind};

/// A declared argument.
#[derive(Clone, Debug)]
struct ArgDecl {
    name: String,
    ty: ArgType,
    description: Option<String>,
    required: bool,
    default: Option<Value>,
    env: Option<String>,
}

/// A shell tool ready to run.
#[derive(Debug)]
pub(crate) struct ShellTool {
    name: String,
    description: Option<String>,
    program: String,
    parts: Vec<Part>,
    args: Vec<ArgDecl>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    timeout: Duration,
    max_output: usize,
}

/// What a call runs: argv after the program, and environment variables from arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

impl ShellTool {
    /// Checks a spec and prepares it to run in `cwd`.
    pub(crate) fn from_spec(spec: &ShellToolSpec, cwd: PathBuf) -> Result<Self, ToolError> {
        let name = match &spec.repo {
            Some(repo) => format!("{}:{}", repo.value, spec.name.value),
            None => spec.name.value.clone(),
        };
        let invalid = |reason: String| ToolError::InvalidShellTool {
            name: name.clone(),
            reason,
        };
        let args: Vec<ArgDecl> = spec
            .args
            .iter()
            .map(|(arg, _, a)| ArgDecl {
                name: arg.to_owned(),
                ty: a.ty,
                description: a.description.clone(),
                required: a.required.unwrap_or(a.default.is_none()),
                default: a.default.clone(),
                env: a.env.clone(),
            })
            .collect();
        let command = spec.check_command().map_err(|issues| {
            invalid(issues.first().map_or_else(String::new, ToString::to_string))
        })?;
        for a in &args {
            if let Some(default) = &a.default {
                render(a, default).map_err(|f| invalid(format!("the default of {}", f.0)))?;
            }
        }
        let env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(key, _, value)| (key.to_owned(), value.clone()))
            .collect();
        Ok(ShellTool {
            name: name.clone(),
            description: spec.description.clone(),
            program: command.program,
            parts: command.parts,
            args,
            env,
            cwd,
            timeout: spec.timeout.map_or(SHELL_DEFAULT_TIMEOUT, |d| d.0),
            max_output: spec.max_output.unwrap_or(SHELL_DEFAULT_MAX_OUTPUT).max(64),
        })
    }

    /// The tool's full name (`repo:tool` or `tool`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Checks the model's arguments and builds the argv and environment of one call.
    pub(crate) fn bind(&self, args: Value) -> Result<Bound, ToolFailure> {
        let given: Map<String, Value> = match args {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => {
                return Err(ToolFailure::new(format!(
                    "invalid arguments: expected a JSON object, got {}",
                    json_kind(&other)
                )));
            }
        };
        for key in given.keys() {
            if !self.args.iter().any(|a| a.name == *key) {
                let names: Vec<&str> = self.args.iter().map(|a| a.name.as_str()).collect();
                let hint = orchestra_spec::did_you_mean(key, names.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                let takes = if names.is_empty() {
                    "this tool takes no arguments".to_owned()
                } else {
                    format!("this tool takes: {}", names.join(", "))
                };
                return Err(ToolFailure::new(format!(
                    "unknown argument `{key}`{hint} ({takes})"
                )));
            }
        }
        let mut values: Vec<(&ArgDecl, Vec<String>)> = Vec::new();
        for a in &self.args {
            let value = match given.get(&a.name) {
                Some(Value::Null) | None => a.default.as_ref(),
                Some(v) => Some(v),
            };
            match value {
                Some(v) => values.push((a, render(a, v)?)),
                None if a.required => {
                    let what = a
                        .description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    return Err(ToolFailure::new(format!(
                        "missing required argument `{}`{what}",
                        a.name
                    )));
                }
                None => {}
            }
        }
        let mut bound = Bound::default();
        for part in &self.parts {
            match part {
                Part::Literal(s) => bound.argv.push(s.clone()),
                Part::Arg { name, positional } => {
                    let Some((decl, items)) = values.iter().find(|(d, _)| d.name == *name) else {
                        continue;
                    };
                    let textual = matches!(decl.ty, ArgType::String | ArgType::Array);
                    if !positional
                        && textual
                        && let Some(bad) = items.iter().find(|s| s.starts_with('-'))
                    {
                        return Err(ToolFailure::new(format!(
                            "argument `{name}` value `{bad}` starts with `-`, so `{}` would read it \
                             as an option; refused (the tool's command can put `--` before \
                             `{{{{{name}}}}}` to allow such values)",
                            self.program
                        )));
                    }
                    bound.argv.extend(items.iter().cloned());
                }
            }
        }
        for (decl, items) in &values {
            if let Some(env) = &decl.env {
                bound.env.push((env.clone(), items.join("\n")));
            }
        }
        Ok(bound)
    }
}

/// A value as argv text, checked against the declared type.
fn render(decl: &ArgDecl, value: &Value) -> Result<Vec<String>, ToolFailure> {
    let name = &decl.name;
    let wrong = |expected: &str| {
        ToolFailure::new(format!(
            "argument `{name}` must be {expected}, got {} `{value}`",
            json_kind(value)
        ))
    };
    let items = match (decl.ty, value) {
        (ArgType::String, Value::String(s)) => vec![s.clone()],
        (ArgType::String, _) => return Err(wrong("a string")),
        (ArgType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => vec![n.to_string()],
        (ArgType::Integer, _) => return Err(wrong("an integer")),
        (ArgType::Number, Value::Number(n)) => vec![n.to_string()],
        (ArgType::Number, _) => return Err(wrong("a number")),
        (ArgType::Boolean, Value::Bool(b)) => vec![b.to_string()],
        (ArgType::Boolean, _) => return Err(wrong("a boolean")),
        (ArgType::Array, Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong("an array of strings"))?,
        (ArgType::Array, _) => return Err(wrong("an array of strings")),
    };
    if items.iter().any(|s| s.contains('\0')) {
        return Err(ToolFailure::new(format!(
            "argument `{name}` contains a NUL byte"
        )));
    }
    Ok(items)
}

fn json_type(ty: ArgType) -> Value {
    match ty {
        ArgType::String => json!({ "type": "string" }),
        ArgType::Integer => json!({ "type": "integer" }),
        ArgType::Number => json!({ "type": "number" }),
        ArgType::Boolean => json!({ "type": "boolean" }),
        ArgType::Array => json!({ "type": "array", "items": { "type": "string" } }),
    }
}

impl Tool for ShellTool {
    fn description(&self) -> String {
        let what = self
            .description
            .clone()
            .unwrap_or_else(|| format!("Run `{}`.", self.program));
        format!(
            "{what} (Runs a command; returns its exit status and output. Time limit {}.)",
            orchestra_spec::fmt_duration(self.timeout)
        )
    }

    fn parameters(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for a in &self.args {
            let mut schema = json_type(a.ty);
            if let Some(obj) = schema.as_object_mut() {
                if let Some(d) = &a.description {
                    obj.insert("description".into(), Value::String(d.clone()));
                }
                if let Some(d) = &a.default {
                    obj.insert("default".into(), d.clone());
                }
            }
            properties.insert(a.name.clone(), schema);
            if a.required {
                required.push(Value::String(a.name.clone()));
            }
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    fn timeout(&self, _limits: &crate::ToolLimits) -> Duration {
        // The process is killed at `self.timeout`; this outer limit only guards against a hang
        // while cleaning up.
        self.timeout.saturating_add(Duration::from_secs(10))
    }

    fn max_output(&self, _limits: &crate::ToolLimits) -> usize {
        // Room for the status line, section headers and notes around the capped streams.
        self.max_output.saturating_add(1024)
    }

    fn call(self: Arc<Self>, args: Value, ctx: CallCtx) -> BoxFuture<Result<String, ToolFailure>> {
        Box::pin(async move {
            let bound = self.bind(args)?;
            let mut env = self.env.clone();
            env.extend(bound.env);
            run::Run {
                program: &self.program,
                argv: &bound.argv,
                env: &env,
                hidden_env: &ctx.hidden_env,
                cwd: &self.cwd,
                timeout: self.timeout,
                max_output: self.max_output,
            }
            .execute()
            .await
        })
    }
}

#[cfg(test)]
mod tests;
