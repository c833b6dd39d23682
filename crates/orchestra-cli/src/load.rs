//! Loading a pipeline for a subcommand: compile it, print its diagnostics (errors and warnings)
//! to stderr, and apply `--provider`. Also the `KEY=VALUE` parser of `--input`.

use std::io::{self, Write as _};
use std::path::Path;

use orchestra_graph::{Compiled, InputValues, LoadOptions, load};

use crate::cli::Ctx;
use crate::{diag, exit};

/// The compiled pipeline at `path`, or the exit code to stop with (diagnostics already printed).
pub(crate) fn load_pipeline(
    path: &Path,
    provider: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Result<Compiled, u8>> {
    let opts = LoadOptions {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        ..LoadOptions::default()
    };
    let mut err = io::stderr().lock();
    let mut compiled = match load(path, &opts) {
        Ok(c) => c,
        Err(diags) => {
            diag::print(&mut err, &diags)?;
            writeln!(
                err,
                "error: `{}` is not a valid pipeline: {}",
                path.display(),
                diag::counts(&diags)
            )?;
            return Ok(Err(exit::BAD_INPUT));
        }
    };
    if let Some(p) = provider
        && let Err(d) = compiled.use_provider(p)
    {
        diag::print(&mut err, &[d.with_label("given with `--provider`")])?;
        return Ok(Err(exit::BAD_INPUT));
    }
    diag::print(&mut err, &compiled.warnings)?;
    Ok(Ok(compiled))
}

/// Reports `--input KEY=...` for a `key` the pipeline does not declare, with "did you mean" and
/// the inputs it has; returns the exit code.
fn unknown_input(compiled: &Compiled, key: &str) -> io::Result<u8> {
    let names: Vec<&str> = compiled.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut err = io::stderr().lock();
    write!(err, "error: the pipeline has no input `{key}`")?;
    if let Some(h) = orchestra_spec::did_you_mean(key, names.iter().copied()) {
        write!(err, "; {h}")?;
    }
    let listed = if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    };
    writeln!(err, "\n  inputs: {listed}")?;
    Ok(exit::BAD_INPUT)
}

/// Reports what is wrong with the `--input` values of a run — an unknown name (with "did you
/// mean"), a value that does not fit its input's type or `enum`, a missing required input
/// (unless `missing_ok`) — and returns the exit code to stop with, if any.
pub(crate) fn input_problem(
    compiled: &Compiled,
    given: &InputValues,
    missing_ok: bool,
) -> io::Result<Option<u8>> {
    if let Some(k) = given.unknown.first() {
        return unknown_input(compiled, k).map(Some);
    }
    let mut err = io::stderr().lock();
    if let Some((name, why)) = given.invalid.first() {
        writeln!(err, "error: input `{name}`: {why}")?;
        return Ok(Some(exit::BAD_INPUT));
    }
    if !missing_ok && !given.missing.is_empty() {
        writeln!(
            err,
            "error: missing input(s): {}; give them with --input KEY=VALUE",
            given.missing.join(", ")
        )?;
        return Ok(Some(exit::BAD_INPUT));
    }
    Ok(None)
}

/// Parses `KEY=VALUE` (of `--input`).
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}
