//! The interaction layer of interactive agents (`mode: interactive`): what a chat shows the
//! human ([`ChatEvent`]), what the human sends back ([`HumanInput`]), and the two traits a front
//! end implements — [`Interaction`] finds a human for a chat, [`ChatChannel`] is one human's side
//! of it. The CLI's terminal, the `orchestra attach` socket and a future web UI are all
//! implementations; the harness drives the chat through these traits only.
//!
//! A chat ends with a command: `/done`, `/approve` or `/reject`, each optionally followed by a
//! comment. The agent's output is then the envelope `{verdict, answer, comment}` (see
//! [`envelope`]), whatever the command, so `writes:` and conditions can rely on its shape.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::runner::BoxFuture;

/// How the human ended a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `/done`: the conversation is over; no judgement.
    Done,
    /// `/approve`.
    Approve,
    /// `/reject`.
    Reject,
}

impl Verdict {
    /// Every verdict, in the order commands are listed.
    pub const ALL: [Verdict; 3] = [Verdict::Done, Verdict::Approve, Verdict::Reject];

    /// `done`, `approve` or `reject` (the value of `/verdict` in the output).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Done => "done",
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    /// The command that gives this verdict (`/done`, ...).
    pub fn command(self) -> String {
        format!("/{}", self.as_str())
    }
}

/// What a chat is about; given to [`Interaction::open`] and shown when the chat opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatInfo {
    /// Session id.
    pub session: String,
    /// The interactive agent.
    pub node: String,
    /// Which run of the agent in the session (0, 1, ...).
    pub run_index: u32,
    /// The agent's description, if it has one.
    pub description: Option<String>,
    /// The commands that can end this chat (the pipeline's state may rule some out, e.g. a
    /// `verdict` field that only accepts `approve` and `reject`).
    pub ends: Vec<Verdict>,
}

/// Who said a line of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The agent.
    Agent,
    /// The human.
    Human,
}

/// One line of the conversation so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Who said it.
    pub who: Speaker,
    /// What was said.
    pub text: String,
}

/// What the human is shown during a chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The chat opens (or reopens, after a resume or when another human takes over);
    /// `history` is the conversation so far.
    Opened {
        /// What the chat is about.
        info: ChatInfo,
        /// The conversation so far, oldest first.
        history: Vec<ChatLine>,
    },
    /// The agent answered.
    Answer {
        /// The answer.
        text: String,
    },
    /// A message from Orchestra, not from the agent (help, an unknown command, why the chat
    /// cannot end yet, a model error).
    Notice {
        /// The message.
        text: String,
    },
    /// The chat ended.
    Closed {
        /// How.
        verdict: Verdict,
        /// The text after the command.
        comment: String,
    },
}

/// What came from the human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HumanInput {
    /// A line they typed (without the line end).
    Line(String),
    /// They left (end of input, a closed connection); says how.
    Left(String),
}

/// One human's side of a chat: events go out, lines come in.
pub trait ChatChannel: Send {
    /// Shows `event` to the human. Must not block for long (queue it if needed).
    fn show(&mut self, event: ChatEvent);
    /// Waits for the human's next line.
    fn read(&mut self) -> BoxFuture<'_, HumanInput>;
}

/// Where the humans of a run are found.
pub trait Interaction: Send + Sync {
    /// Opens a chat about `info` with a human, or says why no human can take part (the
    /// session then pauses at the node, to be continued with `orchestra attach`).
    fn open<'a>(
        &'a self,
        info: &'a ChatInfo,
    ) -> BoxFuture<'a, Result<Box<dyn ChatChannel>, String>>;
}

/// A line the human typed, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Said {
    /// Nothing (blank line).
    Empty,
    /// A message for the agent.
    Message(String),
    /// A command that ends the chat.
    End {
        /// Which.
        verdict: Verdict,
        /// The text after it (trimmed; empty when none).
        comment: String,
    },
    /// `/help`.
    Help,
    /// `/something` that is not a command.
    Unknown {
        /// The command as typed.
        command: String,
        /// The closest known command, if any is close.
        suggestion: Option<String>,
    },
}

/// Understands one line. Commands start with `/`; `//text` sends `/text` to the agent.
pub fn parse_line(line: &str) -> Said {
    let t = line.trim();
    if t.is_empty() {
        return Said::Empty;
    }
    if let Some(escaped) = t.strip_prefix("//") {
        return Said::Message(format!("/{escaped}"));
    }
    let Some(cmd) = t.strip_prefix('/') else {
        return Said::Message(t.to_owned());
    };
    let (name, rest) = cmd
        .split_once(char::is_whitespace)
        .map_or((cmd, ""), |(n, r)| (n, r.trim()));
    let verdict = match name.to_ascii_lowercase().as_str() {
        "done" => Verdict::Done,
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        "help" | "?" => return Said::Help,
        _ => {
            let known = ["done", "approve", "reject", "help"];
            let suggestion = orchestra_spec::closest(name, known.iter().copied())
                .first()
                .map(|s| format!("/{s}"));
            return Said::Unknown {
                command: format!("/{name}"),
                suggestion,
            };
        }
    };
    Said::End {
        verdict,
        comment: rest.to_owned(),
    }
}

/// The help shown for `/help` and when a chat opens.
pub fn help_text(ends: &[Verdict]) -> String {
    let mut parts: Vec<String> = ends
        .iter()
        .map(|v| match v {
            Verdict::Done => {
                "/done [comment] ends the chat with the agent's last answer".to_owned()
            }
            Verdict::Approve => "/approve [comment] approves it".to_owned(),
            Verdict::Reject => "/reject [comment] rejects it".to_owned(),
        })
        .collect();
    parts.push("/help shows this; any other line goes to the agent".to_owned());
    parts.join("; ")
}

/// The output of an interactive agent: `{"verdict", "answer", "comment"}`. `answer` is the
/// agent's last answer (JSON when the agent has an output schema, else text). Matches
/// `orchestra_graph::interactive_output_schema`, which the compiler checks `writes:` against.
pub fn envelope(verdict: Verdict, answer: Value, comment: &str) -> Value {
    json!({ "verdict": verdict.as_str(), "answer": answer, "comment": comment })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_messages_or_commands() {
        assert_eq!(parse_line("   "), Said::Empty);
        assert_eq!(
            parse_line(" add a rollback step "),
            Said::Message("add a rollback step".into())
        );
        assert_eq!(
            parse_line("/approve  ship it "),
            Said::End {
                verdict: Verdict::Approve,
                comment: "ship it".into()
            }
        );
        assert_eq!(
            parse_line("/REJECT"),
            Said::End {
                verdict: Verdict::Reject,
                comment: String::new()
            }
        );
        assert_eq!(parse_line("/help"), Said::Help);
        assert_eq!(
            parse_line("//etc/hosts is wrong"),
            Said::Message("/etc/hosts is wrong".into())
        );
        assert_eq!(
            parse_line("/aprove"),
            Said::Unknown {
                command: "/aprove".into(),
                suggestion: Some("/approve".into())
            }
        );
        assert!(matches!(
            parse_line("/xyzzy"),
            Said::Unknown {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn the_envelope_satisfies_the_compile_time_schema() {
        let schema = orchestra_graph::interactive_output_schema(None);
        let v = jsonschema::validator_for(&schema).unwrap();
        for verdict in Verdict::ALL {
            assert!(v.is_valid(&envelope(verdict, json!("the plan"), "")));
        }
        let typed = orchestra_graph::interactive_output_schema(Some(&json!({"type": "object"})));
        let v = jsonschema::validator_for(&typed).unwrap();
        assert!(v.is_valid(&envelope(Verdict::Done, json!({"a": 1}), "ok")));
        assert!(!v.is_valid(&envelope(Verdict::Done, json!("text"), "ok")));
    }

    #[test]
    fn events_have_a_stable_wire_form() {
        let ev = ChatEvent::Closed {
            verdict: Verdict::Approve,
            comment: "ok".into(),
        };
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"kind": "closed", "verdict": "approve", "comment": "ok"})
        );
        let help = help_text(&[Verdict::Approve, Verdict::Reject]);
        assert!(help.contains("/approve") && !help.contains("/done"));
    }
}
