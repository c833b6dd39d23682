//! The MCP servers of one drive: each started when an agent using it first runs, shared by
//! every agent of the drive, and stopped (with its whole process group) at the end.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use orchestra_spec::{McpServerSpec, ToolDef, did_you_mean};
use serde_json::Value;

use crate::McpError;
use crate::connection::{Connection, EnvLookup, StartCtx};

/// The servers a drive may use, by name; none runs until it is first needed.
pub struct McpServers {
    slots: IndexMap<String, Slot>,
    cwd: PathBuf,
    env: EnvLookup,
    hidden_env: Vec<String>,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServers")
            .field("servers", &self.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Slot {
    spec: McpServerSpec,
    /// Where the server stands. Held while starting, so agents that need the server at the same
    /// time wait for one start.
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// The running connection (possibly dead since), if it started.
    conn: Option<Arc<Connection>>,
    /// Why it cannot be used for the rest of the drive: it failed to start, or stopped again
    /// after its restart. Never started again until [`McpServers::shutdown`].
    failed: Option<Arc<McpError>>,
    /// How often it was started again after it stopped.
    restarts: u32,
}

/// How often a server that stopped is started again in one drive.
const MAX_RESTARTS: u32 = 1;

/// An agent's MCP tools, as far as their servers could give them.
#[derive(Debug, Default)]
pub struct McpTools {
    /// The definitions, in order and each once: the running servers' own, and for a
    /// `SERVER:TOOL` whose server is unavailable a stand-in (its description says why, its
    /// schema takes any object) whose every call is a tool error with that reason.
    pub tools: Vec<ToolDef>,
    /// The servers that are unavailable, in the order named, each once.
    pub unavailable: Vec<Unavailable>,
}

/// A server that could not start (or stopped again after its restart).
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// The server.
    pub server: String,
    /// Why (the start failure), the same text each call of its tools returns.
    pub error: Arc<McpError>,
    /// Whether it failed just now (this was the attempt that failed), not earlier in the drive.
    pub new: bool,
}

impl McpServers {
    /// The servers `servers`; programs run in `cwd` (the project root) and `${VAR}`s are
    /// looked up with `env`.
    pub fn new(
        servers: impl IntoIterator<Item = (String, McpServerSpec)>,
        cwd: impl Into<PathBuf>,
        env: EnvLookup,
    ) -> Self {
        McpServers {
            slots: servers
                .into_iter()
                .map(|(name, spec)| {
                    let slot = Slot {
                        spec,
                        state: tokio::sync::Mutex::new(SlotState::default()),
                    };
                    (name, slot)
                })
                .collect(),
            cwd: cwd.into(),
            env,
            hidden_env: Vec::new(),
        }
    }

    /// Removes these variables from the servers' inherited environment (provider API keys),
    /// unless their `env:` sets them.
    pub fn hide_env(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.hidden_env.extend(names);
        self
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The configured servers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// The connection to `server`: the running one, else a new one. A server that stopped is
    /// started again when `restart`, at most [`MAX_RESTARTS`] times in a drive; one that failed
    /// to start (or stopped again) is not started again in the drive: its error comes back,
    /// with `true` when this was the attempt that failed.
    async fn connection(
        &self,
        server: &str,
        restart: bool,
    ) -> Result<Arc<Connection>, (Arc<McpError>, bool)> {
        let Some(slot) = self.slots.get(server) else {
            return Err((Arc::new(McpError::UnknownServer(server.to_owned())), true));
        };
        let mut st = slot.state.lock().await;
        if let Some(e) = &st.failed {
            return Err((Arc::clone(e), false));
        }
        if let Some(conn) = st.conn.clone() {
            if conn.is_alive() || !restart {
                return Ok(conn);
            }
            conn.close().await;
            st.conn = None;
            if st.restarts >= MAX_RESTARTS {
                let e = Arc::new(McpError::StoppedAgain {
                    server: server.to_owned(),
                });
                st.failed = Some(Arc::clone(&e));
                return Err((e, true));
            }
            st.restarts += 1;
            tracing::warn!(server, "MCP server stopped; starting it again");
        }
        let ctx = StartCtx {
            cwd: &self.cwd,
            env: &self.env,
            hidden_env: &self.hidden_env,
        };
        match Connection::start(server, &slot.spec, &ctx).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                st.conn = Some(Arc::clone(&conn));
                Ok(conn)
            }
            Err(e) => {
                let e = Arc::new(e);
                st.failed = Some(Arc::clone(&e));
                Err((e, true))
            }
        }
    }

    /// The tools of `server` (started if it is not running), named `SERVER:TOOL`; or why it
    /// cannot be used (the same error for the rest of the drive).
    pub async fn tools(&self, server: &str) -> Result<Vec<ToolDef>, Arc<McpError>> {
        let conn = self.connection(server, true).await.map_err(|(e, _)| e)?;
        Ok(conn.tools.iter().map(|t| def(server, t)).collect())
    }

    /// The definitions of an agent's MCP tools: `(server, tool)` pairs, `*` for all of a
    /// server's tools, in order and each once. Starts the servers not running yet. A server
    /// that cannot start is no error: it is listed as unavailable, and each of its tools named
    /// by name gets a stand-in whose calls return the start failure (see [`McpTools`]). A tool
    /// a running server does not have is an error.
    pub async fn definitions(&self, refs: &[(String, String)]) -> Result<McpTools, McpError> {
        fn push(out: &mut Vec<ToolDef>, d: ToolDef) {
            if !out.iter().any(|o| o.name == d.name) {
                out.push(d);
            }
        }
        let mut out = McpTools::default();
        for (server, tool) in refs {
            let all: Vec<ToolDef> = match self.connection(server, true).await {
                Ok(conn) => conn.tools.iter().map(|t| def(server, t)).collect(),
                Err((error, new)) => {
                    if tool != "*" {
                        push(&mut out.tools, stand_in(server, tool, &error));
                    }
                    if !out.unavailable.iter().any(|u| &u.server == server) {
                        out.unavailable.push(Unavailable {
                            server: server.clone(),
                            error,
                            new,
                        });
                    }
                    continue;
                }
            };
            if tool == "*" {
                all.into_iter().for_each(|d| push(&mut out.tools, d));
                continue;
            }
            let full = format!("{server}:{tool}");
            match all.iter().position(|d| d.name == full) {
                Some(i) => push(&mut out.tools, all[i].clone()),
                None => {
                    let names: Vec<&str> = all
                        .iter()
                        .map(|d| d.name.split_once(':').map_or(d.name.as_str(), |(_, t)| t))
                        .collect();
                    let mut hint = did_you_mean(tool, names.iter().copied())
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    hint.push_str(&format!("; its tools: {}", names.join(", ")));
                    return Err(McpError::UnknownTool {
                        server: server.clone(),
                        tool: tool.clone(),
                        hint,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Calls `tool` of `server` with `args`; (text, is_error). Never fails as a Rust error: a
    /// timeout, a server that stopped or cannot start, or bad arguments is a tool error the
    /// model reads. A server that failed to start in this drive is not started again: the call
    /// returns its start failure at once. The text is not capped (the caller caps it like any
    /// tool's output).
    pub async fn call(&self, server: &str, tool: &str, args: Value) -> (String, bool) {
        let full = format!("{server}:{tool}");
        let args = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return (
                    format!("invalid arguments for `{full}`: expected a JSON object, got {other}"),
                    true,
                );
            }
        };
        let conn = match self.connection(server, false).await {
            Ok(c) => c,
            Err((e, _)) => return (format!("`{full}` failed: {e}"), true),
        };
        let Some(slot) = self.slots.get(server) else {
            return (format!("unknown MCP server `{server}`"), true);
        };
        if !conn.is_alive() {
            let again = if slot.state.lock().await.restarts < MAX_RESTARTS {
                "it is started again when an agent next runs"
            } else {
                "it was restarted once already, so it is not started again in this drive"
            };
            return (
                format!(
                    "`{full}` failed: MCP server `{server}` is not running (it stopped during this agent's run; {again})"
                ),
                true,
            );
        }
        let started = std::time::Instant::now();
        let out = match conn.call(tool, args, slot.spec.call_timeout()).await {
            Ok(result) => crate::content::render(&result),
            Err(msg) => {
                tracing::warn!(server, tool, error = %msg, "MCP tool call failed");
                (msg, true)
            }
        };
        tracing::debug!(
            server,
            tool,
            is_error = out.1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "MCP tool call finished"
        );
        out
    }

    /// Stops every running server (its session, then its whole process group) and forgets
    /// the failures and restarts of the drive: servers can be started again afterwards.
    pub async fn shutdown(&self) {
        for (name, slot) in &self.slots {
            let conn = std::mem::take(&mut *slot.state.lock().await).conn;
            if let Some(conn) = conn {
                conn.close().await;
                tracing::debug!(server = name.as_str(), "MCP server stopped");
            }
        }
    }
}

/// The definition of `SERVER:TOOL` when the server is unavailable: it says why, and takes any
/// object (the server's schema is unknown).
fn stand_in(server: &str, tool: &str, error: &McpError) -> ToolDef {
    ToolDef {
        name: format!("{server}:{tool}"),
        description: format!(
            "Unavailable: {}. Every call returns this error.",
            error.brief()
        ),
        parameters: serde_json::json!({"type": "object", "properties": {}}),
    }
}

/// An MCP tool as the model sees it: named `SERVER:TOOL`, its description (else its title) and
/// input schema.
fn def(server: &str, tool: &rmcp::model::Tool) -> ToolDef {
    let description = tool
        .description
        .as_deref()
        .map(str::to_owned)
        .or_else(|| tool.title.clone())
        .unwrap_or_default();
    ToolDef {
        name: format!("{server}:{}", tool.name),
        description,
        parameters: Value::Object((*tool.input_schema).clone()),
    }
}
