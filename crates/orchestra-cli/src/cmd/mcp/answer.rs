//! `answer_session`: one human line for a session's interactive agent, the way `orchestra
//! attach` gives it. A session a live process drives is reached through its attach socket: the
//! server attaches, sends the line, and leaves once the agent took it and answered (or the chat
//! ended). A paused session is resumed by a detached `orchestra resume --human-stdin` with the
//! line on its stdin: the chat takes it, and the end of input pauses the session again at the
//! agent's next question.

use std::ffi::OsString;
use std::time::Duration;

use orchestra_runtime::attach::{
    AttachError, Incoming, Joined, Outgoing, ServerMsg, connect, socket_path,
};
use orchestra_runtime::interactive::ChatEvent;
use orchestra_store::SessionStatus;

use super::detached::{self, Drive};
use super::server::{Orchestra, runtime_failure};
use super::types::{AnswerParams, Answered, ChatLineOut};
use crate::human::describe;

/// How long a live session's agent has to take the line, by default.
const WAIT: Duration = Duration::from_secs(60);

pub(super) async fn answer(server: &Orchestra, p: AnswerParams) -> Result<Answered, String> {
    if p.text.contains(['\n', '\r']) {
        return Err(
            "error: an answer is one line (as typed in `orchestra attach`); send each line with its own call"
                .to_owned(),
        );
    }
    if p.text.trim().is_empty() {
        return Err("error: the answer is empty".to_owned());
    }
    let db = server.session_db()?;
    let engine = server.engine(&db)?;
    let wanted = p.session.clone();
    let found = engine.store().call(move |s| s.find_session(&wanted)).await;
    engine.close().await;
    let rec = found.map_err(|e| runtime_failure(&orchestra_runtime::RuntimeError::Store(e)))?;
    if rec.status == SessionStatus::Completed {
        return Err(format!(
            "error: session {} is completed; there is nothing to attach to (see `orchestra status {}`)",
            rec.id, rec.id
        ));
    }
    let anchor = crate::store::socket_anchor(&db, &server.root_of(&db));
    match connect(&socket_path(&anchor, &rec.id), &describe("orchestra mcp")).await {
        Ok(Joined::Attached {
            incoming, outgoing, ..
        }) => {
            let wait = p.wait_seconds.map_or(WAIT, Duration::from_secs);
            live(&rec.id, &p.text, incoming, outgoing, wait).await
        }
        Ok(Joined::Busy { holder }) => Err(format!(
            "error: session {} is held by {holder}; only one human can be attached at a time",
            rec.id
        )),
        // Nobody drives the session: resume it with the line.
        Err(AttachError::Connect { .. }) => {
            let args: Vec<OsString> = vec![
                "resume".into(),
                rec.id.clone().into(),
                "--db".into(),
                db.clone().into(),
                "--human-stdin".into(),
            ];
            let drive = Drive {
                command: "resume",
                cwd: &server.ctx.cwd,
                db: &db,
                session: &rec.id,
                args,
                stdin: Some(p.text),
            };
            let started = detached::start(drive).await?;
            Ok(Answered {
                session: rec.id,
                delivered: "resumed".to_owned(),
                replies: Vec::new(),
                finished: None,
                started: Some(started),
            })
        }
        Err(e) => Err(format!("error: cannot attach to session {}: {e}", rec.id)),
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
) -> Result<Answered, String> {
    let gone = || {
        format!(
            "error: the process running session {id} went away without saying how it ended; see `orchestra status {id}`"
        )
    };
    // Queued until the chat reads: the agent's next question takes it.
    outgoing.line(line).await.map_err(|_| gone())?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut prompts = 0;
    let mut replies = Vec::new();
    let reply = |who: &str, text: String| ChatLineOut {
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
                return Err(format!(
                    "error: session {id} did not ask for a human within {}; the line was not delivered",
                    orchestra_spec::fmt_duration(wait)
                ));
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
                return Ok(answered(replies, Some(format!("{}{detail}", outcome.status))));
            }
            _ => {}
        }
    }
}
