//! The report as one self-contained HTML file: inline CSS and an inline SVG graph, no scripts,
//! nothing loaded from outside; every piece of session text is escaped.

use std::fmt::Write as _;

use serde_json::Value;

use super::model::{Report, Run, step_tokens};
use super::secs;
use crate::views::route::route_line;
use crate::views::when;

/// `s` escaped for HTML text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #999;padding:.2rem .5rem;text-align:left;vertical-align:top}
pre{background:#f4f4f4;border:1px solid #ccc;padding:.5rem;overflow:auto;white-space:pre-wrap}
.graph{overflow:auto;border:1px solid #ccc;padding:.5rem}
svg text{font:13px system-ui,sans-serif}svg .elabel{font-size:11px}
svg .node rect{fill:#fff;stroke:#555;stroke-width:1}svg .node.ran rect{fill:#e8f0ff;stroke:#000;stroke-width:3}
svg .node.ran text{font-weight:bold}svg .edge path{stroke:#888;stroke-width:1}svg .edge.taken path{stroke:#000;stroke-width:2.5}
svg marker path{fill:#444}.run{border-left:3px solid #999;padding-left:.8rem;margin:1rem 0}";

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
        "<div class=\"run\"><h4>{} #{}{attempt}</h4><p>{} · {} · tokens {} in / {} out{cost}</p>",
        esc(&r.node),
        r.run_index,
        esc(&r.status),
        secs(r.duration_ms),
        r.tokens_in,
        r.tokens_out
    );
    if let Some(e) = &r.error {
        let _ = writeln!(o, "<p><strong>Error:</strong> {}</p>", esc(e));
    }
    for u in &r.mcp_unavailable {
        let _ = writeln!(
            o,
            "<p class=\"mcp-unavailable\"><strong>MCP server <code>{}</code> unavailable:</strong> {} (the agent went on without its tools)</p>",
            esc(&u.server),
            esc(&u.why)
        );
    }
    if let Some(a) = &r.answer {
        let _ = writeln!(o, "<p>Answer:</p><pre>{}</pre>", esc(a));
    }
    for t in &r.tool_calls {
        let mark = if t.is_error { " (error)" } else { "" };
        let cut = if t.result_cut {
            format!(" (first {} of {} bytes)", t.result.len(), t.result_bytes)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "<details><summary>Tool <code>{}</code>{mark} · {}</summary><p>Arguments:</p><pre>{}</pre><p>Result{cut}:</p><pre>{}</pre></details>",
            esc(&t.tool),
            secs(t.duration_ms),
            esc(&t.args),
            esc(&t.result)
        );
    }
    o.push_str("</div>\n");
}

fn inputs(v: &Value) -> String {
    let Some(m) = v.as_object().filter(|m| !m.is_empty()) else {
        return "(none)".to_owned();
    };
    m.iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            format!("<code>{}</code> = {}", esc(k), esc(&v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole report as an HTML document.
pub(crate) fn render(r: &Report) -> String {
    let h = &r.session;
    let mut o = String::new();
    let title = format!("{} — session {}", h.pipeline, h.id);
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1><table>", esc(&title));
    let row = |o: &mut String, k: &str, v: &str| {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    row(
        &mut o,
        "Pipeline",
        &format!(
            "{} (<code>{}</code>)",
            esc(&h.pipeline),
            esc(&h.pipeline_path)
        ),
    );
    row(&mut o, "Session", &format!("<code>{}</code>", esc(&h.id)));
    if let Some(n) = &h.name {
        row(&mut o, "Name", &esc(n));
    }
    row(&mut o, "Inputs", &inputs(&h.inputs));
    let note = h
        .note
        .as_deref()
        .map(|n| format!(": {}", esc(n)))
        .unwrap_or_default();
    row(
        &mut o,
        "Outcome",
        &format!("<strong>{}</strong>{note}", esc(&h.status)),
    );
    row(&mut o, "Started", &when(h.started_at));
    row(&mut o, "Duration", &secs(h.duration_ms));
    row(
        &mut o,
        "Tokens",
        &format!("{} in / {} out", h.tokens_in, h.tokens_out),
    );
    if h.cache_read_tokens > 0 || h.cache_write_tokens > 0 {
        let cache = format!(
            "{} read / {} written",
            h.cache_read_tokens, h.cache_write_tokens
        );
        row(&mut o, "Prompt cache", &cache);
    }
    if let Some(c) = h.cost_usd {
        row(&mut o, "Cost", &format!("${c:.4}"));
    }
    row(&mut o, "Tool calls", &h.tool_calls.to_string());
    if let (Some(p), Some(c)) = (&h.parent_session, h.parent_checkpoint) {
        row(
            &mut o,
            "Forked from",
            &format!("<code>{}</code> at checkpoint {c}", esc(p)),
        );
    }
    o.push_str("</table>\n<h2>Graph</h2>\n<p>Nodes that ran have a solid bold border and a ✓ (×N when they ran N times); the others are dashed. Edges that were taken are solid and say how often; the others are dashed.</p>\n<div class=\"graph\">\n");
    o.push_str(&super::svg::render(&r.graph));
    o.push_str("</div>\n<h2>Timeline</h2>\n<table><tr><th>Step</th><th>Start</th><th>Nodes</th><th>Duration</th><th>Tokens</th><th>Commits</th></tr>\n");
    for s in &r.steps {
        let (tin, tout) = step_tokens(s);
        let _ = writeln!(
            o,
            "<tr><td><a href=\"#step-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{tin} in / {tout} out</td><td>{4}</td></tr>",
            s.step,
            s.at_ms.map_or_else(|| "—".to_owned(), secs),
            esc(&s.nodes.join(", ")),
            secs(s.duration_ms),
            s.commits.len()
        );
    }
    o.push_str("</table>\n");
    for s in &r.steps {
        let _ = writeln!(
            o,
            "<h3 id=\"step-{0}\">Step {0}: {1}</h3>",
            s.step,
            esc(&s.nodes.join(", "))
        );
        for x in &s.runs {
            run(&mut o, x);
        }
        if !s.routes.is_empty() || !s.commits.is_empty() {
            o.push_str("<ul>\n");
        }
        for rt in &s.routes {
            let cond = rt
                .condition
                .as_deref()
                .map(|c| format!(" [{}]", esc(c)))
                .unwrap_or_default();
            let line = route_line(
                &rt.from,
                rt.decision.as_deref(),
                &rt.targets,
                rt.loop_round,
                rt.loop_max,
            );
            let _ = writeln!(o, "<li>Route: {}{cond}</li>", esc(&line));
        }
        for c in &s.commits {
            let _ = write!(
                o,
                "<li>Commit <code>{}</code> in {}: {} ({} file(s), +{} −{})<ul>",
                esc(&c.sha[..c.sha.len().min(12)]),
                esc(&c.repo),
                esc(&c.subject),
                c.files_changed,
                c.insertions,
                c.deletions
            );
            for f in &c.files {
                let _ = write!(
                    o,
                    "<li><code>{}</code> +{} −{}</li>",
                    esc(&f.path),
                    f.insertions,
                    f.deletions
                );
            }
            o.push_str("</ul></li>\n");
        }
        if !s.routes.is_empty() || !s.commits.is_empty() {
            o.push_str("</ul>\n");
        }
    }
    if !r.human_turns.is_empty() {
        o.push_str("<h2>Human turns</h2>\n");
        for c in &r.human_turns {
            let _ = writeln!(o, "<h3>{} #{}</h3>", esc(&c.node), c.run_index);
            for m in &c.messages {
                let _ = writeln!(
                    o,
                    "<p><strong>{}</strong> (turn {}):</p><pre>{}</pre>",
                    esc(&m.role),
                    m.turn,
                    esc(&m.content)
                );
            }
        }
    }
    if !r.repos.is_empty() {
        o.push_str("<h2>Repositories</h2>\n<ul>\n");
        for repo in &r.repos {
            let gone = if repo.removed {
                " (branch removed)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<li>{}: branch <code>{}</code>{gone}</li>",
                esc(&repo.name),
                esc(&repo.branch)
            );
        }
        o.push_str("</ul>\n");
    }
    o.push_str("<h2>Output files</h2>\n");
    if r.outputs.is_empty() {
        o.push_str("<p>(none)</p>\n");
    } else {
        o.push_str("<ul>\n");
        for p in &r.outputs {
            let _ = writeln!(o, "<li><code>{}</code></li>", esc(p));
        }
        o.push_str("</ul>\n");
    }
    if !r.forks.is_empty() {
        o.push_str("<h2>Forks</h2>\n<ul>\n");
        for f in &r.forks {
            let at = f
                .checkpoint
                .map(|c| format!(" at checkpoint {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "<li><code>{}</code>{at} ({})</li>",
                esc(&f.id),
                esc(&f.status)
            );
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert('x') & "y"</script>"#),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
