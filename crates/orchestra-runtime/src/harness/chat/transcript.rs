//! A chat's record: every turn is appended to the store the moment it exists (the agent's
//! answers and tool exchanges, each human line, the closing command), and a chat is rebuilt
//! from those records when its node runs again.

use orchestra_providers::{Block, Message, Role};
use orchestra_store::ChatMessageRecord;

use crate::interactive::{ChatLine, Said, Speaker, Verdict, parse_line};
use crate::runner::{NodeCall, NodeError};
use crate::store_worker::StoreHandle;

/// Stored roles of chat records.
pub(super) const HUMAN: &str = "user";
pub(super) const ANSWER: &str = "assistant";
pub(super) const TOOL_USE: &str = "tool_use";
pub(super) const TOOL_RESULT: &str = "tool_result";
pub(super) const COMMAND: &str = "command";

/// A chat as far as it went: the model conversation (after the kickoff), what the human sees,
/// and whether it already ended.
#[derive(Debug, Default)]
pub(super) struct Transcript {
    pub(super) messages: Vec<Message>,
    pub(super) history: Vec<ChatLine>,
    pub(super) last_answer: Option<String>,
    pub(super) ended: Option<(Verdict, String)>,
    pub(super) next_turn: u32,
}

impl Transcript {
    /// Rebuilds a chat from its records (one run of one node, in turn order).
    pub(super) fn rebuild(records: &[ChatMessageRecord]) -> Transcript {
        let mut t = Transcript::default();
        for r in records {
            t.next_turn = t.next_turn.max(r.turn.saturating_add(1));
            match r.role.as_str() {
                HUMAN => t.push_human(&r.content),
                ANSWER => t.push_answer(&r.content),
                TOOL_USE | TOOL_RESULT => match serde_json::from_str::<Vec<Block>>(&r.content) {
                    Ok(content) => t.messages.push(Message {
                        role: if r.role == TOOL_USE {
                            Role::Assistant
                        } else {
                            Role::User
                        },
                        content,
                    }),
                    Err(e) => {
                        tracing::warn!(turn = r.turn, error = %e, "unreadable stored tool turn")
                    }
                },
                COMMAND => {
                    if let Said::End { verdict, comment } = parse_line(&r.content) {
                        t.ended = Some((verdict, comment));
                    }
                }
                other => tracing::warn!(role = other, "unknown stored chat role"),
            }
        }
        // Tool calls whose results were never stored (a crash while the tools ran) are asked
        // for again.
        if t.messages.last().is_some_and(|m| {
            m.role == Role::Assistant
                && m.content.iter().any(|b| matches!(b, Block::ToolUse { .. }))
        }) {
            t.messages.pop();
        }
        t
    }

    pub(super) fn push_human(&mut self, text: &str) {
        self.messages.push(Message::user(text));
        self.history.push(ChatLine {
            who: Speaker::Human,
            text: text.to_owned(),
        });
    }

    pub(super) fn push_answer(&mut self, text: &str) {
        self.messages
            .push(Message::assistant(vec![Block::text(text)]));
        self.history.push(ChatLine {
            who: Speaker::Agent,
            text: text.to_owned(),
        });
        self.last_answer = Some(text.to_owned());
    }

    /// Whether the last thing said is unanswered (the kickoff, a human line, tool results).
    pub(super) fn awaiting_answer(&self) -> bool {
        self.messages.last().is_none_or(|m| m.role == Role::User)
    }
}

/// The store side of one chat.
pub(super) struct Recorder<'a> {
    pub(super) store: Option<&'a StoreHandle>,
    pub(super) call: &'a NodeCall,
}

impl Recorder<'_> {
    pub(super) async fn load(&self) -> Result<Vec<ChatMessageRecord>, NodeError> {
        let Some(store) = self.store else {
            return Ok(Vec::new());
        };
        let (session, node, run) = (
            self.call.session.to_string(),
            self.call.agent.to_string(),
            self.call.run_index,
        );
        let all = store
            .call(move |s| s.messages(&session, &node))
            .await
            .map_err(|e| NodeError::Fatal(format!("cannot read the stored chat: {e}")))?;
        Ok(all.into_iter().filter(|m| m.run_index == run).collect())
    }

    pub(super) async fn append(
        &self,
        t: &mut Transcript,
        role: &str,
        content: String,
    ) -> Result<(), NodeError> {
        let turn = t.next_turn;
        t.next_turn += 1;
        let Some(store) = self.store else {
            return Ok(());
        };
        let rec = ChatMessageRecord {
            session: self.call.session.to_string(),
            node: self.call.agent.to_string(),
            run_index: self.call.run_index,
            turn,
            role: role.to_owned(),
            content,
            created_at: orchestra_store::system_now_ms(),
        };
        store
            .call(move |s| s.append_message(&rec))
            .await
            .map_err(|e| NodeError::Fatal(format!("cannot store the chat: {e}")))
    }
}

pub(super) fn to_json(blocks: &[Block]) -> String {
    serde_json::to_string(blocks).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(turn: u32, role: &str, content: &str) -> ChatMessageRecord {
        ChatMessageRecord {
            session: "s".into(),
            node: "reviewer".into(),
            run_index: 0,
            turn,
            role: role.into(),
            content: content.into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_chat_is_rebuilt_from_its_records() {
        let tool_use = to_json(&[Block::ToolUse {
            id: "t1".into(),
            name: "app:read-file".into(),
            input: serde_json::json!({"path": "x"}),
        }]);
        let tool_result = to_json(&[Block::ToolResult {
            tool_use_id: "t1".into(),
            content: "contents".into(),
            is_error: false,
        }]);
        let t = Transcript::rebuild(&[
            rec(0, TOOL_USE, &tool_use),
            rec(1, TOOL_RESULT, &tool_result),
            rec(2, ANSWER, "first answer"),
            rec(3, HUMAN, "add a rollback step"),
        ]);
        assert_eq!(t.messages.len(), 4);
        assert_eq!(t.next_turn, 4);
        assert!(t.awaiting_answer());
        assert_eq!(t.last_answer.as_deref(), Some("first answer"));
        assert_eq!(t.history.len(), 2);
        assert_eq!(t.history[1].who, Speaker::Human);
        assert!(t.ended.is_none());
    }

    #[test]
    fn dangling_tool_calls_are_dropped_and_commands_end_the_chat() {
        let tool_use = to_json(&[Block::ToolUse {
            id: "t1".into(),
            name: "app:read-file".into(),
            input: serde_json::json!({}),
        }]);
        let t = Transcript::rebuild(&[
            rec(0, ANSWER, "a"),
            rec(1, HUMAN, "b"),
            rec(2, TOOL_USE, &tool_use),
        ]);
        assert_eq!(t.messages.len(), 2);
        assert!(t.awaiting_answer());
        let t = Transcript::rebuild(&[rec(0, ANSWER, "a"), rec(1, COMMAND, "/reject  too vague")]);
        assert_eq!(t.ended, Some((Verdict::Reject, "too vague".into())));
        assert!(!t.awaiting_answer());
        assert!(Transcript::rebuild(&[]).awaiting_answer());
    }
}
