//! The actions of the page, all POSTs under `/api/` (behind the token and same-origin checks
//! of every request that changes something): start a run of a pipeline of the project, resume
//! a session, fork one at a checkpoint (optionally setting state fields), stop a running one,
//! and give a session's interactive agent one human line. Runs, resumes and forks are driven
//! by an `orchestra` process of their own (detached: they go on when the UI stops), through
//! the interaction layer `orchestra mcp` uses ([`orchestra_runtime::interaction`]).

use std::ffi::OsString;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orchestra_graph::LoadOptions;
use orchestra_runtime::interaction::{self, Drive, ErrorKind, InteractionError, Launcher, Started};
use orchestra_runtime::{Edit, RuntimeError, error_chain, parse_set};
use orchestra_store::SessionStatus;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::Ui;
use crate::api::{failed, problem};
use crate::pipelines;

/// What the actions need: how drives start, and the project whose pipelines can be run.
#[derive(Debug)]
pub struct Actions {
    /// How drives are started (the `orchestra` executable, the database, the logs).
    pub launcher: Launcher,
    /// The project root: its `pipelines/` are the ones the page can start.
    pub root: std::path::PathBuf,
    /// How the project's pipelines are compiled (current directory, `~/.orchestra`).
    pub load: LoadOptions,
}

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/api/pipelines", get(list_pipelines))
        .route("/api/pipelines/run", post(run))
        .route("/api/sessions/{id}/resume", post(resume))
        .route("/api/sessions/{id}/fork", post(fork))
        .route("/api/sessions/{id}/stop", post(stop))
        .route("/api/sessions/{id}/answer", post(answer))
        .route("/api/sessions/{id}/chat", get(chat))
}

/// The actions of `ui`, or the answer that it has none.
fn actions(ui: &Ui) -> Result<Arc<Actions>, Response> {
    ui.actions.clone().ok_or_else(|| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server was started without actions (read only)".to_owned(),
        )
    })
}

/// The request body as `T` (an empty body is `{}`), or 400 naming what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            format!("the request body is not what this action takes: {e}"),
        )
    })
}

/// An interaction's failure with its status: 400, 404, 409 or 500.
fn refused(e: &InteractionError) -> Response {
    let status = match e.kind() {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = match e {
        // The drive's own output: the CLI's error, as printed.
        InteractionError::Ended { output, .. } => output.clone(),
        InteractionError::Runtime(r) => return runtime_refused(r),
        e => error_chain(e),
    };
    problem(status, text)
}

/// A runtime error with its status: an edit that cannot apply or an unknown checkpoint is bad
/// input (400), a completed or busy session a conflict (409), an unknown session 404.
fn runtime_refused(e: &RuntimeError) -> Response {
    use orchestra_runtime::RestoreError;
    match e {
        RuntimeError::Edit {
            session,
            step,
            errors,
        } => {
            let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            lines.push(format!(
                "session `{session}` cannot go on from checkpoint {step} with this edit; nothing was changed"
            ));
            problem(StatusCode::BAD_REQUEST, lines.join("\n"))
        }
        RuntimeError::Restore(RestoreError::NoCheckpoint { .. }) => {
            problem(StatusCode::NOT_FOUND, error_chain(e))
        }
        RuntimeError::Completed { .. } | RuntimeError::Busy { .. } => {
            problem(StatusCode::CONFLICT, error_chain(e))
        }
        e => failed(e),
    }
}

fn started(status: StatusCode, s: &Started) -> Response {
    (
        status,
        Json(json!({ "session": s.session, "pid": s.pid, "log": s.log })),
    )
        .into_response()
}

async fn list_pipelines(State(ui): State<Ui>) -> Response {
    let a = match actions(&ui) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let found = tokio::task::spawn_blocking(move || pipelines::list(&a.root, &a.load)).await;
    match found {
        Ok(list) => Json(list).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// `pipelines/NAME.yaml`, relative to the project root.
    pipeline: String,
    /// `name -> value`: a string as `--input name=value` takes it, or a JSON value.
    #[serde(default)]
    inputs: Map<String, Value>,
}

async fn run(State(ui): State<Ui>, bytes: Bytes) -> Response {
    let a = match actions(&ui) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b: RunBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !pipelines::is_listed(&a.root, &b.pipeline) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!(
                "`{}` is not a pipeline of this project (GET /api/pipelines lists them)",
                b.pipeline
            ),
        );
    }
    let id = orchestra_runtime::new_session_id();
    let mut args: Vec<OsString> = vec![
        "run".into(),
        a.root.join(&b.pipeline).into(),
        "--session-id".into(),
        id.clone().into(),
        "--db".into(),
        a.launcher.db.clone().into(),
    ];
    for (k, v) in &b.inputs {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        args.push("--input".into());
        args.push(format!("{k}={v}").into());
    }
    let drive = Drive {
        command: "run",
        session: &id,
        args,
        stdin: None,
    };
    match interaction::start(&a.launcher, drive).await {
        Ok(s) => started(StatusCode::ACCEPTED, &s),
        Err(e) => refused(&e),
    }
}

/// The session `id` names, or the answer for an unknown one.
async fn record(ui: &Ui, id: &str) -> Result<orchestra_store::SessionRecord, Response> {
    let key = id.to_owned();
    ui.engine
        .store()
        .call(move |s| s.find_session(&key))
        .await
        .map_err(|e| failed(&RuntimeError::Store(e)))
}

async fn resume(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let a = match actions(&ui) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rec = match record(&ui, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rec.status == SessionStatus::Completed {
        return problem(
            StatusCode::CONFLICT,
            format!(
                "session {} is completed; there is nothing to resume",
                rec.id
            ),
        );
    }
    let args: Vec<OsString> = vec![
        "resume".into(),
        rec.id.clone().into(),
        "--db".into(),
        a.launcher.db.clone().into(),
    ];
    let drive = Drive {
        command: "resume",
        session: &rec.id,
        args,
        stdin: None,
    };
    match interaction::start(&a.launcher, drive).await {
        Ok(s) => started(StatusCode::ACCEPTED, &s),
        Err(e) => refused(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    /// The checkpoint to fork at.
    checkpoint: u64,
    /// State fields to set, each `FIELD=JSON` as `--set` takes it.
    #[serde(default)]
    set: Vec<String>,
}

async fn fork(State(ui): State<Ui>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let a = match actions(&ui) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b: ForkBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut set = Vec::new();
    for s in &b.set {
        match parse_set(s) {
            Ok(pair) => set.push(pair),
            Err(why) => return problem(StatusCode::BAD_REQUEST, why),
        }
    }
    let parent = match record(&ui, &id).await {
        Ok(r) => r.id,
        Err(r) => return r,
    };
    let edit = Edit {
        pipeline: None,
        set,
    };
    let new = match ui.engine.fork_edited(&parent, b.checkpoint, &edit).await {
        Ok(new) => new,
        Err(e) => return runtime_refused(&e),
    };
    let args: Vec<OsString> = vec![
        "resume".into(),
        new.clone().into(),
        "--db".into(),
        a.launcher.db.clone().into(),
    ];
    let drive = Drive {
        command: "resume",
        session: &new,
        args,
        stdin: None,
    };
    match interaction::start(&a.launcher, drive).await {
        Ok(s) => (
            StatusCode::CREATED,
            Json(json!({
                "session": new, "parent": parent, "checkpoint": b.checkpoint,
                "pid": s.pid, "log": s.log,
            })),
        )
            .into_response(),
        Err(e) => {
            // The fork exists: say so, with why it does not run.
            let why = refused(&e);
            let (parts, _) = why.into_parts();
            problem(
                parts.status,
                format!(
                    "forked as {new}, but it did not start: {}",
                    match &e {
                        InteractionError::Ended { output, .. } => output.clone(),
                        e => error_chain(e),
                    }
                ),
            )
        }
    }
}

async fn stop(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    match interaction::stop(&ui.engine, &id).await {
        Ok(s) => (StatusCode::ACCEPTED, Json(s)).into_response(),
        Err(e) => refused(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    /// One line: a message, `/approve`, `/reject` or `/done`.
    text: String,
}

async fn answer(State(ui): State<Ui>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let a = match actions(&ui) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b: AnswerBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wait = interaction::DEFAULT_WAIT;
    match interaction::answer(&ui.engine, &a.launcher, &id, &b.text, wait).await {
        Ok(answered) => Json(answered).into_response(),
        Err(e) => refused(&e),
    }
}

/// The chat of the session's interactive agent, from the store: the one a paused session waits
/// at, or the one a running session's process holds now (its lines as stored, whoever said
/// them); `null` when there is none.
async fn chat(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let rec = match record(&ui, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let found = match rec.status {
        SessionStatus::Paused => {
            let note = rec.error.clone().unwrap_or_default();
            interaction::paused_chat(&ui.engine, &rec.id, &note).await
        }
        SessionStatus::Running => interaction::live_chat(&ui.engine, &rec.id).await,
        _ => Ok(None),
    };
    match found {
        Ok(c) => Json(c).into_response(),
        Err(e) => failed(&e),
    }
}
