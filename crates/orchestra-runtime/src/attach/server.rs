//! The driving process's side of attaching: a Unix socket listener that admits one human at a
//! time, forwards the session's events to them, and is the [`Interaction`] of the drive — a
//! chat goes to the attached client when there is one, else to the process's own human (its
//! terminal), else the node pauses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::{AttachError, ClientMsg, Outcome, ServerMsg};
use crate::events::{Event, EventSink};
use crate::interactive::{ChatChannel, ChatEvent, ChatInfo, HumanInput, Interaction};
use crate::runner::BoxFuture;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens for `orchestra attach` clients of one session while it is driven. Dropping it stops
/// listening and removes the socket.
#[derive(Debug)]
pub struct AttachServer {
    hub: Arc<Hub>,
    path: PathBuf,
    accept: JoinHandle<()>,
}

/// The process's own human, tried when no client is attached.
struct Local {
    human: Arc<dyn Interaction>,
    name: String,
}

struct Hub {
    session: String,
    driver: String,
    local: Option<Local>,
    /// Why no human can take part when neither a client nor the local human is there.
    no_human: String,
    /// One chat at a time (parallel interactive agents take turns).
    chats: Arc<Semaphore>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    client: Option<Client>,
    /// Who holds the open chat, if one is open.
    holder: Option<String>,
    next_id: u64,
}

struct Client {
    id: u64,
    who: String,
    tx: mpsc::UnboundedSender<ServerMsg>,
    lines: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
    writer: JoinHandle<()>,
}

impl Hub {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AttachServer {
    /// Listens at `path` (see [`super::socket_path`]) for clients of `session`. `driver` names
    /// this process for clients; `local` is its own human with a name for a second client
    /// ("the terminal of ..."); `no_human` says why nobody can chat when neither is there.
    /// A stale socket file (nobody listening) is replaced. Must be called within tokio.
    pub fn bind(
        path: &Path,
        session: &str,
        driver: String,
        local: Option<(Arc<dyn Interaction>, String)>,
        no_human: String,
    ) -> Result<AttachServer, AttachError> {
        let bind_err = |source| AttachError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            super::private::private_dir(dir)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(AttachError::Live {
                    session: session.to_owned(),
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        // Its directory is private already; the socket is too, whatever the umask.
        super::private::private_socket(path).map_err(bind_err)?;
        let hub = Arc::new(Hub {
            session: session.to_owned(),
            driver,
            local: local.map(|(human, name)| Local { human, name }),
            no_human,
            chats: Arc::new(Semaphore::new(1)),
            state: Mutex::new(State::default()),
        });
        let h = Arc::clone(&hub);
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(Arc::clone(&h), stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "attach socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(AttachServer {
            hub,
            path: path.to_path_buf(),
            accept,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The drive's [`Interaction`]: the attached client, else the local human, else a pause.
    pub fn human(&self) -> Arc<dyn Interaction> {
        Arc::new(HubHuman(Arc::clone(&self.hub)))
    }

    /// An event sink that gives every event to `inner` and to the attached client.
    pub fn events(&self, inner: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        Arc::new(Tee {
            inner,
            hub: Arc::clone(&self.hub),
        })
    }

    /// Tells the attached client how the drive ended, waits (briefly) until it was sent, and
    /// stops listening.
    pub async fn finish(self, outcome: Outcome) {
        self.accept.abort();
        let client = self.hub.state().client.take();
        if let Some(c) = client {
            let _ = c.tx.send(ServerMsg::Finished { outcome });
            drop(c.tx);
            let _ = tokio::time::timeout(Duration::from_secs(2), c.writer).await;
        }
    }
}

impl Drop for AttachServer {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One connection: hello, then admission or "busy", then lines until it closes.
async fn serve(hub: Arc<Hub>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let who = match tokio::time::timeout(HELLO_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(l))) => match serde_json::from_str::<ClientMsg>(&l) {
            Ok(ClientMsg::Hello { who }) => who,
            _ => return,
        },
        _ => return,
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if write_msg(&mut write, &msg).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let (line_tx, line_rx) = mpsc::unbounded_channel::<String>();
    let admitted = {
        let mut st = hub.state();
        let busy = st
            .client
            .as_ref()
            .map(|c| c.who.clone())
            .or_else(|| st.holder.clone());
        match busy {
            Some(holder) => {
                let _ = tx.send(ServerMsg::Busy { holder });
                drop(tx);
                Err(writer)
            }
            None => {
                let _ = tx.send(ServerMsg::Welcome {
                    session: hub.session.clone(),
                    driver: hub.driver.clone(),
                });
                st.next_id += 1;
                st.client = Some(Client {
                    id: st.next_id,
                    who: who.clone(),
                    tx,
                    lines: Arc::new(tokio::sync::Mutex::new(line_rx)),
                    writer,
                });
                Ok(st.next_id)
            }
        }
    };
    let id = match admitted {
        Ok(id) => id,
        Err(writer) => {
            // `tx` was dropped: the writer sends "busy" and closes.
            let _ = writer.await;
            return;
        }
    };
    tracing::info!(%who, "attach client connected");
    while let Ok(Some(l)) = lines.next_line().await {
        match serde_json::from_str::<ClientMsg>(&l) {
            Ok(ClientMsg::Line { text }) => {
                if line_tx.send(text).is_err() {
                    break;
                }
            }
            Ok(ClientMsg::Hello { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "attach client sent an unreadable message"),
        }
    }
    tracing::info!(%who, "attach client disconnected");
    let mut st = hub.state();
    if st.client.as_ref().is_some_and(|c| c.id == id) {
        st.client = None;
    }
}

async fn write_msg(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    msg: &ServerMsg,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(msg).map_err(std::io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes()).await
}

struct Tee {
    inner: Arc<dyn EventSink>,
    hub: Arc<Hub>,
}

impl EventSink for Tee {
    fn emit(&self, event: Event) {
        if let Some(c) = &self.hub.state().client {
            let _ = c.tx.send(ServerMsg::Event {
                event: event.clone(),
            });
        }
        self.inner.emit(event);
    }
}

struct HubHuman(Arc<Hub>);

impl Interaction for HubHuman {
    fn open<'a>(
        &'a self,
        info: &'a ChatInfo,
    ) -> BoxFuture<'a, Result<Box<dyn ChatChannel>, String>> {
        Box::pin(async move {
            let hub = &self.0;
            let permit = Arc::clone(&hub.chats)
                .acquire_owned()
                .await
                .map_err(|_| "the attach server stopped".to_owned())?;
            {
                let mut st = hub.state();
                if let Some(c) = &st.client {
                    let chat = ClientChat {
                        hub: Arc::clone(hub),
                        tx: c.tx.clone(),
                        lines: Arc::clone(&c.lines),
                        who: c.who.clone(),
                        _permit: permit,
                    };
                    st.holder = Some(c.who.clone());
                    return Ok(Box::new(chat) as Box<dyn ChatChannel>);
                }
            }
            let Some(local) = &hub.local else {
                return Err(format!(
                    "agent `{}` needs a human, and {}",
                    info.node, hub.no_human
                ));
            };
            let inner = local
                .human
                .open(info)
                .await
                .map_err(|e| format!("agent `{}` needs a human, and {e}", info.node))?;
            hub.state().holder = Some(local.name.clone());
            Ok(Box::new(LocalChat {
                hub: Arc::clone(hub),
                inner,
                _permit: permit,
            }) as Box<dyn ChatChannel>)
        })
    }
}

/// A chat with the attached client.
struct ClientChat {
    hub: Arc<Hub>,
    tx: mpsc::UnboundedSender<ServerMsg>,
    lines: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
    who: String,
    _permit: OwnedSemaphorePermit,
}

impl ChatChannel for ClientChat {
    fn show(&mut self, event: ChatEvent) {
        let _ = self.tx.send(ServerMsg::Chat { event });
    }

    fn read(&mut self) -> BoxFuture<'_, HumanInput> {
        Box::pin(async move {
            let _ = self.tx.send(ServerMsg::Prompt);
            match self.lines.lock().await.recv().await {
                Some(line) => HumanInput::Line(line),
                None => HumanInput::Left(format!("{} disconnected", self.who)),
            }
        })
    }
}

impl Drop for ClientChat {
    fn drop(&mut self) {
        self.hub.state().holder = None;
    }
}

/// A chat with the process's own human.
struct LocalChat {
    hub: Arc<Hub>,
    inner: Box<dyn ChatChannel>,
    _permit: OwnedSemaphorePermit,
}

impl ChatChannel for LocalChat {
    fn show(&mut self, event: ChatEvent) {
        self.inner.show(event);
    }

    fn read(&mut self) -> BoxFuture<'_, HumanInput> {
        self.inner.read()
    }
}

impl Drop for LocalChat {
    fn drop(&mut self) {
        self.hub.state().holder = None;
    }
}
