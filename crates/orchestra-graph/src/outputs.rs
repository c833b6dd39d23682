//! Checks of `outputs:` — files written from the final state when a session completes: the
//! state field must exist, and the path and text templates must parse and use only known
//! variables (a text template's `state.X` must be a state field).

use orchestra_spec::{Diagnostic, PipelineSpec, SourceFile, Spanned};

/// Variables an output path template may use.
pub const OUTPUT_PATH_VARS: [&str; 4] = ["session", "pipeline", "name", "inputs"];

/// Variables an output's `template:` may use.
pub const OUTPUT_TEMPLATE_VARS: [&str; 6] =
    ["value", "state", "inputs", "session", "pipeline", "name"];

/// Adds a diagnostic for every problem in `spec.outputs`.
pub(crate) fn check_outputs(
    spec: &PipelineSpec,
    src: &SourceFile,
    state_names: &[String],
    diags: &mut Vec<Diagnostic>,
) {
    for (name, key_span, out) in spec.outputs.iter() {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            diags.push(
                Diagnostic::error(format!("invalid output name `{name}`"))
                    .at(src, key_span)
                    .with_label("it becomes a file name")
                    .with_help("use letters, digits, `-`, `_` and `.`"),
            );
        }
        if !state_names.contains(&out.from.value) {
            diags.push(
                Diagnostic::error(format!(
                    "output `{name}` reads unknown state field `{}`",
                    out.from.value
                ))
                .at(src, out.from.span)
                .with_label("not a state field of this pipeline")
                .with_suggestions(&out.from.value, state_names.iter().map(String::as_str))
                .with_help(format!("state fields: {}", state_names.join(", "))),
            );
        }
        if let Some(template) = &out.template {
            check_template(name, template, src, state_names, diags);
        }
        if let Some(path) = &out.path {
            let text = path.value.trim_start();
            if text.starts_with('/') || text.split(['/', '\\']).any(|c| c == "..") {
                diags.push(
                    Diagnostic::error(format!("the path of output `{name}` leaves the project"))
                        .at(src, path.span)
                        .with_label("absolute, or going up with `..`")
                        .with_help("output paths are relative to the project root (the directory of orchestra.yaml)"),
                );
                continue;
            }
            let env = minijinja::Environment::new();
            match env.template_from_str(&path.value) {
                Err(e) => diags.push(
                    Diagnostic::error(format!("invalid path template of output `{name}`"))
                        .at(src, path.span)
                        .with_label(e.detail().unwrap_or("syntax error").to_owned()),
                ),
                Ok(t) => {
                    let mut unknown: Vec<String> = t
                        .undeclared_variables(false)
                        .into_iter()
                        .filter(|v| !OUTPUT_PATH_VARS.contains(&v.as_str()))
                        .collect();
                    unknown.sort();
                    if let Some(v) = unknown.first() {
                        diags.push(
                            Diagnostic::error(format!(
                                "unknown variable `{v}` in the path of output `{name}`"
                            ))
                            .at(src, path.span)
                            .with_suggestions(v, OUTPUT_PATH_VARS)
                            .with_help(format!(
                                "path templates may use: {}",
                                OUTPUT_PATH_VARS.join(", ")
                            )),
                        );
                    }
                }
            }
        }
    }
}

/// Checks an output's `template:`: syntax, unknown filters and variables, unknown state fields.
fn check_template(
    name: &str,
    template: &Spanned<String>,
    src: &SourceFile,
    state_names: &[String],
    diags: &mut Vec<Diagnostic>,
) {
    let env = orchestra_prompts::environment();
    let t = match env.template_from_str(&template.value) {
        Ok(t) => t,
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("invalid template of output `{name}`"))
                    .at(src, template.span)
                    .with_label(e.detail().unwrap_or("syntax error").to_owned()),
            );
            return;
        }
    };
    for u in orchestra_prompts::unknown_callables(&env, &template.value, false) {
        diags.push(
            Diagnostic::error(format!(
                "unknown {} `{}` in the template of output `{name}`",
                u.kind.as_str(),
                u.name
            ))
            .at(src, template.span)
            .with_help(orchestra_prompts::UNKNOWN_CALLABLE_HELP),
        );
    }
    let mut vars: Vec<String> = t.undeclared_variables(true).into_iter().collect();
    vars.sort();
    for var in vars {
        let (root, field) = match var.split_once('.') {
            Some((r, f)) => (r, Some(f.split('.').next().unwrap_or(f))),
            None => (var.as_str(), None),
        };
        match (root, field) {
            ("state", Some(f)) if !state_names.iter().any(|s| s == f) => diags.push(
                Diagnostic::error(format!(
                    "unknown state field `{f}` in the template of output `{name}`"
                ))
                .at(src, template.span)
                .with_suggestions(f, state_names.iter().map(String::as_str))
                .with_help(format!("state fields: {}", state_names.join(", "))),
            ),
            (r, _) if OUTPUT_TEMPLATE_VARS.contains(&r) => {}
            ("range" | "dict" | "namespace" | "debug", _) => {}
            (r, _) => diags.push(
                Diagnostic::error(format!(
                    "unknown variable `{r}` in the template of output `{name}`"
                ))
                .at(src, template.span)
                .with_suggestions(r, OUTPUT_TEMPLATE_VARS)
                .with_help(format!(
                    "output templates may use: {}",
                    OUTPUT_TEMPLATE_VARS.join(", ")
                )),
            ),
        }
    }
}
