//! The `command` provider: runs a command-line agent (argv from the settings, the prompt as an
//! argument or on stdin); its stdout is the answer. No tools; a timeout kills it.

use std::time::Duration;

use async_trait::async_trait;
use orchestra_process::{Capture, Command, Ending};
use orchestra_spec::ProviderSpec;

use crate::build::config;
use crate::error::ProviderError;
use crate::gate::Gate;
use crate::retry::{RetryPolicy, with_retries};
use crate::transcript::{estimate_tokens, render_transcript, request_bytes};
use crate::types::{Block, ChatRequest, ChatResponse, StopReason, Usage};
use crate::{Provider, TextSink};

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

/// A command-line agent.
#[derive(Debug)]
pub(crate) struct CommandProvider {
    name: String,
    argv: Vec<String>,
    stdin: bool,
    timeout: Duration,
    retry: RetryPolicy,
    /// `max_concurrency`: how many of its processes run at once.
    gate: Gate,
    workdir: Option<std::path::PathBuf>,
}

impl CommandProvider {
    /// Runs the agent in `dir` (else in the current directory).
    pub fn in_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
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
            timeout: spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            retry,
            gate: Gate::new(name, spec.max_concurrency, None),
            workdir: None,
        })
    }

    fn program(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }

    async fn once(
        &self,
        req: &ChatRequest,
        prompt: &str,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let program = self.program();
        let args = self.argv[1..].iter().map(|a| {
            if a == PROMPT {
                prompt.to_owned()
            } else {
                a.replace(MODEL, &req.model)
            }
        });
        let mut cmd = Command::new(program.replace(MODEL, &req.model))
            .args(args)
            .timeout(self.timeout)
            .max_stdout(MAX_ANSWER)
            .max_stderr(STDERR_TAIL);
        if let Some(dir) = &self.workdir {
            cmd = cmd.current_dir(dir);
        }
        if self.stdin {
            cmd = cmd.stdin(prompt.as_bytes());
        }
        let mut pieces = Utf8Pieces::default();
        let mut on_stdout = |bytes: &[u8]| {
            let piece = pieces.push(bytes);
            if let Some(sink) = sink
                && !piece.is_empty()
            {
                sink(&piece);
            }
        };
        let out =
            cmd.run_streaming(&mut on_stdout)
                .await
                .map_err(|source| ProviderError::Spawn {
                    provider: self.name.clone(),
                    program: program.clone(),
                    source,
                })?;
        match out.ending {
            Ending::TimedOut(after) => {
                return Err(ProviderError::CommandTimeout {
                    provider: self.name.clone(),
                    program,
                    after,
                });
            }
            Ending::Exited(status) if !status.success() => {
                let status = match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => "was killed by a signal".to_owned(),
                };
                return Err(ProviderError::CommandFailed {
                    provider: self.name.clone(),
                    program,
                    status,
                    stderr: tail(&out.stderr),
                });
            }
            Ending::Exited(_) => {}
        }
        let text = out.stdout.text().trim_end().to_owned();
        let usage = Usage {
            input_tokens: estimate_tokens(request_bytes(req)),
            output_tokens: estimate_tokens(text.len()),
        };
        Ok(ChatResponse {
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![Block::Text { text }]
            },
            stop: StopReason::EndTurn,
            usage,
            model: if req.model.is_empty() {
                self.name.clone()
            } else {
                req.model.to_string()
            },
            retries: 0,
        })
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
