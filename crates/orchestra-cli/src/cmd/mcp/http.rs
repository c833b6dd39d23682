//! `orchestra mcp --http`: the same tools over MCP's streamable HTTP transport (rmcp's
//! `StreamableHttpService` under axum) at `/mcp`, behind the checks of `orchestra ui`
//! (`orchestra_ui::auth`): a loopback `Host` on a loopback address, the printed token on any
//! other (the user's `ORCHESTRA_MCP_TOKEN` on every address, when set), and an `Origin`, when a request carries one, naming this server. Ctrl-C or SIGTERM
//! stop it: open streams are closed, requests under way get a moment to finish.

use std::future::Future;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orchestra_ui::auth::{self, Access, Origins, UserToken};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::server::Orchestra;
use crate::exit;

/// The variable holding the server's token, when the user sets it.
pub(super) const TOKEN_ENV: &str = "ORCHESTRA_MCP_TOKEN";

/// The address `--http` alone listens on (`orchestra ui` is on 7878).
pub(super) const DEFAULT_ADDR: &str = "127.0.0.1:7879";

/// The path of the MCP endpoint.
const ENDPOINT: &str = "/mcp";

/// How long requests under way may go on after a stop signal.
const GRACE: Duration = Duration::from_secs(5);

/// Serves `server` on `addr` until Ctrl-C or SIGTERM, requiring `token` when the user set one;
/// the exit code.
pub(super) async fn serve(
    server: Orchestra,
    addr: SocketAddr,
    token: Option<UserToken>,
) -> io::Result<u8> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            writeln!(io::stderr(), "error: cannot listen on {addr}: {e}")?;
            return Ok(exit::BAD_INPUT);
        }
    };
    let addr = listener.local_addr()?;
    let mut access = Access::new(addr, Origins::WhenPresent);
    if let Some(token) = token {
        access = access.with_user_token(token);
    }
    // The Host and Origin checks are `access`'s, the same as the web UI's: rmcp's own
    // loopback-only Host list would refuse every request on another address.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let stop_sessions = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .route_service(ENDPOINT, service)
        .layer(axum::middleware::from_fn_with_state(
            access.clone(),
            auth::check,
        ));
    {
        let mut err = io::stderr().lock();
        writeln!(
            err,
            "orchestra mcp: http://{addr}{ENDPOINT} (MCP over streamable HTTP; Ctrl-C stops)"
        )?;
        if let Some(token) = access.printable_token() {
            writeln!(
                err,
                "not a loopback address: every request needs `Authorization: Bearer {token}`"
            )?;
        }
        if access.user_token() {
            writeln!(err, "{}", crate::cmd::ui::token_in_use(TOKEN_ENV))?;
        }
        err.flush()?;
    }
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        stop_signal().await;
        // Ends the sessions, so their open event streams end and the connections close.
        stop_sessions.cancel();
        let _ = stopping.send(true);
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(signal);
    let grace = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        r = served => match r {
            Ok(()) => Ok(exit::SUCCESS),
            Err(e) => {
                writeln!(io::stderr(), "error: the MCP server stopped: {e}")?;
                Ok(exit::INTERNAL)
            }
        },
        () = grace => {
            tracing::debug!("requests still under way {GRACE:?} after the stop signal");
            Ok(exit::SUCCESS)
        }
    }
}

/// Ctrl-C or SIGTERM.
fn stop_signal() -> impl Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::debug!(%e, "no SIGTERM handler; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
