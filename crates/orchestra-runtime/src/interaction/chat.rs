//! The chat of a session's interactive agent, from the store (every turn is stored the moment
//! it exists, whoever said it: a terminal's `orchestra attach`, the web UI, `orchestra mcp`):
//! the one a paused session waits at, or the one the process driving a live session holds now.

use schemars::JsonSchema;
use serde::Serialize;

use super::ChatLine;
use crate::{Engine, Finish, RuntimeError};

/// The chat of an interactive agent: the one a paused session waits at ([`paused_chat`]) or
/// the one a live session holds ([`live_chat`]). Answer it with one line ([`super::answer`]).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PausedChat {
    /// The agent.
    pub node: String,
    /// Which run of it (0 for its first).
    pub run_index: u32,
    /// The conversation of this run so far, oldest first. Empty when the session paused before
    /// the agent spoke: it speaks first when the chat opens, so `/help` opens it without saying
    /// anything to it.
    pub lines: Vec<ChatLine>,
}

/// The chat of the interactive agent session `id` waits at, when its pause `note` (the
/// session's `error`) names one (its current run's lines; none yet when it paused before its
/// first answer).
pub async fn paused_chat(
    engine: &Engine,
    id: &str,
    note: &str,
) -> Result<Option<PausedChat>, RuntimeError> {
    let Some(node) = Finish::paused_at(note) else {
        return Ok(None);
    };
    chat_of(engine, id, node).await.map(Some)
}

/// The chat of the interactive agent live session `id` (an id or a unique prefix) runs now:
/// its current run's lines so far, updated as they are said; `None` when no interactive agent
/// runs (or the session is not running).
pub async fn live_chat(engine: &Engine, id: &str) -> Result<Option<PausedChat>, RuntimeError> {
    let (rec, compiled) = engine.session_pipeline(id).await?;
    let path = crate::views::path::path(engine, &rec, &compiled).await?;
    let interactive = path.running.iter().find(|n| {
        compiled
            .agent(n)
            .is_some_and(|a| a.mode == orchestra_spec::Mode::Interactive)
    });
    match interactive {
        Some(node) => chat_of(engine, &rec.id, node).await.map(Some),
        None => Ok(None),
    }
}

/// The lines of the current run of interactive agent `node` of session `id`.
async fn chat_of(engine: &Engine, id: &str, node: &str) -> Result<PausedChat, RuntimeError> {
    let (sid, n) = (id.to_owned(), node.to_owned());
    let (runs, records) = engine
        .store()
        .call(move |s| Ok((s.node_runs(&sid)?, s.messages(&sid, &n)?)))
        .await?;
    // The waiting (or running) run comes after the node's finished ones (it has no record yet).
    let run_index = runs
        .iter()
        .filter(|r| r.node == node)
        .map(|r| r.run_index + 1)
        .max()
        .unwrap_or(0);
    let lines = records
        .iter()
        .filter(|m| m.run_index == run_index)
        .filter_map(|m| {
            let who = match m.role.as_str() {
                "assistant" => "agent",
                "user" => "human",
                "command" => "command",
                _ => return None,
            };
            Some(ChatLine {
                who: who.to_owned(),
                text: m.content.clone(),
            })
        })
        .collect();
    Ok(PausedChat {
        node: node.to_owned(),
        run_index,
        lines,
    })
}
