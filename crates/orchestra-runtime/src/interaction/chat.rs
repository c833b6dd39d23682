//! The chat a paused session waits at: the lines of its interactive agent's current run.

use schemars::JsonSchema;
use serde::Serialize;

use super::ChatLine;
use crate::{Engine, Finish, RuntimeError};

/// The chat of the interactive agent a paused session waits at: answer it with one line
/// ([`super::answer`]).
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
    let (sid, n) = (id.to_owned(), node.to_owned());
    let (runs, records) = engine
        .store()
        .call(move |s| Ok((s.node_runs(&sid)?, s.messages(&sid, &n)?)))
        .await?;
    // The waiting run comes after the node's finished ones (a paused attempt has no record).
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
    Ok(Some(PausedChat {
        node: node.to_owned(),
        run_index,
        lines,
    }))
}
