//! The project's pipelines for the page's "start a run" form: every `*.yaml` under the
//! project's `pipelines/` (not the `*.responses.yaml` of scripted providers, nor what is in a
//! `prompts/` or `conditions/` directory there), compiled, with
//! their typed inputs; one that does not compile is listed with its first error.

use std::path::{Component, Path, PathBuf};

use orchestra_graph::{LoadOptions, load};
use serde_json::{Value, json};

/// The directory of the project's pipelines, under the project root.
pub(crate) const DIR: &str = "pipelines";
/// How deep under it pipelines are looked for.
const DEPTH: usize = 3;

/// The pipeline files under `root/pipelines/`, as paths relative to `root`, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(root.join(DIR), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                // Discovered layers and conditions beside pipelines are not pipelines.
                if depth + 1 < DEPTH && !matches!(name.as_str(), "prompts" | "conditions") {
                    dirs.push((path, depth + 1));
                }
            } else if is_pipeline_name(&name)
                && let Ok(rel) = path.strip_prefix(root)
            {
                found.push(rel.to_path_buf());
            }
        }
    }
    found.sort();
    found
}

fn is_pipeline_name(name: &str) -> bool {
    (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".responses.")
}

/// Whether `rel` names a pipeline file of the project: relative, under `pipelines/`, without
/// `..`, a pipeline's name, and a file.
pub(crate) fn is_listed(root: &Path, rel: &str) -> bool {
    let p = Path::new(rel);
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    plain
        && p.starts_with(DIR)
        && p.file_name()
            .is_some_and(|n| is_pipeline_name(&n.to_string_lossy()))
        && root.join(p).is_file()
}

/// Every pipeline of the project at `root`: `{path, name, description, inputs}` or `{path,
/// error}`. Inputs are `{name, type, required, default, enum, description}`.
pub(crate) fn list(root: &Path, opts: &LoadOptions) -> Vec<Value> {
    files(root)
        .into_iter()
        .map(|rel| {
            let shown = rel.to_string_lossy().into_owned();
            match load(&root.join(&rel), opts) {
                Ok(c) => {
                    let inputs: Vec<Value> = c
                        .inputs
                        .iter()
                        .map(|i| {
                            json!({
                                "name": i.name, "type": i.ty.name(), "required": i.is_required(),
                                "default": i.default, "enum": i.allowed,
                                "description": i.description,
                            })
                        })
                        .collect();
                    json!({
                        "path": shown, "name": c.name, "description": c.description,
                        "inputs": inputs,
                    })
                }
                Err(diags) => {
                    let first = diags
                        .iter()
                        .find(|d| d.is_error())
                        .map_or_else(|| "it does not compile".to_owned(), |d| d.render());
                    json!({ "path": shown, "error": first })
                }
            }
        })
        .collect()
}
