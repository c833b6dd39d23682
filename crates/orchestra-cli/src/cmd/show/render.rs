//! `show` as text: the steps with their runs and routing; a node's turns in full; the state.

use std::io::{self, Write};

use serde_json::Value;

use super::{RouteView, RunView, Shown, ToolView, TurnView};
use crate::engine::secs;
use orchestra_runtime::views::route::route_line;

/// Sizes as people read them: `812 B`, `64.0 KiB`, `1.5 MiB`.
fn size(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

/// `text` indented by `pad` on every line.
fn block(w: &mut impl Write, pad: &str, text: &str) -> io::Result<()> {
    for line in text.lines() {
        writeln!(w, "{pad}{line}")?;
    }
    if text.is_empty() {
        writeln!(w, "{pad}(empty)")?;
    }
    Ok(())
}

fn route(w: &mut impl Write, pad: &str, r: &RouteView) -> io::Result<()> {
    let cond = r
        .condition
        .as_deref()
        .map(|c| format!("  [{c}]"))
        .unwrap_or_default();
    writeln!(
        w,
        "{pad}route  {}{cond}",
        route_line(
            &r.from,
            r.decision.as_deref(),
            &r.targets,
            r.loop_round,
            r.loop_max
        )
    )
}

fn run_line(r: &RunView) -> String {
    let attempt = if r.attempt > 0 {
        format!(" (attempt {})", r.attempt + 1)
    } else {
        String::new()
    };
    let mut s = format!(
        "{} #{}{attempt}  {}  {}  tokens {} in / {} out  tools {}",
        r.node,
        r.run_index,
        r.status,
        secs(r.duration_ms),
        r.tokens_in,
        r.tokens_out,
        r.tool_calls
    );
    if let Some(e) = &r.error {
        s.push_str(&format!("  error: {e}"));
    }
    s
}

/// A message's or answer's content blocks.
fn blocks(w: &mut impl Write, pad: &str, content: &Value) -> io::Result<()> {
    for b in content.as_array().into_iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => block(w, pad, b.get("text").and_then(Value::as_str).unwrap_or(""))?,
            Some("tool_use") => writeln!(
                w,
                "{pad}(asks for tool {} with {})",
                b.get("name").and_then(Value::as_str).unwrap_or("?"),
                b.get("input").unwrap_or(&Value::Null)
            )?,
            _ => writeln!(w, "{pad}{b}")?,
        }
    }
    Ok(())
}

fn tool(w: &mut impl Write, t: &ToolView) -> io::Result<()> {
    let mark = if t.is_error { "  (error)" } else { "" };
    writeln!(w, "      tool {}{mark}  {}", t.tool, secs(t.duration_ms))?;
    let cut = |is_cut: bool, shown: usize, total: u64| {
        if is_cut {
            format!(
                " (cut at {} of {}: the first 64 KiB are kept)",
                size(shown as u64),
                size(total)
            )
        } else {
            String::new()
        }
    };
    writeln!(
        w,
        "        arguments{}:",
        cut(t.args_cut, t.args.len(), t.args_bytes)
    )?;
    block(w, "          ", &t.args)?;
    writeln!(
        w,
        "        result ({}){}:",
        size(t.result_bytes),
        cut(t.result_cut, t.result.len(), t.result_bytes)
    )?;
    block(w, "          ", &t.result)
}

fn turn(w: &mut impl Write, t: &TurnView) -> io::Result<()> {
    writeln!(
        w,
        "    turn {}  {}  {}  {}  tokens {} in / {} out",
        t.turn,
        t.model,
        t.stop,
        secs(t.duration_ms),
        t.tokens_in,
        t.tokens_out
    )?;
    for m in t.messages.as_array().into_iter().flatten() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
        writeln!(w, "      sent ({role}):")?;
        blocks(w, "        | ", m.get("content").unwrap_or(&Value::Null))?;
    }
    writeln!(w, "      answer:")?;
    blocks(w, "        | ", &t.answer)?;
    for c in &t.tool_calls {
        tool(w, c)?;
    }
    Ok(())
}

/// The whole view as text.
pub(super) fn text(w: &mut impl Write, s: &Shown) -> io::Result<()> {
    let field = |k: &str| s.session.get(k).and_then(Value::as_str).unwrap_or("");
    writeln!(
        w,
        "session {}  {}  {}",
        field("id"),
        field("pipeline"),
        field("status")
    )?;
    if let Some(e) = s.session.get("error").and_then(Value::as_str) {
        writeln!(w, "error   {e}")?;
    }
    let last = s.checkpoints.last().copied().unwrap_or(0);
    writeln!(w, "checkpoint {} of {last}", s.checkpoint)?;
    if !s.traced {
        writeln!(
            w,
            "(this session was stored without prompts, answers or routing: an older release ran it)"
        )?;
    }
    match &s.node {
        None => {
            writeln!(w)?;
            for st in &s.steps {
                writeln!(w, "step {}: {}", st.step, st.nodes.join(", "))?;
                for r in &st.runs {
                    writeln!(w, "  run    {}", run_line(r))?;
                }
                for r in &st.routes {
                    route(w, "  ", r)?;
                }
            }
            if !s.children.is_empty() {
                writeln!(w)?;
                writeln!(w, "child sessions (call nodes; `orchestra show ID` shows one):")?;
                for c in &s.children {
                    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?");
                    writeln!(
                        w,
                        "  {}  step {}  {}  {}  {}",
                        text("node"),
                        c.get("step").and_then(Value::as_u64).unwrap_or(0),
                        text("id"),
                        text("pipeline"),
                        text("status")
                    )?;
                }
            }
            writeln!(w)?;
            writeln!(w, "state at checkpoint {}:", s.checkpoint)?;
            let state = serde_json::to_string_pretty(&s.state).map_err(io::Error::other)?;
            block(w, "  ", &state)?;
        }
        Some(node) => {
            let n: usize = s.steps.iter().map(|st| st.runs.len()).sum();
            writeln!(
                w,
                "node {node}: {n} run{} up to checkpoint {}",
                if n == 1 { "" } else { "s" },
                s.checkpoint
            )?;
            writeln!(
                w,
                "(the prompt of a turn is the system prompt, then every message sent and answered before it)"
            )?;
            for st in &s.steps {
                for r in &st.runs {
                    writeln!(w)?;
                    writeln!(w, "step {}  {}", st.step, run_line(r))?;
                    if let Some(sys) = &r.system {
                        writeln!(w, "  system prompt:")?;
                        block(w, "    | ", sys)?;
                    }
                    for t in &r.turns {
                        turn(w, t)?;
                    }
                }
                for r in &st.routes {
                    route(w, "  ", r)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(64 * 1024), "64.0 KiB");
        assert_eq!(size(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
