//! The progress lines a drive prints to stderr: one per step, agent start and finish (time,
//! tokens, cost, tool calls), routing, retries and rate limits.

use std::io::{self, Write as _};
use std::sync::Mutex;
use std::time::Instant;

use orchestra_runtime::{Event, EventSink};

use crate::cost::{cache_text, cost};
use crate::engine::secs;

/// Prints progress lines to stderr: a line per step, node start/finish with time and tokens.
pub(crate) struct Progress {
    quiet: bool,
    started: Instant,
    /// The agent whose text is being streamed, and whether that text ended a line.
    streaming: Mutex<Option<(String, bool)>>,
}

impl Progress {
    pub(crate) fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            started: Instant::now(),
            streaming: Mutex::new(None),
        }
    }

    fn line(&self, pad: &str, text: &str) {
        let mut err = io::stderr().lock();
        if let Ok(mut s) = self.streaming.lock()
            && let Some((_, false)) = s.take()
        {
            let _ = writeln!(err);
        }
        let _ = writeln!(err, "{pad}{text}");
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        if self.quiet && !shown_when_quiet(&event) {
            return;
        }
        self.show(event, "");
    }
}

impl Progress {
    /// Prints `event`'s line, after `pad` (a child session's lines are indented under its
    /// call node).
    fn show(&self, event: Event, pad: &str) {
        match event {
            Event::Child { child, node, inner } => match *inner {
                Event::SessionStarted {
                    pipeline,
                    from_step,
                    ..
                } => self.line(
                    pad,
                    &format!(
                        "  call   {node} -> child session {child} ({pipeline}){}",
                        from_step
                            .map(|s| format!(", resuming after checkpoint {s}"))
                            .unwrap_or_default()
                    ),
                ),
                Event::SessionFinished { status, .. } => self.line(
                    pad,
                    &format!("  call   {node} <- child session {child} {status}"),
                ),
                other => self.show(other, &format!("{pad}    ")),
            },
            Event::SessionStarted {
                session,
                pipeline,
                from_step,
            } => match from_step {
                Some(s) => self.line(
                    pad,
                    &format!("resuming session {session} ({pipeline}) after checkpoint {s}"),
                ),
                None => self.line(pad, &format!("session {session} ({pipeline})")),
            },
            Event::StepStarted { step, nodes } => {
                self.line(pad, &format!("step {step}: {}", nodes.join(", ")))
            }
            Event::NodeStarted { node, attempt, .. } => {
                if attempt == 0 {
                    self.line(pad, &format!("  start  {node}"));
                } else {
                    self.line(pad, &format!("  start  {node} (attempt {})", attempt + 1));
                }
            }
            Event::Text { node, text } => {
                if let Ok(mut s) = self.streaming.lock() {
                    let mut out = io::stderr().lock();
                    match s.as_ref() {
                        Some((n, _)) if *n == node => {}
                        other => {
                            let newline = matches!(other, Some((_, false)));
                            let _ = write!(out, "{}  [{node}] ", if newline { "\n" } else { "" });
                        }
                    }
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                    *s = Some((node, text.ends_with('\n')));
                }
            }
            Event::ToolCalled {
                node,
                tool,
                is_error,
                ..
            } => {
                let mark = if is_error { " (error)" } else { "" };
                self.line(pad, &format!("  tool   {node} -> {tool}{mark}"));
            }
            Event::NodeRetry {
                node,
                attempt,
                error,
                delay_ms,
                ..
            } => self.line(
                pad,
                &format!(
                    "  retry  {node}: attempt {} failed: {error}; next in {}",
                    attempt + 1,
                    secs(delay_ms)
                ),
            ),
            Event::NodeFinished {
                node,
                duration_ms,
                tokens_in,
                tokens_out,
                cache_read_tokens,
                cache_write_tokens,
                cost_usd,
                tool_calls,
                reused,
                exit_code,
                ..
            } => {
                if reused {
                    self.line(
                        pad,
                        &format!(
                            "  done   {node}  (finished before the interruption; not run again)"
                        ),
                    );
                } else if let Some(code) = exit_code {
                    self.line(
                        pad,
                        &format!(
                            "  done   {node}  {}  command exited with {code}",
                            secs(duration_ms)
                        ),
                    );
                } else {
                    self.line(pad, &format!(
                        "  done   {node}  {}  tokens {tokens_in} in / {tokens_out} out{}  {}  tools {tool_calls}",
                        secs(duration_ms),
                        cache_text(cache_read_tokens, cache_write_tokens),
                        cost(cost_usd)
                    ));
                }
            }
            Event::NodeFailed { node, error, .. } => {
                self.line(pad, &format!("  FAILED {node}: {error}"))
            }
            Event::Routed {
                from,
                condition,
                decision,
                targets,
                loop_round,
                loop_max,
                ..
            } => {
                // Plain edges are what the next step line shows; decisions are news.
                if condition.is_some() || loop_max.is_some() {
                    self.line(
                        pad,
                        &format!(
                            "  route  {}",
                            orchestra_runtime::views::route::route_line(
                                &from,
                                decision.as_deref(),
                                &targets,
                                loop_round,
                                loop_max
                            )
                        ),
                    );
                }
            }
            // Not progress lines of their own.
            Event::Checkpoint { .. }
            | Event::ModelTurn { .. }
            | Event::HumanTurn { .. }
            | Event::SessionFinished { .. } => {}
            Event::RateLimited {
                provider, limit, ..
            } => {
                let at_once = if limit == 1 {
                    "1 request at a time".to_owned()
                } else {
                    format!("{limit} requests at a time")
                };
                self.line(pad, &format!(
                    "  rate   provider `{provider}` is rate limited (429): {at_once}; the other agents wait their turn"
                ));
            }
            Event::Warning { message } => self.line(pad, &format!("warning: {message}")),
        }
    }
}

/// Whether `--quiet` still prints `event` (also when a child session's).
fn shown_when_quiet(event: &Event) -> bool {
    match event {
        Event::Child { inner, .. } => shown_when_quiet(inner),
        other => matches!(
            other,
            Event::Warning { .. } | Event::NodeFailed { .. } | Event::RateLimited { .. }
        ),
    }
}

impl Progress {
    /// Time since the progress printer was made.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
