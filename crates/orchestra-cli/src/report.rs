//! Human-readable views of a compiled pipeline: the `compile` summary and the composed prompts.

use std::fmt::Write as _;
use std::path::Path;

use orchestra_graph::{
    CommandNode, Compiled, ConditionSource, Edge, Node, ResolvedAgent, ToolKind, kind_name,
};
use orchestra_prompts::ResolvedLayer;
use orchestra_spec::{FieldType, Reducer, display_path};

/// A path relative to `cwd` (`.` for `cwd` itself).
fn rel(path: &Path, cwd: &Path) -> String {
    let p = display_path(path, cwd);
    if p.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        p.display().to_string()
    }
}

/// The `orchestra compile` text output.
pub(crate) fn text(c: &Compiled, cwd: &Path) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pipeline {} ({})", c.name, rel(&c.pipeline_path, cwd));
    if let Some(d) = &c.description {
        let _ = writeln!(o, "  {}", d.trim());
    }
    match &c.project_file {
        Some(p) => {
            let _ = writeln!(
                o,
                "project {} (root {})",
                rel(p, cwd),
                rel(&c.project_root, cwd)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "project: no orchestra.yaml (root {})",
                rel(&c.project_root, cwd)
            );
        }
    }

    if !c.inputs.is_empty() {
        let _ = writeln!(o, "\ninputs:");
        let w = width(c.inputs.iter().map(|i| i.name.as_str()));
        let tw = width(c.inputs.iter().map(|i| i.ty.name()));
        let defaults: Vec<String> = c
            .inputs
            .iter()
            .map(|i| {
                let mut s = match (&i.default, i.is_required()) {
                    (Some(d), _) => format!("default {d}"),
                    (None, true) => "required".to_owned(),
                    (None, false) => "optional".to_owned(),
                };
                if let Some(a) = &i.allowed {
                    let vals: Vec<String> = a.iter().map(ToString::to_string).collect();
                    let _ = write!(s, ", one of {}", vals.join(", "));
                }
                s
            })
            .collect();
        let dw = width(defaults.iter().map(String::as_str));
        for (i, default) in c.inputs.iter().zip(&defaults) {
            let desc = i.description.as_deref().unwrap_or("").trim();
            let line = format!(
                "  {:w$}  {:tw$}  {default:dw$}  {desc}",
                i.name,
                i.ty.name()
            );
            let _ = writeln!(o, "{}", line.trim_end());
        }
    }

    if !c.repos.is_empty() {
        let _ = writeln!(o, "\nrepos:");
        let w = width(c.repos.iter().map(|r| r.name.as_str()));
        for r in &c.repos {
            let access = if r.write { "writable" } else { "read-only" };
            let _ = writeln!(o, "  {:w$}  {} ({access})", r.name, rel(&r.path, cwd));
        }
    }

    let _ = writeln!(o, "\nstate:");
    let w = width(c.channels.iter().map(|ch| ch.name.as_str()));
    for ch in c.channels.iter() {
        let base = orchestra_spec::BASE_CHANNELS.contains(&ch.name.as_str());
        let mut extra = Vec::new();
        if let Some(a) = &ch.allowed {
            let vals: Vec<String> = a.iter().map(ToString::to_string).collect();
            extra.push(format!("one of {}", vals.join(", ")));
        }
        if base {
            extra.push("base channel".to_owned());
        }
        let line = format!(
            "  {:w$}  {:7} {:7}  {}",
            ch.name,
            type_word(ch.ty),
            reducer_word(ch.reducer),
            extra.join("; ")
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }

    let nodes: Vec<&str> = std::iter::once("START")
        .chain(c.topology.agents.iter().map(String::as_str))
        .chain(std::iter::once("END"))
        .chain(
            c.topology
                .edges
                .iter()
                .any(|e| e.targets.contains(&Node::Fail))
                .then_some("FAIL"),
        )
        .collect();
    let _ = writeln!(o, "\nnodes: {}", nodes.join(", "));
    let _ = writeln!(o, "\nedges:");
    for e in &c.topology.edges {
        let _ = writeln!(o, "  {}", edge_line(c, e));
    }

    let _ = writeln!(o, "\nagents:");
    for a in &c.agents {
        agent(&mut o, c, a, cwd);
    }

    if !c.conditions.is_empty() {
        let _ = writeln!(o, "\nconditions:");
        for cond in c.conditions.values() {
            match &cond.source {
                ConditionSource::Rules(r) => {
                    let _ = writeln!(
                        o,
                        "  {}: rules in {} ({})",
                        cond.name,
                        rel(&r.path, cwd),
                        r.level
                    );
                    for (i, rule) in r.rules.iter().enumerate() {
                        let _ = writeln!(
                            o,
                            "    {}. when {}  -> {}",
                            i + 1,
                            rule.when,
                            rule.to.join(", ")
                        );
                    }
                    let _ = writeln!(o, "    otherwise -> {}", r.default.join(", "));
                }
                ConditionSource::Executable { path, level } => {
                    let _ = writeln!(
                        o,
                        "  {}: executable {} ({level})",
                        cond.name,
                        rel(path, cwd)
                    );
                }
                ConditionSource::Registered => {
                    let _ = writeln!(o, "  {}: registered function", cond.name);
                }
            }
        }
    }

    if !c.outputs.is_empty() {
        let _ = writeln!(
            o,
            "\noutputs (written when the session completes, relative to the project root):"
        );
        let w = width(c.outputs.iter().map(|(n, _, _)| n));
        for (name, _, out) in c.outputs.iter() {
            let path = out.path.as_ref().map_or_else(
                || {
                    let string = c
                        .channels
                        .get(&out.from.value)
                        .is_some_and(|ch| ch.ty == FieldType::String);
                    let ext = if string || out.template.is_some() {
                        "md"
                    } else {
                        "json"
                    };
                    format!(".orchestra/outputs/{{{{ session }}}}/{name}.{ext}")
                },
                |p| p.value.clone(),
            );
            let how = if out.template.is_some() {
                "rendered from its template"
            } else {
                "as it is"
            };
            let _ = writeln!(
                o,
                "  {name:w$}  {path}  <- state `{}`, {how}",
                out.from.value
            );
        }
    }

    let l = &c.limits;
    let _ = write!(
        o,
        "\nlimits: max_steps {}, max_failures {}, max_parallel {}, node_timeout {}",
        l.max_steps,
        l.max_failures,
        l.max_parallel,
        orchestra_spec::fmt_duration(l.node_timeout.0)
    );
    if let Some(t) = l.max_tokens {
        let _ = write!(o, ", max_tokens {t}");
    }
    if let Some(c) = l.max_cost {
        let _ = write!(o, ", max_cost {}", orchestra_runtime::usd(c));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "\nok: {}, {}, {}, {}",
        count(c.agents.len(), "agent"),
        count(c.topology.edges.len(), "edge"),
        count(c.conditions.len(), "condition"),
        count(c.warnings.len(), "warning")
    );
    o
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn edge_line(c: &Compiled, e: &Edge) -> String {
    let name = |n: Node| c.topology.name(n).to_owned();
    let from: Vec<String> = e.sources.iter().map(|&s| name(s)).collect();
    let sep = if e.condition.is_some() { " | " } else { ", " };
    let to: Vec<String> = e.targets.iter().map(|&t| name(t)).collect();
    let mut line = format!("{} -> {}", from.join(" + "), to.join(sep));
    let mut notes = Vec::new();
    if e.sources.len() > 1 {
        notes.push(format!("join: {}", e.join));
    }
    if let Some(cond) = &e.condition {
        notes.push(format!("condition: {cond}"));
    }
    if let Some(f) = &e.for_each {
        notes.push(format!("for_each: {f}"));
    }
    if let Some(m) = e.max_loops {
        let then = e
            .on_max_loops
            .map_or_else(|| "then fail".to_owned(), |o| format!("then {}", name(o)));
        notes.push(format!("max_loops: {m}, {then}"));
    }
    if e.max_loops.is_some() && !e.loop_targets.is_empty() {
        let l: Vec<String> = e.loop_targets.iter().map(|&t| name(t)).collect();
        notes.push(format!("loops back via {}", l.join(", ")));
    }
    if let Some(r) = &e.reason {
        notes.push(format!("reason: {r:?}"));
    }
    if !notes.is_empty() {
        let _ = write!(line, "  ({})", notes.join("; "));
    }
    line
}

fn agent(o: &mut String, c: &Compiled, a: &ResolvedAgent, cwd: &Path) {
    let _ = match &a.description {
        Some(d) => writeln!(o, "  {}: {}", a.name, d.trim()),
        None => writeln!(o, "  {}:", a.name),
    };
    if let Some(cmd) = &a.command {
        command_node(o, c, a, cmd);
        writes_and_errors(o, c, a);
        return;
    }
    if let Some(call) = &a.call {
        let child = &call.compiled;
        let _ = writeln!(
            o,
            "    calls        {} (pipeline `{}`, {} agent{}; runs as a child session)",
            call.file,
            child.name,
            child.agents.len(),
            if child.agents.len() == 1 { "" } else { "s" }
        );
        for (k, v) in &call.with {
            let v = v
                .as_str()
                .map_or_else(|| v.to_string(), |s| format!("{s:?}"));
            let _ = writeln!(o, "    with         {k} = {v}");
        }
        writes_and_errors(o, c, a);
        let _ = writeln!(o, "    runs         retries {}", a.retries);
        return;
    }
    let m = &a.model;
    let _ = writeln!(o, "    provider     {} ({})", m.provider, kind_name(m.kind));
    let model = match (&m.model, &m.alias) {
        (Some(model), Some(alias)) => format!("{model} (alias {alias})"),
        (Some(model), None) => model.clone(),
        (None, _) => "(none)".to_owned(),
    };
    let _ = writeln!(o, "    model        {model}");
    let price = match orchestra_runtime::agent_price(c, a) {
        Some(p) => format!(
            "${} in, ${} out, ${} cache read, ${} cache write (USD per million tokens)",
            p.input, p.output, p.cache_read, p.cache_write
        ),
        None => "unknown (its runs' cost is unknown; give it under `prices:`)".to_owned(),
    };
    let _ = writeln!(o, "    price        {price}");
    if a.tools.is_empty() {
        let _ = writeln!(o, "    tools        (none)");
    } else {
        let tools: Vec<String> = a
            .tools
            .iter()
            .map(|t| {
                let kind = match &t.kind {
                    ToolKind::Builtin { .. } => "built-in",
                    ToolKind::Shell { .. } => "shell",
                    ToolKind::Registered => "registered",
                    ToolKind::Mcp { .. } => "MCP",
                };
                format!("{} ({kind})", t.name)
            })
            .collect();
        let _ = writeln!(o, "    tools        {}", tools.join(", "));
    }
    let lw = width(
        a.layers
            .iter()
            .map(|l| l.name.as_deref().unwrap_or("(inline)")),
    );
    for l in &a.layers {
        let _ = writeln!(o, "    {:12} {}", l.kind.key(), layer_origin(l, lw, cwd));
    }
    if let Some(s) = &a.output_schema {
        let _ = writeln!(
            o,
            "    output       {} (up to {} retries)",
            schema_summary(s),
            a.output_max_retries
        );
    }
    writes_and_errors(o, c, a);
}

/// A command node's program, where it runs, and its limits.
fn command_node(o: &mut String, c: &Compiled, a: &ResolvedAgent, cmd: &CommandNode) {
    let argv = serde_json::to_string(&cmd.argv).unwrap_or_default();
    let _ = writeln!(o, "    command      {argv} (no model; argv, not a shell)");
    let dir = match cmd.repo.as_deref().and_then(|r| c.repo(r)) {
        Some(r) if r.write => format!(
            "repository `{}` (its session worktree; changes are committed)",
            r.name
        ),
        Some(r) => format!("repository `{}` ({})", r.name, r.path.display()),
        None => "the project root".to_owned(),
    };
    let _ = writeln!(o, "    runs in      {dir}");
    if !cmd.env.is_empty() {
        let env: Vec<String> = cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(o, "    env          {}", env.join(" "));
    }
    let _ = writeln!(
        o,
        "    runs         timeout {}, retries {}",
        orchestra_spec::fmt_duration(a.timeout.0),
        a.retries
    );
}

/// An agent's state writes and its `on_error` route.
fn writes_and_errors(o: &mut String, c: &Compiled, a: &ResolvedAgent) {
    if !a.writes.is_empty() {
        let w: Vec<String> = a
            .writes
            .iter()
            .map(|w| {
                let p = if w.pointer.is_empty() {
                    "(whole output)"
                } else {
                    &w.pointer
                };
                format!("{} <- {p}", w.field)
            })
            .collect();
        let _ = writeln!(o, "    writes       {}", w.join(", "));
    }
    if a.has_model() {
        if !a.write_repos.is_empty() {
            let _ = writeln!(o, "    changes      {}", a.write_repos.join(", "));
        }
        let mode = match a.mode {
            orchestra_spec::Mode::Autonomous => "autonomous",
            orchestra_spec::Mode::Interactive => "interactive",
        };
        let _ = writeln!(
            o,
            "    runs         {mode}, max_turns {}, timeout {}, retries {}",
            a.max_turns,
            orchestra_spec::fmt_duration(a.timeout.0),
            a.retries
        );
    }
    if let Some(h) = c.topology.on_error_of(a.index) {
        let _ = writeln!(
            o,
            "    on_error     {} (the failure goes to state `errors`)",
            c.topology.name(h)
        );
    }
}

fn layer_origin(l: &ResolvedLayer, w: usize, cwd: &Path) -> String {
    match (&l.name, &l.level) {
        (Some(name), Some(level)) => format!("{name:w$}  {} ({level})", rel(&l.path, cwd)),
        _ => format!("{:w$}  {}:{}", "(inline)", rel(&l.path, cwd), l.line),
    }
}

fn schema_summary(s: &serde_json::Value) -> String {
    let ty = s.get("type").and_then(|t| t.as_str()).unwrap_or("any");
    let req: Vec<&str> = s
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if req.is_empty() {
        format!("JSON {ty}")
    } else {
        format!("JSON {ty} with {}", req.join(", "))
    }
}

fn width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

fn type_word(t: FieldType) -> &'static str {
    match t {
        FieldType::Any => "any",
        FieldType::String => "string",
        FieldType::Number => "number",
        FieldType::Integer => "integer",
        FieldType::Boolean => "boolean",
        FieldType::Array => "array",
        FieldType::Object => "object",
    }
}

fn reducer_word(r: Reducer) -> &'static str {
    match r {
        Reducer::Replace => "replace",
        Reducer::Append => "append",
        Reducer::Merge => "merge",
        Reducer::Sum => "sum",
    }
}

/// The `orchestra compile --prompts` output: each agent's system prompt under a header.
pub(crate) fn prompts(c: &Compiled, rendered: &[(String, String)], inputs: &[String]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# system prompts of pipeline {} (initial state; inputs: {})",
        c.name,
        if inputs.is_empty() {
            "none".to_owned()
        } else {
            inputs.join(", ")
        }
    );
    for (name, prompt) in rendered {
        let layers = c
            .agent(name)
            .map(|a| {
                a.layers
                    .iter()
                    .map(|l| {
                        format!(
                            "{} {}",
                            l.kind.key(),
                            l.name.as_deref().unwrap_or("(inline)")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(o, "\n=== {name} ({layers}) ===\n{prompt}");
    }
    o
}
