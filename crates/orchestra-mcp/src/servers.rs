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
    /// The running connection. Held while starting, so agents that need the server at the same
    /// time wait for one start.
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
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
                        conn: tokio::sync::Mutex::new(None),
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

    /// The connection to `server`: the running one, else a new one (a server that stopped is
    /// started again when `restart`).
    async fn connection(&self, server: &str, restart: bool) -> Result<Arc<Connection>, McpError> {
        let slot = self
            .slots
            .get(server)
            .ok_or_else(|| McpError::UnknownServer(server.to_owned()))?;
        let mut guard = slot.conn.lock().await;
        if let Some(conn) = guard.as_ref() {
            if conn.is_alive() || !restart {
                return Ok(Arc::clone(conn));
            }
            tracing::warn!(server, "MCP server stopped; starting it again");
            conn.close().await;
        }
        let ctx = StartCtx {
            cwd: &self.cwd,
            env: &self.env,
            hidden_env: &self.hidden_env,
        };
        let conn = Arc::new(Connection::start(server, &slot.spec, &ctx).await?);
        *guard = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// The tools of `server` (started if it is not running), named `SERVER:TOOL`.
    pub async fn tools(&self, server: &str) -> Result<Vec<ToolDef>, McpError> {
        let conn = self.connection(server, true).await?;
        Ok(conn.tools.iter().map(|t| def(server, t)).collect())
    }

    /// The definitions of an agent's MCP tools: `(server, tool)` pairs, `*` for all of a
    /// server's tools, in order and each once. Starts the servers not running yet; a server
    /// that cannot start, or a tool it does not have, is an error.
    pub async fn definitions(&self, refs: &[(String, String)]) -> Result<Vec<ToolDef>, McpError> {
        let mut out: Vec<ToolDef> = Vec::new();
        let mut push = |d: ToolDef| {
            if !out.iter().any(|o| o.name == d.name) {
                out.push(d);
            }
        };
        for (server, tool) in refs {
            let all = self.tools(server).await?;
            if tool == "*" {
                all.into_iter().for_each(&mut push);
                continue;
            }
            let full = format!("{server}:{tool}");
            match all.iter().position(|d| d.name == full) {
                Some(i) => push(all[i].clone()),
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
    /// model reads. The text is not capped (the caller caps it like any tool's output).
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
            Err(e) => return (format!("`{full}` failed: {e}"), true),
        };
        if !conn.is_alive() {
            return (
                format!(
                    "`{full}` failed: MCP server `{server}` is not running (it stopped during this agent's run; it starts again when an agent next runs)"
                ),
                true,
            );
        }
        let Some(slot) = self.slots.get(server) else {
            return (format!("unknown MCP server `{server}`"), true);
        };
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

    /// Stops every running server (its session, then its whole process group). Servers can be
    /// started again afterwards.
    pub async fn shutdown(&self) {
        for (name, slot) in &self.slots {
            let conn = slot.conn.lock().await.take();
            if let Some(conn) = conn {
                conn.close().await;
                tracing::debug!(server = name.as_str(), "MCP server stopped");
            }
        }
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
