//! The `scripted` provider: answers from a responses file by agent (an instance `researcher[3]`
//! by its own entry, else its agent's), run index and turn index
//! (never by a process-local counter, so it is deterministic and resume-safe), with scripted
//! tool calls, simulated errors and optional latency. For tests, the offline demo and benchmarks.

mod file;
mod template;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_spec::{ProviderSpec, closest};

use crate::build::config;
use crate::error::ProviderError;
use crate::retry::{RetryPolicy, with_retries};
use crate::transcript::estimate_usage;
use crate::types::{Block, ChatRequest, ChatResponse, StopReason};
use crate::{Provider, TextSink};
use file::{AgentScript, Reply, Script};

/// A provider answering from a responses file.
#[derive(Debug)]
pub(crate) struct Scripted {
    name: String,
    script: Script,
    latency: Duration,
    retry: RetryPolicy,
    /// Failures already returned per (agent, run index, turn index), so scripted errors with
    /// `times: N` fail N calls and then let the answer through.
    failures: Mutex<HashMap<(String, u32, usize), u32>>,
}

impl Scripted {
    /// Reads the responses file (`responses:`, relative to `base_dir`) once.
    pub fn load(
        name: &str,
        spec: &ProviderSpec,
        base_dir: &Path,
        retry: RetryPolicy,
    ) -> Result<Self, ProviderError> {
        let Some(rel) = spec.responses.as_ref() else {
            return Err(config(
                name,
                "a `scripted` provider needs `responses:`, the path of its responses file",
            ));
        };
        let path = base_dir.join(&rel.value);
        let script = Script::load(&path, &path).map_err(|source| ProviderError::ResponsesFile {
            provider: name.to_owned(),
            source,
        })?;
        Ok(Scripted {
            name: name.to_owned(),
            script,
            latency: Duration::from_millis(spec.latency_ms.unwrap_or(0)),
            retry,
            failures: Mutex::new(HashMap::new()),
        })
    }

    fn agent(&self, agent: &str) -> Result<&AgentScript, ProviderError> {
        // An instance of a `for_each` target (`researcher[3]`) has its own entry or its agent's.
        let agents = &self.script.agents;
        if let Some(a) = agents
            .get(agent)
            .or_else(|| {
                orchestra_spec::split_instance(agent).and_then(|(base, _)| agents.get(base))
            })
            .or(self.script.fallback.as_ref())
        {
            return Ok(a);
        }
        let mut detail =
            format!("the responses file has no entry for agent `{agent}` and no `*` entry");
        if let [first, ..] =
            closest(agent, self.script.agents.keys().map(String::as_str)).as_slice()
        {
            detail.push_str(&format!(" (did you mean `{first}`?)"));
        }
        Err(self.no_script(detail))
    }

    fn no_script(&self, detail: String) -> ProviderError {
        ProviderError::NoScript {
            provider: self.name.clone(),
            detail,
        }
    }

    async fn once(
        &self,
        req: &ChatRequest,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let agent = self.agent(&req.agent)?;
        let latency = agent.latency.unwrap_or(self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // `runs` is never empty (checked when loading); the last run repeats.
        let run = usize::try_from(req.run_index)
            .unwrap_or(usize::MAX)
            .min(agent.runs.len().saturating_sub(1));
        let turns = agent.runs.get(run).map_or(&[][..], Vec::as_slice);
        let turn_index = req.assistant_turns();
        let Some(turn) = turns.get(turn_index) else {
            return Err(self.no_script(format!(
                "agent `{}` run {} has {} scripted turn(s) and turn {} was asked for",
                req.agent,
                req.run_index,
                turns.len(),
                turn_index
            )));
        };
        if !turn.errors.is_empty() {
            let key = (req.agent.to_string(), req.run_index, turn_index);
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            let count = failures.entry(key).or_insert(0);
            let mut before = *count;
            for e in &turn.errors {
                if before < e.times {
                    *count += 1;
                    return Err(ProviderError::Status {
                        provider: self.name.clone(),
                        url: None,
                        status: e.status,
                        message: e.message.clone(),
                        retry_after: e.retry_after,
                    });
                }
                before -= e.times;
            }
        }
        let Some(reply) = &turn.reply else {
            return Err(self.no_script(format!(
                "agent `{}` run {} turn {} has only errors, and they were all returned",
                req.agent, req.run_index, turn_index
            )));
        };
        self.answer(req, reply, turn_index, sink)
    }

    fn answer(
        &self,
        req: &ChatRequest,
        reply: &Reply,
        turn: usize,
        sink: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut content = Vec::with_capacity(1 + reply.tool_calls.len());
        let needs_scope = reply.text.as_deref().is_some_and(template::is_template)
            || reply
                .tool_calls
                .iter()
                .any(|(_, args, _)| template::has_template(args));
        let scope = needs_scope.then(|| template::Scope::new(req, turn));
        if let Some(text) = reply.text.as_ref().filter(|t| !t.is_empty()) {
            let text = match &scope {
                Some(scope) if template::is_template(text) => scope
                    .render(text)
                    .map_err(|detail| self.no_script(detail))?,
                _ => text.clone(),
            };
            if let Some(sink) = sink {
                sink(&text);
            }
            content.push(Block::Text { text });
        }
        for (i, (tool, args, id)) in reply.tool_calls.iter().enumerate() {
            let input = match &scope {
                Some(scope) if template::has_template(args) => scope
                    .render_args(args)
                    .map_err(|detail| self.no_script(detail))?,
                _ => args.clone(),
            };
            content.push(Block::ToolUse {
                id: id
                    .clone()
                    .unwrap_or_else(|| format!("call_{}_{}_{}", req.run_index, turn, i)),
                name: tool.clone(),
                input,
            });
        }
        let stop = reply
            .stop
            .clone()
            .unwrap_or(if reply.tool_calls.is_empty() {
                StopReason::EndTurn
            } else {
                StopReason::ToolUse
            });
        let usage = reply.usage.unwrap_or_else(|| estimate_usage(req, &content));
        Ok(ChatResponse {
            content,
            stop,
            usage,
            model: if req.model.is_empty() {
                self.name.clone()
            } else {
                req.model.to_string()
            },
            retries: 0,
            reported_cost_usd: None,
            external_tool_calls: Vec::new(),
        })
    }
}

#[async_trait]
impl Provider for Scripted {
    async fn chat(
        &self,
        req: &ChatRequest,
        stream: Option<&TextSink<'_>>,
    ) -> Result<ChatResponse, ProviderError> {
        // Only scripted errors are ever retried: an agent without any answers without the
        // retry loop, whose state would be held by every call in flight (boxed when needed).
        let scripts_errors = self
            .agent(&req.agent)
            .is_ok_and(|a| a.runs.iter().flatten().any(|turn| !turn.errors.is_empty()));
        if scripts_errors {
            Box::pin(with_retries(&self.retry, None, &self.name, || {
                self.once(req, stream)
            }))
            .await
        } else {
            self.once(req, stream).await
        }
    }
}
