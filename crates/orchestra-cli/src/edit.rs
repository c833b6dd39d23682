//! `--pipeline FILE` and `--set FIELD=JSON` of `resume` and `replay`: a session goes on with an
//! edited pipeline or edited state. What changed is printed before it goes on.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use orchestra_graph::{Compiled, LoadOptions, load};
use orchestra_runtime::{Edit, EditCheck, pipeline_hash};

use crate::cli::Ctx;
use crate::engine::providers_problem;
use crate::exit;
use crate::load::load_pipeline;

/// How a session is edited before it goes on.
#[derive(Debug, clap::Args)]
pub(crate) struct EditArgs {
    /// Go on with this pipeline file (changed prompts, models, new agents and edges) instead of
    /// the one stored with the session. What changed is printed first; an agent that ran or is
    /// due to run and was removed, or a state field whose value no longer fits its edited type
    /// or reducer, is refused (exit 2) and nothing changes.
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    /// Set a state field before going on, as FIELD=JSON (repeatable): the whole value, whatever
    /// the field's reducer, checked against its type (`--set verdict='"approve"'`, `--set
    /// notes='["a"]'`). Edges already routed at the checkpoint are not routed again.
    #[arg(long = "set", value_name = "FIELD=JSON", value_parser = orchestra_runtime::parse_set)]
    set: Vec<(String, Value)>,
}

impl EditArgs {
    /// The edit asked for, or the exit code to stop with (the problem already printed): the
    /// pipeline is compiled and its providers checked.
    pub(crate) fn edit(&self, ctx: &Ctx) -> io::Result<Result<Edit, u8>> {
        let pipeline = match &self.pipeline {
            None => None,
            Some(path) => match load_pipeline(path, None, ctx)? {
                Ok(c) => {
                    if let Some(problem) = providers_problem(&c) {
                        writeln!(io::stderr(), "error: {problem}")?;
                        return Ok(Err(exit::BAD_INPUT));
                    }
                    Some(Arc::new(c))
                }
                Err(code) => return Ok(Err(code)),
            },
        };
        Ok(Ok(Edit {
            pipeline,
            set: self.set.clone(),
        }))
    }
}

/// Prints what `edit` changes (to stderr), as checked against checkpoint `check.step`.
pub(crate) fn print_check(check: &EditCheck, edit: &Edit, ctx: &Ctx) -> io::Result<()> {
    let mut err = io::stderr().lock();
    if let Some(p) = &edit.pipeline {
        let shown = p
            .pipeline_path
            .strip_prefix(&ctx.cwd)
            .unwrap_or(&p.pipeline_path);
        if check.diff.is_empty() {
            writeln!(
                err,
                "pipeline {}: no changes from the session's pipeline",
                shown.display()
            )?;
        } else {
            writeln!(
                err,
                "pipeline {} (changes from the session's pipeline at checkpoint {}):",
                shown.display(),
                check.step
            )?;
            for c in &check.diff.changes {
                writeln!(err, "  {c}")?;
            }
        }
    }
    for (field, value) in &edit.set {
        writeln!(
            err,
            "set {field} = {}",
            orchestra_graph::state::shorten(value)
        )?;
    }
    Ok(())
}

/// Warns when the pipeline file a session ran (or a file it uses) no longer compiles to what
/// the session stored: the session goes on with the stored one unless `--pipeline` is given.
pub(crate) fn warn_if_changed(stored: &Compiled, hash: &str, ctx: &Ctx, doing: &str) {
    let opts = LoadOptions {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        ..LoadOptions::default()
    };
    let now = load(&stored.pipeline_path, &opts)
        .ok()
        .map(|c| pipeline_hash(&c));
    if now.as_deref() != Some(hash) {
        let path = stored.pipeline_path.display();
        let _ = writeln!(
            io::stderr(),
            "warning: `{path}` or a file it uses changed since this session started; {doing} with the pipeline as it was (to go on with the edited one: --pipeline {path})"
        );
    }
}

/// What checkpoint `step` of a session with `meta` is, when it is an edit checkpoint:
/// `(edit: pipeline FILE; set FIELD, ...)`.
pub(crate) fn edit_label(meta: &serde_json::Map<String, Value>, step: u64) -> Option<String> {
    let edits = meta.get(orchestra_runtime::EDITS_META)?.as_array()?;
    let mut what = Vec::new();
    for e in edits.iter().filter(|e| {
        e.get("after_step")
            .and_then(Value::as_u64)
            .is_some_and(|a| a + 1 == step)
    }) {
        if let Some(p) = e.get("pipeline_path").and_then(Value::as_str) {
            what.push(format!("pipeline {p}"));
        }
        if let Some(set) = e.get("set").and_then(Value::as_object)
            && !set.is_empty()
        {
            let fields: Vec<&str> = set.keys().map(String::as_str).collect();
            what.push(format!("set {}", fields.join(", ")));
        }
    }
    (!what.is_empty()).then(|| format!("(edit: {})", what.join("; ")))
}

#[cfg(test)]
mod tests {
    use orchestra_runtime::parse_set;
    use serde_json::json;

    #[test]
    fn set_takes_a_field_and_json() {
        assert_eq!(parse_set("n=3"), Ok(("n".into(), json!(3))));
        assert_eq!(
            parse_set(r#"v="a=b""#),
            Ok(("v".into(), json!("a=b"))),
            "only the first = splits"
        );
        let e = parse_set("xs=[1,").unwrap_err();
        assert!(
            e.contains("is not JSON (EOF while parsing a value at line 1 column 3)"),
            "{e}"
        );
        assert!(parse_set("=1").is_err());
        assert!(parse_set("x").is_err());
    }
}
