//! The scripted provider's responses file (format in docs/ARCHITECTURE.md): parsed once with
//! file:line:col errors, checked, and compiled into a form that is cheap to answer from.
//!
//! Besides `text`, `tool_calls` (`{ tool, args, id? }`), `usage` and `error`, a turn may set
//! `stop: max_tokens` (or any stop reason) to simulate a truncated answer. An error entry is
//! `{ error: { status, message?, times?, retry_after_ms? } }`: it fails `times` calls of that
//! turn (every call when `times` is absent) and then gives way to the next entry, so
//! `[{ error: { status: 429, times: 1 } }, { text: ok }]` is one turn that fails once, then
//! answers `ok`. Error entries do not count as turns.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use orchestra_spec::{Diagnostic, SourceFile, Spanned, SpannedMap, parse_yaml, read_source};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::types::{StopReason, Usage};

/// `agents:` by name; `*` answers for agents not listed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    agents: SpannedMap<RawAgent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    runs: Spanned<Vec<RawRun>>,
    #[serde(default)]
    latency_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    turns: Spanned<Vec<Spanned<RawTurn>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<RawToolCall>>,
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    stop: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolCall {
    tool: String,
    #[serde(default = "empty_object")]
    args: Value,
    #[serde(default)]
    id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawError {
    status: Spanned<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    times: Option<Spanned<u32>>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    input_tokens: u64,
    output_tokens: u64,
    /// Parts of `input_tokens` read from / written to a prompt cache.
    #[serde(default)]
    cache_read_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
}

/// A checked responses file.
#[derive(Debug)]
pub(crate) struct Script {
    /// Scripts by agent name.
    pub agents: HashMap<String, AgentScript>,
    /// The `*` entry.
    pub fallback: Option<AgentScript>,
}

/// One agent's runs.
#[derive(Debug)]
pub(crate) struct AgentScript {
    /// Runs by run index; the last repeats.
    pub runs: Vec<Vec<Turn>>,
    /// Latency overriding the provider's.
    pub latency: Option<Duration>,
}

/// One model turn: the errors to fail with first (each a number of times), then the reply.
#[derive(Debug)]
pub(crate) struct Turn {
    pub errors: Vec<ScriptedError>,
    pub reply: Option<Reply>,
}

/// A simulated provider error.
#[derive(Debug)]
pub(crate) struct ScriptedError {
    pub status: u16,
    pub message: String,
    /// How many calls fail with it (`u32::MAX` when `times` is not given: always).
    pub times: u32,
    pub retry_after: Option<Duration>,
}

/// A scripted answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub text: Option<String>,
    /// Tool, arguments, explicit id.
    pub tool_calls: Vec<(String, Value, Option<String>)>,
    pub usage: Option<Usage>,
    pub stop: Option<StopReason>,
}

impl Script {
    /// Reads and checks the file at `path` (`shown` is how messages name it).
    pub fn load(path: &Path, shown: &Path) -> Result<Script, Diagnostic> {
        let source = read_source(path, shown)?;
        let raw: RawFile = parse_yaml(&source, "responses")?;
        let mut agents = HashMap::with_capacity(raw.agents.len());
        let mut fallback = None;
        for (name, _, agent) in raw.agents.iter() {
            let compiled = compile_agent(&source, name, agent)?;
            if name == "*" {
                fallback = Some(compiled);
            } else {
                agents.insert(name.to_owned(), compiled);
            }
        }
        Ok(Script { agents, fallback })
    }
}

fn compile_agent(
    source: &SourceFile,
    name: &str,
    raw: &RawAgent,
) -> Result<AgentScript, Diagnostic> {
    if raw.runs.is_empty() {
        return Err(Diagnostic::error(format!("agent `{name}` has no runs"))
            .at(source, raw.runs.span)
            .with_help("give at least one run: `runs: [{ turns: [{ text: ... }] }]`"));
    }
    let mut runs = Vec::with_capacity(raw.runs.len());
    for run in raw.runs.iter() {
        if run.turns.is_empty() {
            return Err(
                Diagnostic::error(format!("a run of agent `{name}` has no turns"))
                    .at(source, run.turns.span),
            );
        }
        runs.push(compile_turns(source, &run.turns)?);
    }
    Ok(AgentScript {
        runs,
        latency: raw.latency_ms.map(Duration::from_millis),
    })
}

/// Groups entries into turns: error entries belong to the next reply entry.
fn compile_turns(
    source: &SourceFile,
    entries: &[Spanned<RawTurn>],
) -> Result<Vec<Turn>, Diagnostic> {
    let mut turns = Vec::new();
    let mut errors: Vec<ScriptedError> = Vec::new();
    for entry in entries {
        let t = &entry.value;
        let calls = t.tool_calls.as_ref().filter(|c| !c.is_empty());
        let has_reply = t.text.is_some() || calls.is_some();
        match (&t.error, has_reply) {
            (Some(_), true) => {
                return Err(Diagnostic::error(
                    "a turn cannot have both `error:` and `text:`/`tool_calls:`",
                )
                .at(source, entry.span)
                .with_help("put the error in its own entry before the answer"));
            }
            (None, false) => {
                return Err(Diagnostic::error(
                    "this turn has no `text:`, `tool_calls:` or `error:`",
                )
                .at(source, entry.span));
            }
            (Some(e), false) => {
                if let Some(prev) = errors.last()
                    && prev.times == u32::MAX
                {
                    return Err(Diagnostic::error("this entry can never be reached")
                        .at(source, entry.span)
                        .with_help("the error before it has no `times:`, so it fails every call; give it `times: N`"));
                }
                errors.push(compile_error(source, e)?);
            }
            (None, true) => {
                if let Some(prev) = errors.last()
                    && prev.times == u32::MAX
                {
                    return Err(Diagnostic::error("this answer can never be reached")
                        .at(source, entry.span)
                        .with_help("the error before it has no `times:`, so it fails every call; give it `times: N`"));
                }
                turns.push(Turn {
                    errors: std::mem::take(&mut errors),
                    reply: Some(Reply {
                        text: t.text.clone(),
                        tool_calls: calls
                            .into_iter()
                            .flatten()
                            .map(|c| (c.tool.clone(), c.args.clone(), c.id.clone()))
                            .collect(),
                        usage: t.usage.as_ref().map(|u| Usage {
                            input_tokens: u.input_tokens,
                            output_tokens: u.output_tokens,
                            cache_read_tokens: u.cache_read_tokens,
                            cache_write_tokens: u.cache_write_tokens,
                            ..Usage::default()
                        }),
                        stop: t.stop.clone().map(StopReason::from),
                    }),
                });
            }
        }
    }
    if !errors.is_empty() {
        turns.push(Turn {
            errors,
            reply: None,
        });
    }
    Ok(turns)
}

fn compile_error(source: &SourceFile, e: &RawError) -> Result<ScriptedError, Diagnostic> {
    if !(400..=599).contains(&e.status.value) {
        return Err(Diagnostic::error(format!(
            "`status: {}` is not an HTTP error status",
            e.status.value
        ))
        .at(source, e.status.span)
        .with_help("use 400-599, e.g. 429 or 529 (retryable) or 400 (fatal)"));
    }
    if let Some(t) = &e.times
        && t.value == 0
    {
        return Err(Diagnostic::error("`times` must be at least 1").at(source, t.span));
    }
    Ok(ScriptedError {
        status: e.status.value,
        message: e
            .message
            .clone()
            .unwrap_or_else(|| format!("scripted error {}", e.status.value)),
        times: e.times.as_ref().map_or(u32::MAX, |t| t.value),
        retry_after: e.retry_after_ms.map(Duration::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Script, Diagnostic> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yaml");
        std::fs::write(&p, text).unwrap();
        Script::load(&p, Path::new("r.yaml"))
    }

    #[test]
    fn groups_errors_with_the_next_answer() {
        let s = load(
            "agents:\n  a:\n    latency_ms: 3\n    runs:\n      - turns:\n          - { error: { status: 429, times: 2 } }\n          - { error: { status: 500, times: 1, message: boom } }\n          - { tool_calls: [{ tool: 'app:read-file', args: { path: x } }] }\n          - text: done\n            usage: { input_tokens: 1, output_tokens: 2 }\n",
        )
        .unwrap();
        let a = &s.agents["a"];
        assert_eq!(a.latency, Some(Duration::from_millis(3)));
        let turns = &a.runs[0];
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].errors.len(), 2);
        assert_eq!(turns[0].errors[1].message, "boom");
        let reply = turns[0].reply.as_ref().unwrap();
        assert_eq!(reply.tool_calls[0].0, "app:read-file");
        assert_eq!(reply.tool_calls[0].1, json!({"path": "x"}));
        assert!(turns[1].errors.is_empty());
    }

    #[test]
    fn errors_point_at_the_entry() {
        let e = load("agents:\n  a:\n    runs:\n      - turns:\n          - { usage: { input_tokens: 1, output_tokens: 1 } }\n").unwrap_err();
        assert_eq!(
            e.message,
            "this turn has no `text:`, `tool_calls:` or `error:`"
        );
        assert_eq!(e.location().as_deref(), Some("r.yaml:5:13"));

        let e = load(
            "agents:\n  a:\n    runs:\n      - turns:\n          - { error: { status: 200 } }\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("not an HTTP error status"),
            "{}",
            e.message
        );

        let e = load("agents:\n  a:\n    runs:\n      - turns:\n          - { error: { status: 500 } }\n          - { text: never }\n").unwrap_err();
        assert_eq!(e.message, "this answer can never be reached");

        let e = load("agents:\n  a:\n    runs:\n      - turns:\n          - { txt: hi }\n")
            .unwrap_err();
        assert_eq!(e.message, "unknown key `txt`");
        assert_eq!(e.help[0], "did you mean `text`?");

        let e = load("agents:\n  a: { runs: [] }\n").unwrap_err();
        assert_eq!(e.message, "agent `a` has no runs");
    }
}
