//! The read views beyond `status` and `show`: the difference between the states of two
//! checkpoints, the commits (with their patches) a step made on the session branches, and the
//! session's report as `orchestra report` writes it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use orchestra_runtime::views::{report, show, state_diff};
use serde_json::json;

use crate::Ui;
use crate::api::{failed, problem};

/// A commit's patch is cut at this size (the page says so, with the whole size).
pub(crate) const PATCH_LIMIT: usize = 64 * 1024;

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/api/sessions/{id}/diff", get(diff))
        .route("/api/sessions/{id}/steps/{n}/commits", get(commits))
        .route("/api/sessions/{id}/report", get(report_of))
}

#[derive(Debug, serde::Deserialize)]
struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A checkpoint number from the query, or the 400 that says what is wrong with it.
fn checkpoint_arg(name: &str, v: Option<&str>) -> Result<u64, Response> {
    let Some(v) = v else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is missing: give two checkpoints, ?from=N&to=M"),
        ));
    };
    v.parse().map_err(|_| {
        problem(
            StatusCode::BAD_REQUEST,
            format!("`{name}={v}` is not a checkpoint number"),
        )
    })
}

async fn diff(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let (from, to) = match (
        checkpoint_arg("from", q.from.as_deref()),
        checkpoint_arg("to", q.to.as_deref()),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if from > to {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`from` ({from}) is after `to` ({to}): the earlier checkpoint comes first"),
        );
    }
    let mut states = Vec::new();
    for n in [from, to] {
        match show::shown(&ui.engine, &id, Some(n), None).await {
            Ok(Ok(s)) => states.push(s),
            Ok(Err(why)) => return problem(StatusCode::NOT_FOUND, why),
            Err(e) => return failed(&e),
        }
    }
    let changes = state_diff::diff(&states[0].state, &states[1].state);
    Json(json!({
        "session": states[0].session["id"], "from": from, "to": to, "changes": changes,
    }))
    .into_response()
}

async fn commits(State(ui): State<Ui>, Path((id, n)): Path<(String, String)>) -> Response {
    let Ok(step) = n.parse::<u64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`{n}` is not a step number"),
        );
    };
    // The session must exist and have that step.
    let sid = match show::shown(&ui.engine, &id, Some(step), None).await {
        Ok(Ok(s)) => s.session["id"].as_str().unwrap_or(&id).to_owned(),
        Ok(Err(why)) => return problem(StatusCode::NOT_FOUND, why),
        Err(e) => return failed(&e),
    };
    match report::step_diffs(&ui.engine, &sid, step, PATCH_LIMIT).await {
        Ok(c) => Json(json!({ "session": sid, "step": step, "commits": c })).into_response(),
        Err(e) => failed(&e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

/// The report's own style sheet is inline; it has no scripts and loads nothing.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn report_of(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let name = q.format.as_deref().unwrap_or("html");
    let Some(format) = report::Format::parse(name) else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`format={name}` is not a report format (html, md or json)"),
        );
    };
    let r = match report::gather(&ui.engine, &id).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let text = match report::render(&r, format) {
        Ok(t) => t,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let kind = match format {
        report::Format::Html => "text/html; charset=utf-8",
        report::Format::Md => "text/markdown; charset=utf-8",
        report::Format::Json => "application/json",
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, REPORT_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}
