//! The human side of interactive agents in a terminal: stdin lines, the chat printer, the
//! terminal [`Interaction`], and the attach socket every drive listens on ([`Host`]).

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use orchestra_runtime::attach::{AttachError, AttachServer, Outcome as Ended, socket_path};
use orchestra_runtime::interactive::{
    ChatChannel, ChatEvent, ChatInfo, HumanInput, Interaction, Speaker, help_text,
};
use orchestra_runtime::{BoxFuture, DriveOptions, Outcome, RuntimeError};
use tokio::sync::{Mutex, mpsc};

/// The lines of stdin, read on a thread of their own (a read blocked on the terminal never
/// holds up the exit). One reader per process.
pub(crate) struct StdinLines {
    rx: Mutex<mpsc::UnboundedReceiver<String>>,
    closed: AtomicBool,
}

impl StdinLines {
    /// The process's stdin lines (the reader thread starts on first use).
    pub(crate) fn get() -> Arc<StdinLines> {
        static LINES: OnceLock<Arc<StdinLines>> = OnceLock::new();
        Arc::clone(LINES.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let spawned = std::thread::Builder::new()
                .name("orchestra-stdin".into())
                .spawn(move || {
                    for line in io::stdin().lock().lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot read stdin");
            }
            Arc::new(StdinLines {
                rx: Mutex::new(rx),
                closed: AtomicBool::new(false),
            })
        }))
    }

    /// The next line; `None` once stdin ended.
    pub(crate) async fn next(&self) -> Option<String> {
        let line = self.rx.lock().await.recv().await;
        if line.is_none() {
            self.closed.store(true, Ordering::SeqCst);
        }
        line
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Prints chats to stderr.
#[derive(Debug, Default)]
pub(crate) struct ChatPrinter {
    node: String,
}

impl ChatPrinter {
    /// Prints one chat event.
    pub(crate) fn show(&mut self, event: &ChatEvent) {
        let mut err = io::stderr().lock();
        let _ = match event {
            ChatEvent::Opened { info, history } => {
                self.node.clone_from(&info.node);
                let _ = writeln!(
                    err,
                    "\n--- chat with `{}` (session {}, run {}) ---",
                    info.node,
                    info.session,
                    info.run_index + 1
                );
                if let Some(d) = &info.description {
                    let _ = writeln!(err, "{d}");
                }
                let _ = writeln!(err, "{}", help_text(&info.ends));
                for line in history {
                    let who = match line.who {
                        Speaker::Agent => self.node.as_str(),
                        Speaker::Human => "you",
                    };
                    let _ = write_said(&mut err, who, &line.text);
                }
                Ok(())
            }
            ChatEvent::Answer { text } => write_said(&mut err, &self.node, text),
            ChatEvent::Notice { text } => write_note(&mut err, text),
            ChatEvent::Closed { verdict, comment } => {
                let sep = if comment.is_empty() { "" } else { " " };
                writeln!(
                    err,
                    "--- chat ended: {}{sep}{comment} ---\n",
                    verdict.command()
                )
            }
        };
    }

    /// Asks for the human's next line.
    pub(crate) fn prompt(&self) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "you> ");
        let _ = err.flush();
    }
}

/// `who> text`, continuation lines indented under the first.
fn write_said(w: &mut impl io::Write, who: &str, text: &str) -> io::Result<()> {
    let indent = " ".repeat(who.len() + 2);
    let mut lines = text.trim_end().lines();
    writeln!(w, "{who}> {}", lines.next().unwrap_or_default())?;
    for l in lines {
        if l.is_empty() {
            writeln!(w)?;
        } else {
            writeln!(w, "{indent}{l}")?;
        }
    }
    Ok(())
}

/// `note: text`, continuation lines indented under the first.
fn write_note(w: &mut impl io::Write, text: &str) -> io::Result<()> {
    let mut lines = text.trim_end().lines();
    writeln!(w, "note: {}", lines.next().unwrap_or_default())?;
    for l in lines {
        writeln!(w, "      {l}")?;
    }
    Ok(())
}

/// The human at this terminal: chats print to stderr and read stdin. Stdin is read only once a
/// chat opens (a run in the background of a shell is not stopped for reading its terminal).
#[derive(Debug, Default)]
pub(crate) struct TerminalHuman;

impl Interaction for TerminalHuman {
    fn open<'a>(&'a self, _: &'a ChatInfo) -> BoxFuture<'a, Result<Box<dyn ChatChannel>, String>> {
        Box::pin(async move {
            let lines = StdinLines::get();
            if lines.is_closed() {
                return Err("stdin is closed".to_owned());
            }
            Ok(Box::new(TerminalChat {
                lines,
                printer: ChatPrinter::default(),
            }) as Box<dyn ChatChannel>)
        })
    }
}

struct TerminalChat {
    lines: Arc<StdinLines>,
    printer: ChatPrinter,
}

impl ChatChannel for TerminalChat {
    fn show(&mut self, event: ChatEvent) {
        self.printer.show(&event);
    }

    fn read(&mut self) -> BoxFuture<'_, HumanInput> {
        Box::pin(async move {
            self.printer.prompt();
            match self.lines.next().await {
                Some(line) => {
                    if !io::stdin().is_terminal() {
                        // Not echoed by a terminal: show what was read.
                        let _ = writeln!(io::stderr(), "{line}");
                    }
                    HumanInput::Line(line)
                }
                None => {
                    let _ = writeln!(io::stderr());
                    HumanInput::Left("the chat was left (end of input on stdin)".into())
                }
            }
        })
    }
}

/// Whether a human can chat here: stdin and stderr are terminals.
pub(crate) fn at_terminal() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// This process as a second attach client is told about it: "`orchestra run` by alice (pid
/// 4242 on /dev/pts/3)".
pub(crate) fn describe(command: &str) -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let tty = std::fs::read_link("/proc/self/fd/0")
        .ok()
        .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"));
    let mut s = format!("`{command}`");
    if let Some(u) = user {
        s.push_str(&format!(" by {u}"));
    }
    s.push_str(&format!(" (pid {}", std::process::id()));
    if let Some(t) = tty {
        s.push_str(&format!(" on {}", t.display()));
    }
    s.push(')');
    s
}

/// The attach socket of one drive: attach clients see its progress and take its chats; without
/// a client, chats go to `local` (this terminal) or the node pauses.
pub(crate) struct Host {
    server: Option<AttachServer>,
    fallback: Arc<dyn Interaction>,
}

impl Host {
    /// Listens for attach clients of `session` (beside the database file at `db`, or what
    /// `store::socket_anchor` gives for a database on a server). `local` is the
    /// human here, if any; `no_human` says why there is none (shown when a node pauses).
    pub(crate) fn start(
        db: &Path,
        session: &str,
        command: &str,
        local: Option<Arc<dyn Interaction>>,
        no_human: &str,
    ) -> Host {
        let path = socket_path(db, session);
        let name = format!("the terminal of {}", describe(command));
        let bound = AttachServer::bind(
            &path,
            session,
            describe(command),
            local.clone().map(|l| (l, name)),
            no_human.to_owned(),
        );
        let server = match bound {
            Ok(s) => Some(s),
            Err(AttachError::Live { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "no attach socket for this session; `orchestra attach` cannot join it while it runs");
                None
            }
        };
        let fallback = local.unwrap_or_else(|| Arc::new(Nobody(no_human.to_owned())));
        Host { server, fallback }
    }

    /// Sets the drive's human and tees its events to attach clients.
    pub(crate) fn wire(&self, opts: &mut DriveOptions) {
        match &self.server {
            Some(s) => {
                opts.events = s.events(Arc::clone(&opts.events));
                opts.human = Some(s.human());
            }
            None => opts.human = Some(Arc::clone(&self.fallback)),
        }
    }

    /// Tells an attach client how the drive ended and removes the socket.
    pub(crate) async fn finish(self, result: &Result<Outcome, RuntimeError>) {
        if let Some(s) = self.server {
            let outcome = match result {
                Ok(out) => Ended::from(&out.finish),
                Err(e) => Ended {
                    status: "error".into(),
                    detail: Some(e.to_string()),
                },
            };
            s.finish(outcome).await;
        }
    }
}

/// No human: chats cannot open, for the reason given.
struct Nobody(String);

impl Interaction for Nobody {
    fn open<'a>(
        &'a self,
        info: &'a ChatInfo,
    ) -> BoxFuture<'a, Result<Box<dyn ChatChannel>, String>> {
        Box::pin(async move {
            Err(format!(
                "agent `{}` needs a human, and {}",
                info.node, self.0
            ))
        })
    }
}

/// The human of `run`/`resume`: this terminal unless `detach` or there is none; with the
/// reason why not.
pub(crate) fn local_human(detach: bool) -> (Option<Arc<dyn Interaction>>, &'static str) {
    if detach {
        (None, "the run was started with --detach")
    } else if !at_terminal() {
        (
            None,
            "there is no terminal to chat on (stdin is not a terminal)",
        )
    } else {
        (Some(Arc::new(TerminalHuman)), "stdin is closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_lines_are_indented_under_the_speaker() {
        let mut out = Vec::new();
        write_said(&mut out, "reviewer", "first\n\nsecond\n").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "reviewer> first\n\n          second\n"
        );
        assert!(describe("orchestra run").starts_with("`orchestra run`"));
    }
}
