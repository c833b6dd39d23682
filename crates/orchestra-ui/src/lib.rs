//! The web UI of orchestra (`orchestra ui`): an HTTP server (axum) with a JSON API under
//! `/api/` and one page app (plain HTML, CSS and JavaScript embedded in the binary).
//!
//! - `GET /api/sessions` — the sessions (the rows of `orchestra status --json`, plus
//!   `duration_ms`), newest first; `?status=` and `?pipeline=` filter them.
//! - `GET /api/sessions/ID` — `status ID --json` (`detail`), `show ID --json` (`shown`: state,
//!   steps, runs, routing), the stored pipeline's graph (`graph`) and the nodes that ran at
//!   each step (`path`).
//! - `GET /api/sessions/ID/nodes/NODE` — that node's runs in full: prompt as sent, answers, tool
//!   calls, routing (`show ID --node NODE --json`).
//! - `GET /api/sessions/ID/checkpoints/N` — the state at checkpoint N.
//! - `GET /api/sessions/ID/events` — server-sent events: a `session` event (status, updated
//!   time, checkpoints) at once and whenever one of them changes.
//!
//! - `GET /api/pipelines` — the project's pipelines (`pipelines/**/*.yaml`) with their typed
//!   inputs, for the form that starts a run.
//! - The actions (see [`Actions`]), all POSTs: `/api/pipelines/run` (`{pipeline, inputs}`),
//!   `/api/sessions/ID/resume`, `/api/sessions/ID/fork` (`{checkpoint, set: ["FIELD=JSON"]}`),
//!   `/api/sessions/ID/stop`, `/api/sessions/ID/answer` (`{text}`); `GET
//!   /api/sessions/ID/chat` is the chat a paused session waits at, or the one a running
//!   session's interactive agent holds (as stored, whoever said it).
//!
//! Security: on a loopback address requests must name a loopback host (no DNS rebinding); on
//! any other address every request needs the [`Ui::token`] (`Authorization: Bearer`, or
//! `?token=` which sets a cookie), else 401; the user's token ([`Ui::with_user_token`]) is
//! needed on every address. Requests other than GET and HEAD must also come
//! from the same origin (`Origin` matching `Host`), else 403. The API serves no files, and no
//! API key is in what it shows; the actions start `orchestra` processes on the project's own
//! pipelines and sessions only.

mod actions;
mod api;
mod assets;
pub mod auth;
mod inspect;
mod pipelines;

pub use actions::Actions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use orchestra_runtime::Engine;

use crate::auth::{Access, Origins};

/// The server's shared state: the engine over the session database, and who may use it.
#[derive(Debug, Clone)]
pub struct Ui {
    engine: Arc<Engine>,
    access: Access,
    actions: Option<Arc<Actions>>,
}

impl Ui {
    /// A UI over `engine` to be served on `addr`: on a non-loopback address it requires a new
    /// random token (see [`Ui::token`]).
    pub fn new(engine: Arc<Engine>, addr: SocketAddr) -> Ui {
        Ui {
            engine,
            access: Access::new(addr, Origins::ChangesFromOwnPage),
            actions: None,
        }
    }

    /// The UI with its actions (start, resume, fork, stop, answer); without them it is read
    /// only (the actions answer 503).
    pub fn with_actions(mut self, actions: Actions) -> Ui {
        self.actions = Some(Arc::new(actions));
        self
    }

    /// The UI with the user's token in place of a random one: required on every address,
    /// never printed.
    pub fn with_user_token(mut self, token: auth::UserToken) -> Ui {
        self.access = self.access.with_user_token(token);
        self
    }

    /// The token to print: the random one a non-loopback address requires (none when the
    /// user set one, see [`Ui::user_token`]).
    pub fn token(&self) -> Option<&str> {
        self.access.printable_token()
    }

    /// Whether the user's token is in use.
    pub fn user_token(&self) -> bool {
        self.access.user_token()
    }

    /// The URL to open: `http://ADDR/`, with `?token=` when a random one is required (never
    /// the user's own).
    pub fn url(&self, addr: SocketAddr) -> String {
        match self.token() {
            Some(t) => format!("http://{addr}/?token={t}"),
            None => format!("http://{addr}/"),
        }
    }

    /// The router: the API, the page app, and the security checks in front of both.
    pub fn router(self) -> Router {
        let access = self.access.clone();
        api::routes()
            .merge(actions::routes())
            .merge(assets::routes())
            .layer(axum::middleware::from_fn_with_state(access, auth::check))
            .with_state(self)
    }
}

/// Serves `ui` on `listener` until `shutdown` completes.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ui: Ui,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, ui.router())
        .with_graceful_shutdown(shutdown)
        .await
}
