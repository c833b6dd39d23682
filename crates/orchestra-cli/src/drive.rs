//! What `run`, `resume` and `replay` share: the flags of a drive (one struct, so the three
//! commands spell and document them alike) and driving a session with this terminal's human and
//! an attach socket, then reporting how it ended.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;

use orchestra_runtime::{DriveOptions, Engine, LimitOverrides, Outcome, RuntimeError};

use crate::engine::{Progress, ctrl_c, drive_options, report_error, report_json, report_outcome};
use crate::human::{Host, local_human};

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
    /// for this drive only).
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Do not chat here: the session pauses at its next interactive agent, to be joined with
    /// `orchestra attach ID` (without a terminal this is what happens anyway).
    #[arg(long)]
    detach: bool,
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

    /// Drives session `id` (when known; `None` drives without an attach socket or a human here,
    /// for a session that could not be looked up and whose drive will report why): `go` gets
    /// the drive options and runs or resumes the session. Prints the outcome; returns the exit
    /// code.
    pub(crate) async fn drive<F, Fut>(
        &self,
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
        let mut opts = drive_options(progress.clone(), self.stream, ctrl_c());
        opts.limits = LimitOverrides {
            max_steps: self.max_steps,
            max_tokens: self.max_tokens,
        };
        // Interactive agents chat at this terminal; attach clients can join while it runs.
        let host = id.map(|id| {
            let (local, no_human) = local_human(self.detach);
            Host::start(db, id, command, local, no_human)
        });
        if let Some(h) = &host {
            h.wire(&mut opts);
        }
        let result = go(opts).await;
        if let Some(h) = host {
            h.finish(&result).await;
        }
        match result {
            Ok(out) if self.json => report_json(engine, &out).await,
            Ok(out) => report_outcome(&out, progress.elapsed_ms(), db),
            Err(e) => report_error(&e),
        }
    }
}
