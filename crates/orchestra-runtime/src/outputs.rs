//! Output files: when a session completes, each `outputs:` entry of the pipeline is written from
//! the final state (a string as it is, other values as pretty JSON), or rendered from its
//! `template:`.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use orchestra_graph::Compiled;
use orchestra_graph::state::State;

/// Writes the pipeline's output files; returns their paths.
pub fn write_outputs(
    compiled: &Compiled,
    session: &str,
    inputs: &Map<String, Value>,
    state: &State,
) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (name, text, path) in render_outputs(compiled, session, inputs, state)? {
        write_file(&path, &text)
            .map_err(|e| format!("output `{name}`: cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The pipeline's output files as they are written from `state`: `(name, text, path)`.
pub(crate) fn render_outputs(
    compiled: &Compiled,
    session: &str,
    inputs: &Map<String, Value>,
    state: &State,
) -> Result<Vec<(String, String, PathBuf)>, String> {
    let mut rendered = Vec::new();
    for (name, _, out) in compiled.outputs.iter() {
        let value = state.get(&out.from.value).unwrap_or(&Value::Null);
        let (text, ext) = match (value, &out.template) {
            (value, Some(template)) => (
                render_template(
                    &template.value,
                    value,
                    state,
                    inputs,
                    session,
                    compiled,
                    name,
                )
                .map_err(|e| format!("output `{name}`: cannot render its template: {e:#}"))?,
                "md",
            ),
            (Value::String(s), None) => (s.clone(), "md"),
            (other, None) => (
                serde_json::to_string_pretty(other).map_err(|e| e.to_string())?,
                "json",
            ),
        };
        let template = out
            .path
            .as_ref()
            .map(|p| p.value.clone())
            .unwrap_or_else(|| {
                format!(".orchestra/outputs/{{{{ session }}}}/{{{{ name }}}}.{ext}")
            });
        let env = minijinja::Environment::new();
        let rel = env
            .render_str(
                &template,
                minijinja::context! { session, pipeline => compiled.name.as_str(), name, inputs => minijinja::Value::from(minijinja::value::Serde(inputs)) },
            )
            .map_err(|e| format!("output `{name}`: cannot render its path: {e}"))?;
        let rel = PathBuf::from(rel.trim());
        if rel.as_os_str().is_empty()
            || rel.components().any(|c| {
                matches!(
                    c,
                    Component::ParentDir | Component::RootDir | Component::Prefix(_)
                )
            })
        {
            return Err(format!(
                "output `{name}`: the path `{}` is empty, absolute, or leaves the project with `..`",
                rel.display()
            ));
        }
        let path = compiled.project_root.join(&rel);
        rendered.push((name.to_owned(), text, path));
    }
    Ok(rendered)
}

/// An output's text from its `template:`.
fn render_template(
    template: &str,
    value: &Value,
    state: &State,
    inputs: &Map<String, Value>,
    session: &str,
    compiled: &Compiled,
    name: &str,
) -> Result<String, minijinja::Error> {
    use minijinja::value::Serde;
    orchestra_prompts::environment().render_str(
        template,
        minijinja::context! {
            value => Serde(value),
            state => Serde(state),
            inputs => Serde(inputs),
            session,
            pipeline => compiled.name.as_str(),
            name,
        },
    )
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}
