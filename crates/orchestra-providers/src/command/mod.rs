//! The `command` provider: runs a command-line agent (argv from the settings, the prompt as an
//! argument or on stdin) in the agent's worktree, or the directory it was built with. What its
//! stdout is depends on `format:`:
//!
//! - `text`: the answer (token counts estimated from the lengths);
//! - `claude-stream-json` ([`claude`]) and `codex-jsonl` ([`codex`]): an event stream, read line by
//!   line as it arrives ([`events`]), that gives the answer, the tokens, the cost the agent
//!   reported and the tool calls it ran itself. A line that cannot be read stops the program
//!   at once; a stream that ends before its final event, or that reports a failure, is an error.
//!
//! No tools are offered to the agent (it has its own); a timeout kills it.

mod claude;
mod codex;
mod events;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_process::{Capture, Command, Ending, Output};
use orchestra_spec::{CommandFormat, ProviderSpec};

use crate::build::config;
use crate::error::ProviderError;
use crate::gate::Gate;
use crate::retry::{RetryPolicy, with_retries};
use crate::transcript::{estimate_tokens, render_transcript, request_bytes};
use crate::types::{Block, ChatRequest, ChatResponse, StopReason, Usage};
use crate::{Provider, TextSink};

use events::{EventStream, Fault, Finished, LineFeed};

/// The argv element replaced by the prompt.
const PROMPT: &str = "{{prompt}}";
/// The text replaced by the model name inside any argv element.
const MODEL: &str = "{{model}}";
/// Default timeout of one run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of stderr is kept for the error message.
const STDERR_TAIL: usize = 2000;
/// The longest answer kept (its start and end, with a note of what was cut in between).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// How much of an event stream is kept besides what its reader takes (only for diagnostics).
const EVENT_STDOUT_KEPT: usize = 4096;

/// A command-line agent.
#[derive(Debug)]
pub(crate) struct CommandProvider {
    name: String,
    argv: Vec<String>,
    stdin: bool,
    format: CommandFormat,
    timeout: Duration,
    retry: RetryPolicy,
    /// `max_concurrency`: how many of its processes run at once.
    gate: Gate,
    workdir: Option<PathBuf>,
}

impl CommandProvider {
    /// Runs the agent in `dir` (else in the current directory) unless a request names its own
    /// directory ([`ChatRequest::workdir`]).
    pub fn in_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.workdir = dir;
        self
    }

    pub fn new(name: &str, spec: &ProviderSpec, retry: RetryPolicy) -> Result<Self, ProviderError> {
        let argv = spec
            .command
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default();
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(config(
                name,
                "a `command` provider needs `command:`, the program and its arguments",
            ));
        }
        if !spec.stdin && !argv.iter().any(|a| a == PROMPT) {
            return Err(config(
                name,
                "the command has no `{{prompt}}` argument and `stdin` is false, so the agent would never see the prompt",
            ));
        }
        Ok(CommandProvider {
            name: name.to_owned(),
            argv,
            stdin: spec.stdin,
            format: spec.format.as_ref().map(|f| f.value).unwrap_or_default(),
            timeout: spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            retry,
            gate: Gate::new(name, spec.max_concurrency, None),
            workdir: None,
        })
    }

    fn program(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }

    /// The command of one run.
    fn command(&self, req: &ChatRequest, prompt: &str) -> Command {
        let args = self.argv[1..].iter().map(|a| {
            if a == PROMPT {
                prompt.to_owned()
            } else {
                a.replace(MODEL, &req.model)
            }
        });
        let kept = match self.format {
            CommandFormat::Text => MAX_ANSWER,
            CommandFormat::ClaudeStreamJson | CommandFormat::CodexJsonl => EVENT_STDOUT_KEPT,
        };
        let mut cmd = Command::new(self.program().replace(MODEL, &req.model))
            .args(args)
            .timeout(self.timeout)
            .max_stdout(kept)
            .max_stderr(STDERR_TAIL);
        let dir: Option<&Path> = req.workdir.as_deref().or(self.workdir.as_deref());
        if let Some(dir) = dir {
            cmd = cmd.current_dir(dir);
        }
        if self.stdin {
            cmd = cmd.stdin(prompt.as_bytes());
        }
        cmd
    }

    async fn once(
        &self,
        req: &ChatRequest,
        prompt: &str,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let cmd = self.command(req, prompt);
        let stream: Box<dyn EventStream> = match self.format {
            CommandFormat::Text => return self.text(req, &cmd, sink).await,
            CommandFormat::ClaudeStreamJson => Box::<claude::ClaudeStream>::default(),
            CommandFormat::CodexJsonl => Box::<codex::CodexStream>::default(),
        };
        let mut show = |t: &str| {
            if let Some(sink) = sink {
                sink(t);
            }
        };
        let mut feed = LineFeed::new(stream);
        // A line that cannot be read ends the run at once: dropping the run kills the program.
        let stop = tokio::sync::Notify::new();
        let out = {
            let mut on_stdout = |bytes: &[u8]| {
                if !feed.push(bytes, &mut show) {
                    stop.notify_one();
                }
            };
            tokio::select! {
                out = cmd.run_streaming(&mut on_stdout) => Some(out.map_err(|source| self.spawn_error(source))?),
                () = stop.notified() => None,
            }
        };
        if let Some(fault) = feed.fault() {
            return Err(self.fault(fault.clone()));
        }
        // Only a malformed line stops the run, and that is a fault.
        let Some(out) = out else {
            return Err(self.fault(Fault::Truncated("the program was stopped".to_owned())));
        };
        self.ended(&out)?;
        let finished = match feed.finish(&mut show) {
            Ok(f) => f,
            // The agent's own report of its failure says more than its exit status.
            Err(f @ Fault::Reported(_)) => return Err(self.fault(f)),
            Err(f) => {
                self.exited(&out)?;
                return Err(self.fault(f));
            }
        };
        self.exited(&out)?;
        Ok(self.response(req, finished))
    }

    /// `format: text`: stdout is the answer, streamed as it arrives.
    async fn text(
        &self,
        req: &ChatRequest,
        cmd: &Command,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut pieces = Utf8Pieces::default();
        let mut on_stdout = |bytes: &[u8]| {
            let piece = pieces.push(bytes);
            if let Some(sink) = sink
                && !piece.is_empty()
            {
                sink(&piece);
            }
        };
        let out = cmd
            .run_streaming(&mut on_stdout)
            .await
            .map_err(|source| self.spawn_error(source))?;
        self.ended(&out)?;
        self.exited(&out)?;
        let text = out.stdout.text().trim_end().to_owned();
        let usage = Usage {
            input_tokens: estimate_tokens(request_bytes(req)),
            output_tokens: estimate_tokens(text.len()),
            estimated: true,
            ..Usage::default()
        };
        Ok(ChatResponse {
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![Block::Text { text }]
            },
            stop: StopReason::EndTurn,
            usage,
            model: self.model_name(req, None),
            retries: 0,
            reported_cost_usd: None,
            external_tool_calls: Vec::new(),
        })
    }

    /// The answer of an event stream.
    fn response(&self, req: &ChatRequest, f: Finished) -> ChatResponse {
        let text = f.text.trim_end().to_owned();
        ChatResponse {
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![Block::Text { text }]
            },
            stop: StopReason::EndTurn,
            usage: Usage {
                input_tokens: f.usage.input,
                output_tokens: f.usage.output,
                cache_read_tokens: f.usage.cache_read,
                cache_write_tokens: f.usage.cache_write,
                ..Usage::default()
            },
            model: self.model_name(req, f.model),
            retries: 0,
            reported_cost_usd: f.cost_usd,
            external_tool_calls: f.tool_calls,
        }
    }

    /// The model the agent named, else the one asked for, else the provider's name.
    fn model_name(&self, req: &ChatRequest, reported: Option<String>) -> String {
        match reported {
            Some(m) if !m.is_empty() => m,
            _ if req.model.is_empty() => self.name.clone(),
            _ => req.model.to_string(),
        }
    }

    fn spawn_error(&self, source: orchestra_process::ProcessError) -> ProviderError {
        ProviderError::Spawn {
            provider: self.name.clone(),
            program: self.program(),
            source,
        }
    }

    /// An error when the run hit its timeout.
    fn ended(&self, out: &Output) -> Result<(), ProviderError> {
        match out.ending {
            Ending::TimedOut(after) => Err(ProviderError::CommandTimeout {
                provider: self.name.clone(),
                program: self.program(),
                after,
            }),
            Ending::Exited(_) => Ok(()),
        }
    }

    /// An error when the program did not exit with status 0.
    fn exited(&self, out: &Output) -> Result<(), ProviderError> {
        match out.ending {
            Ending::Exited(status) if !status.success() => {
                let status = match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => "was killed by a signal".to_owned(),
                };
                Err(ProviderError::CommandFailed {
                    provider: self.name.clone(),
                    program: self.program(),
                    status,
                    stderr: tail(&out.stderr),
                })
            }
            _ => Ok(()),
        }
    }

    /// The error of a stream that gave no answer.
    fn fault(&self, fault: Fault) -> ProviderError {
        let (provider, program, format) = (
            self.name.clone(),
            self.program(),
            self.format.as_str().to_owned(),
        );
        match fault {
            Fault::Reported(message) => ProviderError::CommandReported {
                provider,
                program,
                message,
            },
            Fault::Malformed {
                line,
                reason,
                excerpt,
            } => ProviderError::CommandOutput {
                provider,
                program,
                format,
                detail: format!("line {line} cannot be read: {reason}: `{excerpt}`"),
            },
            Fault::Truncated(detail) => ProviderError::CommandOutput {
                provider,
                program,
                format,
                detail: format!("the stream is truncated: {detail}"),
            },
        }
    }
}

/// Turns stdout's bytes into text pieces as they arrive; a UTF-8 character split across reads
/// is held back until it is complete.
#[derive(Debug, Default)]
struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    /// The text completed by `bytes` (invalid bytes become U+FFFD).
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let piece = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        piece
    }
}

/// Stderr as trimmed text: its start and end around a note of what was cut when it was longer
/// than [`STDERR_TAIL`].
fn tail(stderr: &Capture) -> String {
    stderr.text().trim().to_owned()
}

#[async_trait]
impl Provider for CommandProvider {
    async fn chat(
        &self,
        req: &ChatRequest,
        stream: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        if !req.tools.is_empty() {
            tracing::debug!(provider = %self.name, "the command provider does not offer tools to the agent");
        }
        let prompt = render_transcript(req);
        with_retries(&self.retry, Some(&self.gate), &self.name, || {
            self.once(req, &prompt, stream)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_held_back() {
        let bytes = "naïve ✓ text".as_bytes();
        let mut pieces = Utf8Pieces::default();
        let mut out = String::new();
        for b in bytes.chunks(1) {
            let piece = pieces.push(b);
            assert!(!piece.contains('\u{fffd}'), "{piece:?}");
            out.push_str(&piece);
        }
        assert_eq!(out, "naïve ✓ text");
    }
}
