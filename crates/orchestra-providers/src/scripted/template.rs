//! Scripted answers may be minijinja templates over the run and the conversation so far, so
//! offline runs can talk about the real input: `{{ inputs.base }}` and `{{ state.findings }}` are
//! the session's inputs and state, `{{ diff_files }}` the files of the git diffs that tools
//! returned, `{{ tool_results }}` the tool results' texts, plus `agent`, `run` and `turn`. Text
//! and every string inside a scripted tool call's arguments are rendered.

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, context};
use serde_json::Value;

use crate::types::{Block, ChatRequest};

/// Whether `text` needs rendering.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// What a scripted answer's templates are rendered against: made once per answer.
pub(crate) struct Scope<'r> {
    env: Environment<'static>,
    ctx: minijinja::Value,
    agent: &'r str,
}

impl<'r> Scope<'r> {
    /// The variables of `req` at assistant turn `turn`.
    pub(crate) fn new(req: &'r ChatRequest, turn: usize) -> Self {
        let tool_results: Vec<String> = req
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|b| match b {
                Block::ToolResult { content, .. } => Some(content.clone()),
                _ => None,
            })
            .collect();
        let diff_files = diff_files(&tool_results);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Scope {
            env,
            ctx: context! {
                agent => req.agent.as_ref(),
                run => req.run_index,
                turn,
                tool_results,
                diff_files,
                inputs => Serde(&*req.vars.inputs),
                state => Serde(&*req.vars.state),
            },
            agent: &req.agent,
        }
    }

    /// Renders one template.
    pub(crate) fn render(&self, text: &str) -> Result<String, String> {
        self.env.render_str(text, &self.ctx).map_err(|e| {
            format!(
                "the scripted answer of `{}` is not a valid template: {e}",
                self.agent
            )
        })
    }

    /// A tool call's arguments with every templated string rendered (keys stay as written).
    pub(crate) fn render_args(&self, args: &Value) -> Result<Value, String> {
        Ok(match args {
            Value::String(s) if is_template(s) => Value::String(self.render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_args(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_args(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Whether any string inside `args` needs rendering.
pub(crate) fn has_template(args: &Value) -> bool {
    match args {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// Renders a scripted answer against the request.
#[cfg(test)]
pub(crate) fn render(text: &str, req: &ChatRequest, turn: usize) -> Result<String, String> {
    Scope::new(req, turn).render(text)
}

/// Files named by `diff --git a/X b/X` headers, in order of first appearance.
pub(crate) fn diff_files(texts: &[String]) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for text in texts {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("diff --git ")
                && let Some((_, b)) = rest.split_once(" b/")
            {
                let name = b.trim().to_owned();
                if !name.is_empty() && !files.contains(&name) {
                    files.push(name);
                }
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, Role};

    #[test]
    fn answers_can_name_the_files_of_a_diff() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-x\n+y\ndiff --git a/README.md b/README.md\n";
        let req = ChatRequest {
            agent: "rev".into(),
            run_index: 1,
            model: "".into(),
            system: "".into(),
            messages: vec![
                Message::user("go"),
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "c".into(),
                        content: diff.into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: Default::default(),
        };
        let out = render(
            r#"{"file": {{ diff_files[0] | default("none") | tojson }}, "n": {{ diff_files | length }}, "who": "{{ agent }}/{{ run }}"}"#,
            &req,
            2,
        )
        .unwrap();
        assert_eq!(out, r#"{"file": "src/a.rs", "n": 2, "who": "rev/1"}"#);
        let err = render("{{ nope }}", &req, 0).unwrap_err();
        assert!(err.contains("`rev`"), "{err}");
    }

    #[test]
    fn tool_arguments_and_text_see_the_runs_inputs_and_state() {
        let mut inputs = serde_json::Map::new();
        inputs.insert("base".into(), Value::from("HEAD~3"));
        let mut state = serde_json::Map::new();
        state.insert("verdict".into(), Value::from("revise"));
        let req = ChatRequest {
            agent: "rev".into(),
            run_index: 0,
            model: "".into(),
            system: "".into(),
            messages: vec![Message::user("go")],
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
            vars: crate::types::RequestVars {
                inputs: inputs.into(),
                state: state.into(),
            },
        };
        let scope = Scope::new(&req, 0);
        let args = serde_json::json!({
            "base": "{{ inputs.base }}", "head": "HEAD", "n": 3,
            "list": ["{{ state.verdict }}", {"deep": "{{ agent }}"}]
        });
        assert!(has_template(&args));
        assert!(!has_template(&serde_json::json!({"base": "HEAD~1"})));
        assert_eq!(
            scope.render_args(&args).unwrap(),
            serde_json::json!({
                "base": "HEAD~3", "head": "HEAD", "n": 3,
                "list": ["revise", {"deep": "rev"}]
            })
        );
        let err = scope
            .render_args(&serde_json::json!({"x": "{{ inputs.nope }}"}))
            .unwrap_err();
        assert!(err.contains("`rev`") && err.contains("undefined"), "{err}");
    }
}
