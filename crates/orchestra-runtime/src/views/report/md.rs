//! The report as Markdown: a Mermaid graph of the path taken; answers, arguments and results in
//! fenced blocks (longer fences than any backtick run inside), table cells escaped.

use std::fmt::Write as _;

use serde_json::Value;

use super::model::{Report, Run, step_tokens};
use super::secs;
use crate::views::route::route_line;
use crate::views::when;

/// Text safe in a table cell or a line of Markdown: no raw HTML, no column breaks.
fn cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// `text` in a fenced block that no backtick run inside can close.
fn fenced(o: &mut String, lang: &str, text: &str) {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        run = if ch == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    let _ = writeln!(o, "{fence}{lang}\n{}\n{fence}\n", text.trim_end());
}

fn inputs(v: &Value) -> String {
    let Some(m) = v.as_object().filter(|m| !m.is_empty()) else {
        return "(none)".to_owned();
    };
    m.iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            format!("`{}` = {}", cell(k), cell(&v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn run(o: &mut String, r: &Run) {
    let attempt = if r.attempt > 0 {
        format!(" (attempt {})", r.attempt + 1)
    } else {
        String::new()
    };
    let cost = r
        .cost_usd
        .map(|c| format!(" · ${c:.4}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "#### {} #{}{attempt}\n\n{} · {} · tokens {} in / {} out{cost}\n",
        cell(&r.node),
        r.run_index,
        r.status,
        secs(r.duration_ms),
        r.tokens_in,
        r.tokens_out
    );
    if let Some(e) = &r.error {
        let _ = writeln!(o, "**Error:** {}\n", cell(e));
    }
    for u in &r.mcp_unavailable {
        let _ = writeln!(
            o,
            "**MCP server `{}` unavailable:** {} (the agent went on without its tools)\n",
            cell(&u.server),
            cell(&u.why)
        );
    }
    if let Some(a) = &r.answer {
        let _ = writeln!(o, "Answer:\n");
        fenced(o, "text", a);
    }
    for t in &r.tool_calls {
        let mark = if t.is_error { " (error)" } else { "" };
        let _ = writeln!(
            o,
            "Tool `{}`{mark} · {}\n",
            cell(&t.tool),
            secs(t.duration_ms)
        );
        fenced(o, "json", &t.args);
        let cut = if t.result_cut {
            format!(" (first {} of {} bytes)", t.result.len(), t.result_bytes)
        } else {
            String::new()
        };
        let _ = writeln!(o, "Result{cut}:\n");
        fenced(o, "text", &t.result);
    }
}

/// The whole report as Markdown.
pub(crate) fn render(r: &Report) -> String {
    let h = &r.session;
    let mut o = String::new();
    let _ = writeln!(o, "# {} — session {}\n", cell(&h.pipeline), cell(&h.id));
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| Pipeline | {} (`{}`) |",
        cell(&h.pipeline),
        cell(&h.pipeline_path)
    );
    let _ = writeln!(o, "| Session | `{}` |", cell(&h.id));
    if let Some(n) = &h.name {
        let _ = writeln!(o, "| Name | {} |", cell(n));
    }
    let _ = writeln!(o, "| Inputs | {} |", inputs(&h.inputs));
    let note = h
        .note
        .as_deref()
        .map(|n| format!(": {}", cell(n)))
        .unwrap_or_default();
    let _ = writeln!(o, "| Outcome | **{}**{note} |", h.status);
    let _ = writeln!(o, "| Started | {} |", when(h.started_at));
    let _ = writeln!(o, "| Duration | {} |", secs(h.duration_ms));
    let _ = writeln!(o, "| Tokens | {} in / {} out |", h.tokens_in, h.tokens_out);
    if h.cache_read_tokens > 0 || h.cache_write_tokens > 0 {
        let _ = writeln!(
            o,
            "| Prompt cache | {} read / {} written |",
            h.cache_read_tokens, h.cache_write_tokens
        );
    }
    if let Some(c) = h.cost_usd {
        let _ = writeln!(o, "| Cost | ${c:.4} |");
    }
    let _ = writeln!(o, "| Tool calls | {} |", h.tool_calls);
    if let (Some(p), Some(c)) = (&h.parent_session, h.parent_checkpoint) {
        let _ = writeln!(o, "| Forked from | `{}` at checkpoint {c} |", cell(p));
    }
    let _ = writeln!(
        o,
        "\n## Graph\n\nNodes that ran are bold and marked ✓ (×N when they ran N times); edges say how often they were taken.\n"
    );
    fenced(&mut o, "mermaid", &r.graph.mermaid);

    let _ = writeln!(o, "## Timeline\n");
    let _ = writeln!(
        o,
        "| Step | Start | Nodes | Duration | Tokens | Commits |\n|---|---|---|---|---|---|"
    );
    for s in &r.steps {
        let (tin, tout) = step_tokens(s);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {tin} in / {tout} out | {} |",
            s.step,
            s.at_ms.map_or_else(|| "—".to_owned(), secs),
            cell(&s.nodes.join(", ")),
            secs(s.duration_ms),
            s.commits.len()
        );
    }
    let _ = writeln!(o);
    for s in &r.steps {
        let _ = writeln!(o, "### Step {}: {}\n", s.step, cell(&s.nodes.join(", ")));
        for x in &s.runs {
            run(&mut o, x);
        }
        for rt in &s.routes {
            let cond = rt
                .condition
                .as_deref()
                .map(|c| format!(" [{}]", cell(c)))
                .unwrap_or_default();
            let line = route_line(
                &rt.from,
                rt.decision.as_deref(),
                &rt.targets,
                rt.loop_round,
                rt.loop_max,
            );
            let _ = writeln!(o, "- Route: {}{cond}", cell(&line));
        }
        for c in &s.commits {
            let _ = writeln!(
                o,
                "- Commit `{}` in {}: {} ({} file(s), +{} −{})",
                &c.sha[..c.sha.len().min(12)],
                cell(&c.repo),
                cell(&c.subject),
                c.files_changed,
                c.insertions,
                c.deletions
            );
            for f in &c.files {
                let _ = writeln!(
                    o,
                    "  - `{}` +{} −{}",
                    cell(&f.path),
                    f.insertions,
                    f.deletions
                );
            }
        }
        if !s.routes.is_empty() || !s.commits.is_empty() {
            let _ = writeln!(o);
        }
    }
    if !r.human_turns.is_empty() {
        let _ = writeln!(o, "## Human turns\n");
        for c in &r.human_turns {
            let _ = writeln!(o, "### {} #{}\n", cell(&c.node), c.run_index);
            for m in &c.messages {
                let _ = writeln!(o, "**{}** (turn {}):\n", cell(&m.role), m.turn);
                fenced(&mut o, "text", &m.content);
            }
        }
    }
    if !r.repos.is_empty() {
        let _ = writeln!(o, "## Repositories\n");
        for repo in &r.repos {
            let gone = if repo.removed {
                " (branch removed)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "- {}: branch `{}`{gone}",
                cell(&repo.name),
                cell(&repo.branch)
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Output files\n");
    if r.outputs.is_empty() {
        let _ = writeln!(o, "(none)\n");
    }
    for p in &r.outputs {
        let _ = writeln!(o, "- `{}`", cell(p));
    }
    if !r.outputs.is_empty() {
        let _ = writeln!(o);
    }
    if !r.forks.is_empty() {
        let _ = writeln!(o, "## Forks\n");
        for f in &r.forks {
            let at = f
                .checkpoint
                .map(|c| format!(" at checkpoint {c}"))
                .unwrap_or_default();
            let _ = writeln!(o, "- `{}`{at} ({})", cell(&f.id), f.status);
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::{cell, fenced};

    #[test]
    fn fences_outlast_the_backticks_inside_and_cells_hold_no_markup() {
        let mut o = String::new();
        fenced(&mut o, "text", "a ```` b");
        assert_eq!(o, "`````text\na ```` b\n`````\n\n");
        assert_eq!(cell("<b>x</b> | y\nz"), "&lt;b>x&lt;/b> \\| y z");
    }
}
