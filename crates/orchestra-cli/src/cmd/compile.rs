//! `orchestra compile`: validate a pipeline, resolve every name it uses, and print the result as
//! text, JSON, Mermaid or DOT — or each agent's composed system prompt. Never calls a model or
//! changes a repository.

use std::io::{self, Write as _};
use std::path::PathBuf;

use orchestra_graph::Compiled;
use orchestra_spec::Diagnostic;
use serde_json::{Value, json};

use crate::cli::Ctx;
use crate::load::{input_problem, load_pipeline};
use crate::{exit, report};

/// Validate a pipeline and resolve everything it refers to; print the graph.
///
/// Shows nodes and edges, and for every agent its provider and model, its tools, and the file
/// each prompt layer was found in (with its discovery level); conditions likewise. Errors name
/// file:line:col and exit with code 2.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print each agent's composed system prompt (against the initial state and the inputs)
    /// instead of the graph.
    #[arg(long)]
    prompts: bool,
    /// An input for `--prompts`, as KEY=VALUE (repeatable); other inputs use their defaults.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE", value_parser = crate::load::parse_key_value)]
    inputs: Vec<(String, String)>,
    /// Resolve every agent's model against this provider instead of its own.
    #[arg(long)]
    provider: Option<String>,
    /// Also start the MCP servers the agents use (`mcp_servers:`), list their tools and check
    /// that every `SERVER:TOOL` an agent names exists (with "did you mean"); then stop them.
    /// Without it, compile starts nothing. A server that cannot start or a missing tool exits
    /// with code 2.
    #[arg(long)]
    probe: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Human-readable summary.
    Text,
    /// The resolved pipeline as JSON (what a session stores).
    Json,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    let compiled = match load_pipeline(&args.pipeline, args.provider.as_deref(), ctx)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if args.prompts {
        return prompts(&compiled, &args);
    }
    let text = match args.format {
        Format::Text => report::text(&compiled, &ctx.cwd),
        Format::Json => {
            let mut v = serde_json::to_value(&compiled)?;
            if let Value::Object(m) = &mut v {
                m.insert("warnings".into(), warnings_json(&compiled.warnings));
            }
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s
        }
        Format::Mermaid => compiled.to_mermaid(),
        Format::Dot => compiled.to_dot(),
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    drop(out);
    if args.probe {
        return probe(&compiled, args.format == Format::Text);
    }
    Ok(exit::SUCCESS)
}

/// `--probe`: starts the MCP servers the agents use and checks their tools. The summary goes
/// to stdout after a text report (to stderr otherwise, so JSON, Mermaid and DOT stay clean);
/// problems go to stderr.
fn probe(compiled: &Compiled, text: bool) -> io::Result<u8> {
    let rt = crate::engine::runtime()?;
    let env: orchestra_runtime::EnvLookup = std::sync::Arc::new(crate::engine::env_var);
    let probes = rt.block_on(orchestra_runtime::probe_mcp(compiled, env));
    let mut summary = String::new();
    let mut problems = String::new();
    if probes.is_empty() {
        summary.push_str("\nMCP servers: none used by the agents (nothing to probe)\n");
    } else {
        summary.push_str("\nMCP servers (probed)\n");
    }
    for p in &probes {
        match &p.tools {
            Ok(tools) => summary.push_str(&format!(
                "  {:12} ok, {} tools: {}\n",
                p.server,
                tools.len(),
                tools.join(", ")
            )),
            Err(e) => {
                summary.push_str(&format!("  {:12} failed\n", p.server));
                problems.push_str(&format!("error: {e}\n"));
            }
        }
        for m in &p.missing {
            problems.push_str(&format!("error: {m}\n"));
        }
    }
    if text {
        let mut out = io::stdout().lock();
        out.write_all(summary.as_bytes())?;
        out.flush()?;
    } else {
        io::stderr().write_all(summary.trim_start().as_bytes())?;
    }
    io::stderr().write_all(problems.as_bytes())?;
    Ok(if probes.iter().all(orchestra_runtime::McpProbe::is_ok) {
        exit::SUCCESS
    } else {
        exit::BAD_INPUT
    })
}

fn warnings_json(diags: &[Diagnostic]) -> Value {
    diags
        .iter()
        .map(|d| {
            json!({
                "message": d.message,
                "location": d.location(),
                "label": d.label,
                "help": d.help,
            })
        })
        .collect()
}

/// Prints every agent's system prompt against the initial state and the inputs.
fn prompts(c: &Compiled, args: &Args) -> io::Result<u8> {
    let mut given = c.inputs_with(&args.inputs);
    if let Some(code) = input_problem(c, &given, true)? {
        return Ok(code);
    }
    // Required inputs without a value are shown as a placeholder rather than failing.
    for m in std::mem::take(&mut given.missing) {
        given
            .values
            .insert(m.clone(), Value::String(format!("<{m}>")));
    }
    let state = Value::Object(c.initial_state());
    let shown: Vec<String> = given
        .values
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let inputs_v = Value::Object(given.values);
    let mut rendered: Vec<(String, String)> = Vec::new();
    // Command nodes run a program: they have no prompt.
    for agent in c.agents.iter().filter(|a| a.has_model()) {
        match c.system_prompt(agent, &state, &inputs_v) {
            Ok(p) => rendered.push((agent.name.clone(), p)),
            Err(e) => {
                writeln!(
                    io::stderr(),
                    "error: cannot compose the system prompt of agent `{}`: {e}",
                    agent.name
                )?;
                return Ok(exit::BAD_INPUT);
            }
        }
    }
    let text = match args.format {
        Format::Json => {
            let map: serde_json::Map<String, Value> = rendered
                .into_iter()
                .map(|(a, p)| (a, Value::String(p)))
                .collect();
            let mut s = serde_json::to_string_pretty(&Value::Object(map))?;
            s.push('\n');
            s
        }
        _ => report::prompts(c, &rendered, &shown),
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(exit::SUCCESS)
}
