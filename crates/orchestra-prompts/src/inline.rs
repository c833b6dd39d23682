//! Short templates written inline in a pipeline (an edge's `reason:`): checked at compile time
//! against the names they may use, rendered over `state` and `inputs` at run time.

use orchestra_spec::{Diagnostic, SourceFile, Span};

use crate::template::{TemplateScope, environment};

/// Checks an inline template written at `span` of `source`: its syntax, and that it uses only
/// `state.X` of a known channel and `inputs.X`. `what` names the key in messages (`` `reason` ``).
pub fn check_inline(
    text: &str,
    source: &SourceFile,
    span: Span,
    scope: &TemplateScope<'_>,
    what: &str,
) -> Vec<Diagnostic> {
    let env = environment();
    let tmpl = match env.template_from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return vec![
                Diagnostic::error(format!(
                    "invalid template in {what}: {}",
                    e.detail().unwrap_or("syntax error")
                ))
                .at(source, span)
                .with_label("minijinja syntax error")
                .with_help("templates look like `tests failed: {{ state.summary }}`"),
            ];
        }
    };
    let mut vars: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    vars.sort();
    let mut diags = Vec::new();
    for var in vars {
        let (root, field) = match var.split_once('.') {
            Some((r, f)) => (r, Some(f.split('.').next().unwrap_or(f))),
            None => (var.as_str(), None),
        };
        match (root, field) {
            ("state", Some(f)) if !scope.state.iter().any(|s| s == f) => diags.push(
                Diagnostic::error(format!("unknown state field `{f}` in {what}"))
                    .at(source, span)
                    .with_label("not a state channel of this pipeline")
                    .with_suggestions(f, scope.state.iter().map(String::as_str)),
            ),
            ("inputs", Some(f)) if !scope.inputs.iter().any(|s| s == f) => diags.push(
                Diagnostic::error(format!("unknown input `{f}` in {what}"))
                    .at(source, span)
                    .with_label("not in the pipeline's `inputs:`")
                    .with_suggestions(f, scope.inputs.iter().map(String::as_str)),
            ),
            ("state" | "inputs", _) => {}
            (r, _) => diags.push(
                Diagnostic::error(format!("unknown variable `{r}` in {what}"))
                    .at(source, span)
                    .with_label("not defined")
                    .with_suggestions(r, ["state", "inputs"])
                    .with_help("it sees `state` and `inputs`, e.g. `{{ state.errors }}`"),
            ),
        }
    }
    diags
}

/// Renders an inline template over `state` and `inputs` (JSON objects).
pub fn render_inline(
    text: &str,
    state: &serde_json::Value,
    inputs: &serde_json::Value,
) -> Result<String, String> {
    let env = environment();
    env.render_str(
        text,
        minijinja::context! {
            state => minijinja::Value::from(minijinja::value::Serde(state)),
            inputs => minijinja::Value::from(minijinja::value::Serde(inputs)),
        },
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(text: &str) -> Vec<String> {
        let src = SourceFile::new("p.yaml", "x");
        let state = vec!["errors".to_owned()];
        let inputs = vec!["goal".to_owned()];
        let scope = TemplateScope {
            state: &state,
            inputs: &inputs,
            item: false,
        };
        check_inline(text, &src, Span::default(), &scope, "`reason`")
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn inline_templates_are_checked() {
        assert!(check("{{ state.errors | length }} errors for {{ inputs.goal }}").is_empty());
        assert_eq!(
            check("{{ state.eror }}"),
            ["unknown state field `eror` in `reason`"]
        );
        assert_eq!(
            check("{{ inputs.gaol }}"),
            ["unknown input `gaol` in `reason`"]
        );
        assert_eq!(
            check("{{ agent.name }}"),
            ["unknown variable `agent` in `reason`"]
        );
        assert_eq!(
            check("{{ state.errors "),
            [
                "invalid template in `reason`: unexpected end of input, expected end of variable block"
            ]
        );
    }

    #[test]
    fn inline_templates_render_over_state_and_inputs() {
        let out = render_inline(
            "{{ state.n }} of {{ inputs.goal }}",
            &json!({"n": 2}),
            &json!({"goal": "x"}),
        );
        assert_eq!(out.as_deref(), Ok("2 of x"));
        assert!(render_inline("{{ state.missing }}", &json!({}), &json!({})).is_err());
    }
}
