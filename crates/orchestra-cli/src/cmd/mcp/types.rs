//! The inputs and outputs of the MCP tools: serde types whose JSON Schemas (schemars) the
//! server lists with each tool.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cmd::show::StepView;
use crate::cmd::status::SessionRow;
// What drives started and answers did: the interaction layer's own types.
pub(crate) use orchestra_runtime::interaction::{
    Answered, PausedChat as ChatOut, Started,
};

/// `compile_pipeline`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompileParams {
    /// The pipeline file, relative to the server's directory (e.g. `pipelines/pr-review.yaml`).
    pub(crate) pipeline: String,
    /// Resolve every agent's model against this provider instead of its own (`--provider`).
    #[serde(default)]
    pub(crate) provider: Option<String>,
}

/// One diagnostic of the compiler.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DiagnosticOut {
    /// `error` or `warning`.
    pub(crate) severity: String,
    /// What is wrong.
    pub(crate) message: String,
    /// `file:line:col`, when the diagnostic points into a file.
    pub(crate) location: Option<String>,
    /// What the underlined part is.
    pub(crate) label: Option<String>,
    /// How to fix it ("did you mean", ...).
    pub(crate) help: Vec<String>,
    /// The diagnostic as the CLI prints it (with the source line underlined).
    pub(crate) rendered: String,
}

/// `compile_pipeline`'s output: a valid pipeline (an invalid one is a tool error).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Compiled {
    /// The pipeline's `name:`.
    pub(crate) name: String,
    /// Its agents, in declaration order.
    pub(crate) agents: Vec<String>,
    /// Its inputs (`--input` names).
    pub(crate) inputs: Vec<String>,
    /// What `orchestra compile` prints: the graph, each agent's provider, model, tools and
    /// prompt layers.
    pub(crate) summary: String,
    /// Warnings (a valid pipeline has no errors).
    pub(crate) warnings: Vec<DiagnosticOut>,
}

/// `run_pipeline`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunParams {
    /// The pipeline file, relative to the server's directory.
    pub(crate) pipeline: String,
    /// The pipeline's inputs by name (`--input KEY=VALUE`): a string is taken as typed on the
    /// command line; numbers, booleans, arrays and objects as JSON. Missing ones take their
    /// defaults.
    #[serde(default)]
    pub(crate) inputs: Map<String, Value>,
    /// Run every agent on this provider instead of its own (`--provider`).
    #[serde(default)]
    pub(crate) provider: Option<String>,
    /// A name for the session (`--session-name`).
    #[serde(default)]
    pub(crate) session_name: Option<String>,
    /// Stop once the session has made this many steps in all (`--max-steps`).
    #[serde(default)]
    pub(crate) max_steps: Option<u32>,
    /// Stop once the session has spent this many tokens in all (`--max-tokens`).
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    /// Stop once the session's model calls have cost this many US dollars in all
    /// (`--max-cost`).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub(crate) max_cost: Option<f64>,
}

/// `resume_session`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeParams {
    /// The session id, or a unique prefix of it or of its random tail.
    pub(crate) session: String,
    /// Go on with this pipeline file (relative to the server's directory) instead of the one
    /// stored with the session (`--pipeline`); the session keeps it from then on. An agent
    /// that ran or is due to run and was removed, or a state field whose value no longer fits,
    /// is refused and nothing changes.
    #[serde(default)]
    pub(crate) pipeline: Option<String>,
    /// State fields to set before going on, each the whole value as JSON (`--set FIELD=JSON`),
    /// checked against the field's type.
    #[serde(default)]
    pub(crate) set: Map<String, Value>,
    /// Stop once the session has made this many steps in all (`--max-steps`).
    #[serde(default)]
    pub(crate) max_steps: Option<u32>,
    /// Stop once the session has spent this many tokens in all (`--max-tokens`).
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    /// Stop once the session's model calls have cost this many US dollars in all
    /// (`--max-cost`).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub(crate) max_cost: Option<f64>,
}

/// `replay_session`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayParams {
    /// The session to fork: its id, or a unique prefix of it or of its random tail.
    pub(crate) session: String,
    /// The checkpoint to fork at (0 is the initial state, N the state after step N;
    /// show_session lists them).
    pub(crate) checkpoint: u64,
    /// Go on with this pipeline file (relative to the server's directory) instead of the one
    /// of that checkpoint (`--pipeline`).
    #[serde(default)]
    pub(crate) pipeline: Option<String>,
    /// State fields to set in the fork, each the whole value as JSON (`--set FIELD=JSON`),
    /// checked against the field's type.
    #[serde(default)]
    pub(crate) set: Map<String, Value>,
    /// Only create the fork (state and worktrees); run it later with resume_session
    /// (`--no-run`).
    #[serde(default)]
    pub(crate) no_run: bool,
    /// Stop once the fork has made this many steps in all (`--max-steps`).
    #[serde(default)]
    pub(crate) max_steps: Option<u32>,
    /// Stop once the fork has spent this many tokens in all (`--max-tokens`).
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    /// Stop once the fork's model calls have cost this many US dollars in all (`--max-cost`).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub(crate) max_cost: Option<f64>,
}

/// `replay_session`'s output.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Forked {
    /// The new session's id.
    pub(crate) session: String,
    /// The session it was forked from (its full id).
    pub(crate) parent: String,
    /// The checkpoint it was forked at.
    pub(crate) checkpoint: u64,
    /// What the edited pipeline changes from the one of that checkpoint (empty without
    /// `pipeline`).
    pub(crate) changes: Vec<String>,
    /// The process running the fork (`orchestra resume NEW_ID`); none with `no_run`.
    pub(crate) started: Option<Started>,
    /// What to do next.
    pub(crate) next: String,
}

/// `list_sessions`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// At most this many sessions, newest first (default 50).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}

/// `list_sessions`'s output.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionList {
    /// The sessions, newest first (the rows of `orchestra status --json`).
    pub(crate) sessions: Vec<SessionRow>,
}

/// `show_session`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowParams {
    /// The session id, or a unique prefix of it or of its random tail.
    pub(crate) session: String,
    /// Show the state at this checkpoint (default: the last).
    #[serde(default)]
    pub(crate) checkpoint: Option<u64>,
    /// Show the node runs of at most this many steps up to the checkpoint, the last ones
    /// (default 5).
    #[serde(default)]
    pub(crate) steps: Option<usize>,
    /// Show at most this many of the last events of drives this server started (default 20).
    #[serde(default)]
    pub(crate) events: Option<usize>,
}

/// `show_session`'s output.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ShowOut {
    /// The session as `orchestra status ID --json` shows it: id, pipeline, status (`running`,
    /// `queued`, `paused`, `completed`, `failed`, `stopped`, `interrupted`), error or note, tokens, cost,
    /// checkpoints, usage by agent, forks.
    pub(crate) session: Value,
    /// The checkpoint shown (`null` before the first one).
    pub(crate) checkpoint: Option<u64>,
    /// The state at that checkpoint.
    pub(crate) state: Value,
    /// The last steps up to it, with their node runs and routing (as `orchestra show --json`).
    pub(crate) steps: Vec<StepView>,
    /// The chat of the interactive agent the session paused at, if it did.
    pub(crate) chat: Option<ChatOut>,
    /// The last events of the drives this server started for the session (docs/events.md).
    pub(crate) events: Vec<Value>,
}

/// `answer_session`'s input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerParams {
    /// The session id, or a unique prefix of it or of its random tail.
    pub(crate) session: String,
    /// One line, as typed in `orchestra attach`: a message for the agent, or `/approve`,
    /// `/reject` or `/done` (text after the command is a comment).
    pub(crate) text: String,
    /// For a session another process is running: how long to wait for its interactive agent
    /// to take the line (seconds, default 60).
    #[serde(default)]
    pub(crate) wait_seconds: Option<u64>,
}

