//! Loading a pipeline for a subcommand: compile it, print its diagnostics (errors and warnings)
//! to stderr, and apply `--provider`. Also the `KEY=VALUE` parser of `--input`.

use std::io::{self, Write};
use std::path::Path;

use orchestra_graph::{Compiled, InputValues, LoadOptions, load};
use orchestra_spec::Diagnostic;

use crate::cli::Ctx;
use crate::{diag, exit};

/// The compiled pipeline at `path`, or the exit code to stop with (diagnostics already printed).
pub(crate) fn load_pipeline(
    path: &Path,
    provider: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Result<Compiled, u8>> {
    load_pipeline_to(&mut io::stderr().lock(), path, provider, ctx)
}

/// Why a pipeline could not be loaded: its diagnostics (errors, and warnings beside them), or
/// the one of a `--provider` it does not have.
#[derive(Debug)]
pub(crate) enum LoadFailure {
    /// The pipeline (or a file it uses) is invalid.
    Invalid(Vec<Diagnostic>),
    /// The provider given to run every agent on.
    Provider(Diagnostic),
}

impl LoadFailure {
    /// The diagnostics, as the CLI shows them.
    pub(crate) fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadFailure::Invalid(d) => d,
            LoadFailure::Provider(d) => std::slice::from_ref(d),
        }
    }

    /// Writes what the CLI prints for this failure of the pipeline at `path`.
    pub(crate) fn write(&self, w: &mut dyn Write, path: &Path) -> io::Result<()> {
        let mut w = w;
        diag::print(&mut w, self.diagnostics())?;
        if let LoadFailure::Invalid(diags) = self {
            writeln!(
                w,
                "error: `{}` is not a valid pipeline: {}",
                path.display(),
                diag::counts(diags)
            )?;
        }
        Ok(())
    }
}

/// Compiles the pipeline at `path` (with every agent on `provider`, when given) as every
/// subcommand does; prints nothing.
pub(crate) fn compile_pipeline(
    path: &Path,
    provider: Option<&str>,
    ctx: &Ctx,
) -> Result<Compiled, LoadFailure> {
    let opts = LoadOptions {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        ..LoadOptions::default()
    };
    let mut compiled = load(path, &opts).map_err(LoadFailure::Invalid)?;
    if let Some(p) = provider
        && let Err(d) = compiled.use_provider(p)
    {
        return Err(LoadFailure::Provider(
            d.with_label("given with `--provider`"),
        ));
    }
    Ok(compiled)
}

/// [`load_pipeline`], the diagnostics written to `err`.
pub(crate) fn load_pipeline_to(
    err: &mut dyn Write,
    path: &Path,
    provider: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Result<Compiled, u8>> {
    match compile_pipeline(path, provider, ctx) {
        Ok(compiled) => {
            let mut err = err;
            diag::print(&mut err, &compiled.warnings)?;
            Ok(Ok(compiled))
        }
        Err(failure) => {
            failure.write(err, path)?;
            Ok(Err(exit::BAD_INPUT))
        }
    }
}

/// Reports `--input KEY=...` for a `key` the pipeline does not declare, with "did you mean" and
/// the inputs it has; returns the exit code.
fn unknown_input(err: &mut dyn Write, compiled: &Compiled, key: &str) -> io::Result<u8> {
    let names: Vec<&str> = compiled.inputs.iter().map(|i| i.name.as_str()).collect();
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
    input_problem_to(&mut io::stderr().lock(), compiled, given, missing_ok)
}

/// [`input_problem`], the problem written to `err`.
pub(crate) fn input_problem_to(
    err: &mut dyn Write,
    compiled: &Compiled,
    given: &InputValues,
    missing_ok: bool,
) -> io::Result<Option<u8>> {
    if let Some(k) = given.unknown.first() {
        return unknown_input(err, compiled, k).map(Some);
    }
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
