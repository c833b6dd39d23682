//! One connection to an MCP server: started (a program in a process group of its own, talking
//! on its stdin and stdout, or a streamable HTTP session), initialized and its tools listed
//! within the startup timeout; calls within the call timeout; closed with its whole group.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orchestra_process::{Capture, GroupGuard};
use orchestra_spec::{McpServerSpec, expand_env, fmt_duration};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::McpError;

/// Looks up environment variables for `${VAR}`.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How much of a server's stderr is kept for error messages (head and tail).
const STDERR_KEEP: usize = 4096;
/// How long closing may wait for the server to hang up before its group is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A started, initialized server.
pub(crate) struct Connection {
    server: String,
    peer: Peer<RoleClient>,
    service: Mutex<Option<RunningService<RoleClient, ClientConfig>>>,
    /// Its tools, as listed after `initialize`.
    pub(crate) tools: Vec<Tool>,
    child: Option<Child>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

/// The program of a stdio server.
struct Child {
    process: tokio::sync::Mutex<tokio::process::Child>,
    group: Mutex<GroupGuard>,
    stderr: Arc<Mutex<Capture>>,
}

impl Child {
    fn stderr(&self) -> String {
        let cap = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        cap.render(STDERR_KEEP)
    }

    /// How it ended, if it did (waiting a moment: a closed stdout comes just before the exit).
    async fn exit(&self) -> Option<String> {
        let mut p = self.process.lock().await;
        let status = tokio::time::timeout(Duration::from_millis(300), p.wait())
            .await
            .ok()?
            .ok()?;
        Some(describe_exit(status))
    }

    async fn kill(&self) {
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kill();
        let mut p = self.process.lock().await;
        let _ = p.start_kill();
        // Reap it (its group is gone; this returns at once).
        let _ = tokio::time::timeout(CLOSE_GRACE, p.wait()).await;
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("it was killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("it exited with status {code}"),
        None => "it exited".to_owned(),
    }
}

fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("orchestra", env!("CARGO_PKG_VERSION")),
    )
}

/// Expands the `${VAR}`s of `map`'s values (`what` is `env` or `headers`, for messages).
fn expanded(
    server: &str,
    what: &str,
    map: &orchestra_spec::SpannedMap<String>,
    env: &EnvLookup,
) -> Result<Vec<(String, String)>, McpError> {
    map.iter()
        .map(|(k, _, v)| {
            expand_env(v, &|name| env(name))
                .map(|v| (k.to_owned(), v))
                .map_err(|source| McpError::Expand {
                    server: server.to_owned(),
                    key: format!("{what}.{k}"),
                    source,
                })
        })
        .collect()
}

/// What starting needs besides the server's settings.
pub(crate) struct StartCtx<'a> {
    /// Where programs run (the project root).
    pub(crate) cwd: &'a Path,
    /// `${VAR}` lookups.
    pub(crate) env: &'a EnvLookup,
    /// Variables removed from the programs' environment (API keys).
    pub(crate) hidden_env: &'a [String],
}

impl Connection {
    /// Starts `server`, initializes it and lists its tools, all within its startup timeout.
    pub(crate) async fn start(
        server: &str,
        spec: &McpServerSpec,
        ctx: &StartCtx<'_>,
    ) -> Result<Connection, McpError> {
        let timeout = spec.startup_timeout();
        match (&spec.command, &spec.url) {
            (Some(command), _) => start_stdio(server, spec, &command.value, ctx, timeout).await,
            (None, Some(url)) => start_http(server, spec, &url.value, ctx.env, timeout).await,
            (None, None) => Err(McpError::Initialize {
                server: server.to_owned(),
                detail: "it has neither `command` nor `url`".to_owned(),
                stderr: String::new(),
            }),
        }
    }

    /// Whether it can still answer (its connection is open and its program runs).
    pub(crate) fn is_alive(&self) -> bool {
        if self.peer.is_transport_closed() {
            return false;
        }
        match &self.child {
            Some(c) => c
                .process
                .try_lock()
                .map_or(true, |mut p| matches!(p.try_wait(), Ok(None))),
            None => true,
        }
    }

    /// Calls `tool` with `args` (a JSON object) within `timeout`: the result as JSON, or what
    /// went wrong, for the model.
    pub(crate) async fn call(
        &self,
        tool: &str,
        args: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
        let full = format!("{}:{tool}", self.server);
        match tokio::time::timeout(timeout, self.peer.call_tool(params)).await {
            Err(_) => Err(format!(
                "`{full}` timed out after {} (the call was cancelled)",
                fmt_duration(timeout)
            )),
            Ok(Ok(result)) => serde_json::to_value(&result)
                .map_err(|e| format!("`{full}` returned a result that cannot be read: {e}")),
            Ok(Err(ServiceError::McpError(e))) => Err(format!("`{full}` failed: {}", e.message)),
            Ok(Err(e @ (ServiceError::TransportClosed | ServiceError::TransportSend(_)))) => {
                Err(self.died(&full, &e.to_string()).await)
            }
            Ok(Err(e)) => Err(format!("`{full}` failed: {e}")),
        }
    }

    /// The message of a call cut off by the server's end.
    async fn died(&self, full: &str, cause: &str) -> String {
        match &self.child {
            Some(child) => {
                let how = child
                    .exit()
                    .await
                    .unwrap_or_else(|| format!("its connection failed ({cause})"));
                let stderr = child.stderr();
                let mut msg = format!(
                    "`{full}` failed: MCP server `{}` stopped: {how}",
                    self.server
                );
                if !stderr.trim().is_empty() {
                    msg.push_str(&format!("; its stderr ends:\n{}", stderr.trim()));
                }
                msg
            }
            None => format!(
                "`{full}` failed: the connection to MCP server `{}` failed ({cause})",
                self.server
            ),
        }
    }

    /// Ends the session and kills the program's whole process group.
    pub(crate) async fn close(&self) {
        let service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(service) = service {
            let _ = tokio::time::timeout(CLOSE_GRACE, service.cancel()).await;
        }
        if let Some(child) = &self.child {
            child.kill().await;
        }
    }
}

async fn start_stdio(
    server: &str,
    spec: &McpServerSpec,
    program: &str,
    ctx: &StartCtx<'_>,
    timeout: Duration,
) -> Result<Connection, McpError> {
    let env = expanded(server, "env", &spec.env, ctx.env)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.args)
        .current_dir(ctx.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in ctx.hidden_env {
        cmd.env_remove(name);
    }
    cmd.envs(env);
    let (mut process, group) = orchestra_process::spawn_group(cmd)
        .await
        .map_err(|source| McpError::Spawn {
            server: server.to_owned(),
            program: program.to_owned(),
            source,
        })?;
    let stderr = Arc::new(Mutex::new(Capture::new(STDERR_KEEP)));
    if let Some(mut pipe) = process.stderr.take() {
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&buf[..n]);
            }
        });
    }
    let (Some(stdout), Some(stdin)) = (process.stdout.take(), process.stdin.take()) else {
        return Err(McpError::Initialize {
            server: server.to_owned(),
            detail: "its stdin or stdout is not a pipe".to_owned(),
            stderr: String::new(),
        });
    };
    let child = Child {
        process: tokio::sync::Mutex::new(process),
        group: Mutex::new(group),
        stderr,
    };
    tracing::debug!(server, program, "MCP server started");
    let started = tokio::time::timeout(timeout, async {
        let service = client_info()
            .serve((stdout, stdin))
            .await
            .map_err(|e| e.to_string())?;
        let tools = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("cannot list its tools: {e}"))?;
        Ok::<_, String>((service, tools))
    })
    .await;
    match started {
        Ok(Ok((service, tools))) => Ok(Connection {
            server: server.to_owned(),
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            tools,
            child: Some(child),
        }),
        Ok(Err(detail)) => {
            let detail = match child.exit().await {
                Some(how) => format!("{how} ({detail})"),
                None => detail,
            };
            child.kill().await;
            Err(McpError::Initialize {
                server: server.to_owned(),
                detail,
                stderr: child.stderr(),
            })
        }
        Err(_) => {
            child.kill().await;
            Err(McpError::StartTimeout {
                server: server.to_owned(),
                timeout,
                stderr: child.stderr(),
            })
        }
    }
}

async fn start_http(
    server: &str,
    spec: &McpServerSpec,
    url: &str,
    env: &EnvLookup,
    timeout: Duration,
) -> Result<Connection, McpError> {
    // reqwest is built without a default TLS provider (see the workspace's Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = HashMap::new();
    for (name, value) in expanded(server, "headers", &spec.headers, env)? {
        let bad = || McpError::Header {
            server: server.to_owned(),
            name: name.clone(),
        };
        let n = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let v = reqwest::header::HeaderValue::from_str(&value).map_err(|_| bad())?;
        headers.insert(n, v);
    }
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).custom_headers(headers);
    let transport = StreamableHttpClientTransport::from_config(config);
    let started = tokio::time::timeout(timeout, async {
        let service = client_info()
            .serve(transport)
            .await
            .map_err(|e| orchestra_spec::error_chain(&e))?;
        let tools =
            service.peer().list_all_tools().await.map_err(|e| {
                format!("cannot list its tools: {}", orchestra_spec::error_chain(&e))
            })?;
        Ok::<_, String>((service, tools))
    })
    .await;
    match started {
        Ok(Ok((service, tools))) => Ok(Connection {
            server: server.to_owned(),
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            tools,
            child: None,
        }),
        Ok(Err(detail)) => Err(McpError::Initialize {
            server: server.to_owned(),
            detail,
            stderr: String::new(),
        }),
        Err(_) => Err(McpError::StartTimeout {
            server: server.to_owned(),
            timeout,
            stderr: String::new(),
        }),
    }
}
