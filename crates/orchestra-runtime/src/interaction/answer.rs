//! One human line for a session's interactive agent, the way `orchestra attach` gives it. A
//! session a live process drives is reached through its attach socket: the caller attaches,
//! sends the line, and leaves once the agent took it and answered (or the chat ended). A paused
//! session is resumed by a detached `orchestra resume --human-stdin` with the line on its
//! stdin: the chat takes it, and the end of input pauses the session again at the agent's next
//! question.

use std::ffi::OsString;
use std::time::Duration;

use orchestra_store::SessionStatus;

use super::detached::{self, Drive};
use super::{Answered, ChatLine, InteractionError, Launcher};
use crate::Engine;
use crate::attach::{AttachError, Incoming, Joined, Outgoing, ServerMsg, connect, socket_path};
use crate::interactive::ChatEvent;

/// How long a live session's agent has to take the line, by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Gives `text` (one line: a message, `/approve`, `/reject` or `/done`) to the interactive
/// agent of `session` (an id or a unique prefix) of `engine`'s database: live through the
/// attach socket, waiting up to `wait` for the agent to take it; or, when nobody drives the
/// session, by a detached resume with the line.
pub async fn answer(
    engine: &Engine,
    launcher: &Launcher,
    session: &str,
    text: &str,
    wait: Duration,
) -> Result<Answered, InteractionError> {
    if text.contains(['\n', '\r']) {
        return Err(InteractionError::BadLine(
            "an answer is one line (as typed in `orchestra attach`); send each line with its own call",
        ));
    }
    if text.trim().is_empty() {
        return Err(InteractionError::BadLine("the answer is empty"));
    }
    let wanted = session.to_owned();
    let rec = engine
        .store()
        .call(move |s| s.find_session(&wanted))
        .await
        .map_err(|e| InteractionError::Runtime(crate::RuntimeError::Store(e)))?;
    if rec.status == SessionStatus::Completed {
        return Err(InteractionError::Completed(rec.id));
    }
    match connect(
        &socket_path(&launcher.socket_anchor, &rec.id),
        &launcher.who,
    )
    .await
    {
        Ok(Joined::Attached {
            incoming, outgoing, ..
        }) => live(&rec.id, text, incoming, outgoing, wait).await,
        Ok(Joined::Busy { holder }) => Err(InteractionError::Held {
            session: rec.id,
            holder,
        }),
        // Nobody drives the session: resume it with the line.
        Err(AttachError::Connect { .. }) => {
            let args: Vec<OsString> = vec![
                "resume".into(),
                rec.id.clone().into(),
                "--db".into(),
                launcher.db.clone().into(),
                "--human-stdin".into(),
            ];
            let drive = Drive {
                command: "resume",
                session: &rec.id,
                args,
                stdin: Some(text.to_owned()),
            };
            let started = detached::start(launcher, drive).await?;
            Ok(Answered {
                session: rec.id,
                delivered: "resumed".to_owned(),
                replies: Vec::new(),
                finished: None,
                started: Some(started),
            })
        }
        Err(source) => Err(InteractionError::Attach {
            session: rec.id,
            source,
        }),
    }
}

/// Gives the line to the live session and collects what the chat says until the agent waits
/// for the next line, the chat ends, or the drive ends.
async fn live(
    id: &str,
    line: &str,
    mut incoming: Incoming,
    mut outgoing: Outgoing,
    wait: Duration,
) -> Result<Answered, InteractionError> {
    let gone = || InteractionError::Gone(id.to_owned());
    // Queued until the chat reads: the agent's next question takes it.
    outgoing.line(line).await.map_err(|_| gone())?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut prompts = 0;
    let mut replies = Vec::new();
    let reply = |who: &str, text: String| ChatLine {
        who: who.to_owned(),
        text,
    };
    let answered = |replies, finished| Answered {
        session: id.to_owned(),
        delivered: "live".to_owned(),
        replies,
        finished,
        started: None,
    };
    loop {
        let msg = match tokio::time::timeout_at(deadline, incoming.next()).await {
            Err(_) if prompts == 0 => {
                return Err(InteractionError::NoPrompt {
                    session: id.to_owned(),
                    waited: wait,
                });
            }
            // The agent took the line and is still at work: what it said so far.
            Err(_) => return Ok(answered(replies, None)),
            Ok(Ok(Some(msg))) => msg,
            Ok(Ok(None) | Err(_)) => return Err(gone()),
        };
        match msg {
            ServerMsg::Prompt => {
                prompts += 1;
                // The first read took the line; the second waits for the next one.
                if prompts >= 2 {
                    return Ok(answered(replies, None));
                }
            }
            ServerMsg::Chat { event } if prompts >= 1 => match event {
                ChatEvent::Answer { text } => replies.push(reply("agent", text)),
                ChatEvent::Notice { text } => replies.push(reply("notice", text)),
                ChatEvent::Closed { verdict, comment } => {
                    let sep = if comment.is_empty() { "" } else { " " };
                    replies.push(reply(
                        "command",
                        format!("{}{sep}{comment}", verdict.command()),
                    ));
                    return Ok(answered(replies, None));
                }
                ChatEvent::Opened { .. } => {}
            },
            ServerMsg::Finished { outcome } => {
                let detail = outcome.detail.map(|d| format!(": {d}")).unwrap_or_default();
                return Ok(answered(
                    replies,
                    Some(format!("{}{detail}", outcome.status)),
                ));
            }
            _ => {}
        }
    }
}
