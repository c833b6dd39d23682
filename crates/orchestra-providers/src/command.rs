//! The `command` provider: runs a command-line agent (argv from the settings, the prompt as an
//! argument or on stdin); its stdout is the answer. No tools; a timeout kills it.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use orchestra_spec::ProviderSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::build::config;
use crate::error::ProviderError;
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

/// A command-line agent.
#[derive(Debug)]
pub(crate) struct CommandProvider {
    name: String,
    argv: Vec<String>,
    stdin: bool,
    timeout: Duration,
    retry: RetryPolicy,
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
        let mut cmd = Command::new(program.replace(MODEL, &req.model));
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ProviderError::Spawn {
            provider: self.name.clone(),
            program: program.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async {
            let write = async {
                if let Some(mut pipe) = stdin {
                    // A program that exits without reading its input is not an error here.
                    let _ = pipe.write_all(prompt.as_bytes()).await;
                    let _ = pipe.shutdown().await;
                }
            };
            let (_, out, err) = tokio::join!(write, read_text(stdout, sink), read_all(stderr));
            let status = child.wait().await;
            (status, out, err)
        };
        let finished = tokio::time::timeout(self.timeout, run).await;
        let (status, out, err) = match finished {
            Ok(done) => done,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ProviderError::CommandTimeout {
                    provider: self.name.clone(),
                    program,
                    after: self.timeout,
                });
            }
        };
        let status = status.map_err(|source| ProviderError::Spawn {
            provider: self.name.clone(),
            program: program.clone(),
            source,
        })?;
        if !status.success() {
            let status = match status.code() {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".to_owned(),
            };
            return Err(ProviderError::CommandFailed {
                provider: self.name.clone(),
                program,
                status,
                stderr: tail(&err),
            });
        }
        let text = out.trim_end().to_owned();
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

/// Reads a pipe to its end as text, passing each piece to `sink` as it arrives (UTF-8
/// characters split across reads are held back until complete).
async fn read_text(pipe: Option<impl AsyncRead + Unpin>, sink: Option<&TextSink<'_>>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let valid = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        let piece = String::from_utf8_lossy(&pending[..valid]).into_owned();
        pending.drain(..valid);
        if let Some(sink) = sink
            && !piece.is_empty()
        {
            sink(&piece);
        }
        out.push_str(&piece);
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut out).await;
    }
    out
}

/// The last [`STDERR_TAIL`] bytes of stderr, as trimmed text.
fn tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&stderr[start..]);
    let text = text.trim();
    if start > 0 {
        format!("...{text}")
    } else {
        text.to_owned()
    }
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
        with_retries(&self.retry, &self.name, || self.once(req, &prompt, stream)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_end() {
        assert_eq!(tail(b"  oops\n"), "oops");
        let long = vec![b'x'; 5000];
        let t = tail(&long);
        assert!(t.starts_with("...") && t.len() == STDERR_TAIL + 3);
    }

    #[tokio::test]
    async fn read_text_streams_whole_characters() {
        let data: &[u8] = "naïve ✓ text".as_bytes();
        let seen = std::sync::Mutex::new(Vec::<String>::new());
        let sink = |s: &str| seen.lock().unwrap().push(s.to_owned());
        let out = read_text(Some(data), Some(&sink)).await;
        assert_eq!(out, "naïve ✓ text");
        assert_eq!(seen.lock().unwrap().concat(), "naïve ✓ text");
    }
}
