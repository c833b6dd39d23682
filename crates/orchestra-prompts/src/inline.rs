//! Short templates written inline in a pipeline (an edge's `reason:`, a command node's argv):
//! checked at compile time against the names they may use, rendered over `state` and `inputs`
//! (and, for the target of a `for_each` edge, `item` and `item_index`) at run time.

use orchestra_spec::{Diagnostic, SourceFile, Span};

use crate::template::{TemplateScope, environment};

/// Checks an inline template written at `span` of `source`: its syntax, and that it uses only
/// `state.X` of a known channel and `inputs.X` (and `item`, `item_index` when `scope.item`).
/// `what` names the key in messages (`` `reason` ``).
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
            ("item" | "item_index", _) if scope.item => {}
            ("item" | "item_index", _) => diags.push(
                Diagnostic::error(format!(
                    "`{root}` in {what} is only defined for the target of a `for_each` edge"
                ))
                .at(source, span)
                .with_label("this node is not the target of a `for_each` edge")
                .with_help("fan out with `- { from: A, to: THIS_NODE, for_each: FIELD }`; each task then sees `{{ item }}` and `{{ item_index }}`"),
            ),
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
    render_inline_item(text, state, inputs, None)
}

/// Renders an inline template over `state` and `inputs` and, for an instance of a `for_each`
/// target, its `item` and 0-based `item_index`.
pub fn render_inline_item(
    text: &str,
    state: &serde_json::Value,
    inputs: &serde_json::Value,
    item: Option<(&serde_json::Value, u32)>,
) -> Result<String, String> {
    let env = environment();
    let base = minijinja::context! {
        state => minijinja::Value::from(minijinja::value::Serde(state)),
        inputs => minijinja::Value::from(minijinja::value::Serde(inputs)),
    };
    let vars = match item {
        Some((item, index)) => minijinja::context! {
            item => minijinja::Value::from(minijinja::value::Serde(item)),
            item_index => index,
            ..base
        },
        None => base,
    };
    env.render_str(text, vars).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(text: &str) -> Vec<String> {
        check_in(text, false)
    }

    fn check_in(text: &str, item: bool) -> Vec<String> {
        let src = SourceFile::new("p.yaml", "x");
        let state = vec!["errors".to_owned()];
        let inputs = vec!["goal".to_owned()];
        let scope = TemplateScope {
            state: &state,
            inputs: &inputs,
            item,
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

    #[test]
    fn a_fan_out_target_sees_its_item_and_index() {
        assert!(check_in("{{ item }} #{{ item_index }}", true).is_empty());
        assert_eq!(
            check("{{ item.path }}"),
            ["`item` in `reason` is only defined for the target of a `for_each` edge"]
        );
        let item = json!({"path": "a.txt"});
        let out = render_inline_item(
            "{{ item.path }} #{{ item_index }} of {{ state.n }}",
            &json!({"n": 3}),
            &json!({}),
            Some((&item, 1)),
        );
        assert_eq!(out.as_deref(), Ok("a.txt #1 of 3"));
        assert!(render_inline("{{ item }}", &json!({}), &json!({})).is_err());
    }
}
