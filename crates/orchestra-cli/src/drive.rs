//! What `run`, `resume` and `replay` share: the flags of a drive (one struct, so the three
//! commands spell and document them alike) and driving a session with this terminal's human and
//! an attach socket, then reporting how it ended.

use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestra_otel::Traces;
use orchestra_runtime::interactive::Interaction;
use orchestra_runtime::{
    DriveOptions, Engine, EventLog, Fanout, LimitOverrides, Outcome, RuntimeError,
};

use crate::engine::{Progress, ctrl_c, drive_options, report_error, report_json, report_outcome};
use crate::exit;
use crate::human::{Host, TerminalHuman, local_human};

/// How a session is driven and its outcome shown.
#[derive(Debug, clap::Args)]
pub(crate) struct DriveArgs {
    /// Show model text as it arrives.
    #[arg(long)]
    stream: bool,
    /// Print only warnings, failures and the outcome.
    #[arg(long, short)]
    quiet: bool,
    /// Print the outcome as one JSON line on stdout (session, status, steps, tokens,
    /// checkpoints, number of messages, final state) instead of text.
    #[arg(long)]
    json: bool,
    /// Stop this drive once the session has made N steps in all (replaces `limits.max_steps`
    /// for this drive only, so `orchestra resume ID --max-steps M` can go on from there).
    #[arg(long, value_name = "N")]
    max_steps: Option<u32>,
    /// Stop this drive once the session has spent N tokens in all (replaces `limits.max_tokens`
    /// for this drive only; a fork counts its own, not its parent's before the fork).
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Stop this drive once the session's model calls have cost USD dollars in all, at the
    /// prices of `prices:` and the built-in ones (replaces `limits.max_cost` for this drive
    /// only; runs of models without a known price do not count; a fork counts its own).
    #[arg(long, value_name = "USD", value_parser = parse_usd)]
    max_cost: Option<f64>,
    /// Do not chat here: the session pauses at its next interactive agent, to be joined with
    /// `orchestra attach ID` (without a terminal this is what happens anyway).
    #[arg(long)]
    detach: bool,
    /// Write the drive's events to FILE, one JSON object per line, each flushed as it happens
    /// (appended; created if needed). `-` writes them to stdout, and the outcome then goes to
    /// stderr with the progress lines. The format is in docs/events.md. (With
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` set, the drive also exports an OpenTelemetry trace over
    /// OTLP/HTTP; see the same file.)
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Chat on stdin even when it is not a terminal, as `orchestra attach` does: each line is
    /// the human's, and the end of input leaves the chat (the session pauses there). How
    /// `orchestra mcp` gives a paused session the answer of its MCP client.
    #[arg(long, hide = true, conflicts_with = "detach")]
    human_stdin: bool,
}

/// Where a drive's events go besides the progress lines, set up before the session starts.
pub(crate) struct Sinks {
    /// `--events`: the writer, and the name warnings give it.
    events: Option<(Box<dyn Write + Send>, String)>,
    /// OpenTelemetry traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces one) is set.
    traces: Option<Traces>,
}

impl DriveArgs {
    /// Whether the outcome is printed as JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Whether progress lines are left out (`--quiet`, or `--json` which owns stdout).
    pub(crate) fn quiet(&self) -> bool {
        self.quiet || self.json
    }

    /// Whether a human answers on stdin (`--human-stdin`, the answers of `orchestra mcp`).
    pub(crate) fn human_stdin(&self) -> bool {
        self.human_stdin
    }

    /// Stops this drive once the session has made `n` steps in all (as `--max-steps`).
    pub(crate) fn limit_steps(&mut self, n: u32) {
        self.max_steps = Some(n);
    }

    /// Whether `--events -` writes the events to stdout.
    fn events_to_stdout(&self) -> bool {
        self.events.as_deref() == Some(Path::new("-"))
    }

    /// Opens the `--events` file and sets up the OpenTelemetry exporter, before the session
    /// starts; a file that cannot be opened, a wrong `OTEL_*` variable or `ORCHESTRA_GIT_TIMEOUT`
    /// is bad input (printed; the exit code returned).
    pub(crate) fn sinks(&self) -> io::Result<Result<Sinks, u8>> {
        let mut err = io::stderr().lock();
        let events = match &self.events {
            None => None,
            Some(_) if self.events_to_stdout() && self.json => {
                writeln!(
                    err,
                    "error: `--events -` and `--json` both write to stdout; give --events a file"
                )?;
                return Ok(Err(exit::BAD_INPUT));
            }
            Some(_) if self.events_to_stdout() => Some((
                Box::new(io::stdout()) as Box<dyn Write + Send>,
                "stdout".to_owned(),
            )),
            Some(path) => {
                let opened = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path);
                match opened {
                    Ok(f) => Some((
                        Box::new(f) as Box<dyn Write + Send>,
                        path.display().to_string(),
                    )),
                    Err(e) => {
                        writeln!(
                            err,
                            "error: cannot open the events file {}: {e}",
                            path.display()
                        )?;
                        return Ok(Err(exit::BAD_INPUT));
                    }
                }
            }
        };
        let traces = match Traces::from_env(&|k| std::env::var(k).ok()) {
            Ok(t) => t,
            Err(e) => {
                writeln!(err, "error: {e}")?;
                return Ok(Err(exit::BAD_INPUT));
            }
        };
        // Read again by every git run against a remote: a bad value is refused up front.
        if let Err(e) = orchestra_git::network_timeout() {
            writeln!(err, "error: {e}")?;
            return Ok(Err(exit::BAD_INPUT));
        }
        Ok(Ok(Sinks { events, traces }))
    }

    /// Drives session `id` (when known; `None` drives without an attach socket or a human here,
    /// for a session that could not be looked up and whose drive will report why): `go` gets
    /// the drive options and runs or resumes the session. Prints the outcome; returns the exit
    /// code.
    pub(crate) async fn drive<F, Fut>(
        &self,
        sinks: Sinks,
        engine: &Engine,
        db: &Path,
        id: Option<&str>,
        command: &str,
        go: F,
    ) -> io::Result<u8>
    where
        F: FnOnce(DriveOptions) -> Fut,
        Fut: Future<Output = Result<Outcome, RuntimeError>>,
    {
        let progress = Arc::new(Progress::new(self.quiet()));
        let mut events = Fanout::new().with(progress.clone());
        if let Some((out, shown)) = sinks.events {
            let warn = move |e: &io::Error| {
                let _ = writeln!(
                    io::stderr(),
                    "warning: cannot write the events to {shown}: {e}; the run goes on without them"
                );
            };
            let session = id.map(str::to_owned);
            events = events.with(Arc::new(EventLog::new(out, session, Box::new(warn))));
        }
        if let Some(t) = &sinks.traces {
            events = events.with(t.sink());
        }
        let mut opts = drive_options(Arc::new(events), self.stream, ctrl_c());
        opts.limits = LimitOverrides {
            max_steps: self.max_steps,
            max_tokens: self.max_tokens,
            max_cost: self.max_cost,
        };
        // Interactive agents chat at this terminal; attach clients can join while it runs.
        let host = id.map(|id| {
            let (local, no_human) = if self.human_stdin {
                (
                    Some(Arc::new(TerminalHuman) as Arc<dyn Interaction>),
                    "stdin is closed",
                )
            } else {
                local_human(self.detach)
            };
            Host::start(
                &crate::store::socket_anchor(db, engine.root()),
                id,
                command,
                local,
                no_human,
            )
        });
        if let Some(h) = &host {
            h.wire(&mut opts);
        }
        let result = go(opts).await;
        if let Some(h) = host {
            h.finish(&result).await;
        }
        if let Some(t) = sinks.traces
            && let Err(e) = t.finish()
        {
            writeln!(io::stderr(), "warning: {e}")?;
        }
        match result {
            Ok(out) if self.json => report_json(engine, &out).await,
            Ok(out) => report_outcome(&out, progress.elapsed_ms(), db, self.events_to_stdout()),
            Err(e) => report_error(&e),
        }
    }
}

/// A `--max-cost` value: a finite amount of US dollars, not negative (`0.5`, `$2`).
fn parse_usd(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_start_matches('$')
        .parse()
        .map_err(|_| format!("`{s}` is not an amount of US dollars (e.g. `0.50`)"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "`{s}` is not an amount of US dollars (e.g. `0.50`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_usd;

    #[test]
    fn max_cost_takes_dollars_and_refuses_the_rest() {
        assert_eq!(parse_usd("0.5"), Ok(0.5));
        assert_eq!(parse_usd("$2"), Ok(2.0));
        for bad in ["-1", "nan", "inf", "five", ""] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
    }
}
