//! The JSON API under `/api/`: the data of `status` and `show` (from
//! `orchestra_runtime::views`), the stored pipeline's graph, and the live events of a session.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use orchestra_runtime::views::{path, sessions, show};
use orchestra_runtime::{RuntimeError, WorkerError, error_chain};
use orchestra_store::{ErrorClass, system_now_ms};
use serde_json::{Value, json};

use crate::Ui;

/// How often the events of a session look at the store.
const POLL: Duration = Duration::from_millis(300);
/// How soon a browser asks again for the events of a session that is not driven.
const SETTLED_RETRY: Duration = Duration::from_secs(3);
/// At most this many sessions are listed.
const LIST_LIMIT: usize = 500;

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/api/sessions", get(list))
        .route("/api/sessions/{id}", get(detail))
        .route("/api/sessions/{id}/nodes/{node}", get(node))
        .route("/api/sessions/{id}/checkpoints/{n}", get(checkpoint))
        .route("/api/sessions/{id}/events", get(events))
        .merge(crate::inspect::routes())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such page".to_owned()) })
}

/// An error as `{"error": ...}` with its status.
pub(crate) fn problem(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// 404 for an unknown (or ambiguous) session, 500 for anything else.
pub(crate) fn failed(e: &RuntimeError) -> Response {
    let usage = matches!(e, RuntimeError::Store(WorkerError::Store(s)) if s.exit_class() == ErrorClass::Usage);
    let status = if usage {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    problem(status, error_chain(e))
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    pipeline: Option<String>,
}

async fn list(State(ui): State<Ui>, Query(q): Query<ListQuery>) -> Response {
    let all = match sessions::summaries(&ui.engine, LIST_LIMIT).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let wanted = |want: &Option<String>, have: &str| {
        want.as_deref().is_none_or(|w| w.is_empty() || w == have)
    };
    let rows: Vec<Value> = all
        .iter()
        .map(|s| {
            let mut row = serde_json::to_value(sessions::SessionRow::from(s)).unwrap_or_default();
            if let Value::Object(m) = &mut row {
                m.insert(
                    "duration_ms".to_owned(),
                    json!(s.updated_at.saturating_sub(s.created_at)),
                );
            }
            row
        })
        .filter(|r| {
            wanted(&q.status, r["status"].as_str().unwrap_or(""))
                && wanted(&q.pipeline, r["pipeline"].as_str().unwrap_or(""))
        })
        .collect();
    Json(rows).into_response()
}

async fn detail(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let detail = match sessions::detail_json(&ui.engine, &id).await {
        Ok(d) => d,
        Err(e) => return failed(&e),
    };
    let sid = detail["id"].as_str().unwrap_or(&id).to_owned();
    let shown = match show::shown(&ui.engine, &sid, None, None).await {
        Ok(Ok(s)) => serde_json::to_value(s).unwrap_or_default(),
        // No checkpoint yet: nothing ran.
        Ok(Err(_)) => Value::Null,
        Err(e) => return failed(&e),
    };
    let (graph, path) = match ui.engine.session_pipeline(&sid).await {
        Ok((rec, compiled)) => match path::path(&ui.engine, &rec, &compiled).await {
            Ok(p) => (
                serde_json::to_value(compiled.to_drawing()).unwrap_or_default(),
                serde_json::to_value(p).unwrap_or_default(),
            ),
            Err(e) => return failed(&e),
        },
        // A stored pipeline this release cannot read: the page shows the runs without a graph.
        Err(e) => (json!({ "error": error_chain(&e) }), Value::Null),
    };
    Json(json!({ "detail": detail, "shown": shown, "graph": graph, "path": path })).into_response()
}

/// `show --node --json`, each run with its usage record's start and end times, cost, cache
/// tokens and retries (`usage`; null for a run without one).
async fn node(State(ui): State<Ui>, Path((id, node)): Path<(String, String)>) -> Response {
    let shown = match show::shown(&ui.engine, &id, None, Some(&node)).await {
        Ok(Ok(s)) => s,
        Ok(Err(why)) => return problem(StatusCode::NOT_FOUND, why),
        Err(e) => return failed(&e),
    };
    let sid = shown.session["id"].as_str().unwrap_or(&id).to_owned();
    let runs = match ui.engine.store().call(move |s| s.node_runs(&sid)).await {
        Ok(r) => r,
        Err(e) => return failed(&RuntimeError::Store(e)),
    };
    let mut out = serde_json::to_value(&shown).unwrap_or_default();
    for (st, step) in shown.steps.iter().zip(
        out["steps"]
            .as_array_mut()
            .map(|a| a.iter_mut())
            .into_iter()
            .flatten(),
    ) {
        for (rv, run) in st.runs.iter().zip(
            step["runs"]
                .as_array_mut()
                .map(|a| a.iter_mut())
                .into_iter()
                .flatten(),
        ) {
            run["usage"] = show::run_record(&runs, rv).map_or(Value::Null, |r| {
                json!({
                    "started_at": r.started_at, "finished_at": r.finished_at,
                    "cost_usd": r.cost_usd, "cache_read_tokens": r.cache_read_tokens,
                    "cache_write_tokens": r.cache_write_tokens, "retries": r.retries,
                })
            });
        }
    }
    Json(out).into_response()
}

async fn checkpoint(State(ui): State<Ui>, Path((id, n)): Path<(String, String)>) -> Response {
    let Ok(n) = n.parse::<u64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("`{n}` is not a checkpoint number"),
        );
    };
    match show::shown(&ui.engine, &id, Some(n), None).await {
        Ok(Ok(s)) => Json(json!({
            "session": s.session, "checkpoint": s.checkpoint,
            "checkpoints": s.checkpoints, "state": s.state,
        }))
        .into_response(),
        Ok(Err(why)) => problem(StatusCode::NOT_FOUND, why),
        Err(e) => failed(&e),
    }
}

/// What the events of a session compare: status, last update, checkpoints.
async fn glance(ui: &Ui, id: &str) -> Result<Value, RuntimeError> {
    let key = id.to_owned();
    let (rec, cps) = ui
        .engine
        .store()
        .call(move |s| {
            let rec = s.find_session(&key)?;
            let cps = s.checkpoints(&rec.id)?;
            // The tasks of the step that runs now: one more means a node finished.
            let next = cps.last().map_or(0, |c| c.step + 1);
            let tasks = s.task_records(&rec.id, next..=next)?.len();
            Ok((rec, (cps.len(), tasks)))
        })
        .await?;
    let (cps, tasks) = cps;
    let status = sessions::record_status(&rec, system_now_ms());
    Ok(json!({
        "id": rec.id, "status": status, "updated_at": rec.updated_at,
        "checkpoints": cps, "tasks": tasks, "error": rec.error,
    }))
}

async fn events(State(ui): State<Ui>, Path(id): Path<String>) -> Response {
    let first = match glance(&ui, &id).await {
        Ok(g) => g,
        Err(e) => return failed(&e),
    };
    Sse::new(changes(ui, id, first))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A `session` event with `first`, then one each time what [`glance`] sees changes; an
/// `error` event (and the end) when the store cannot be read. The stream ends after the event
/// of a session that is not `created` or `running` (nothing drives it): the browser's
/// `EventSource` connects again after `retry` and is told when another process resumed it.
fn changes(ui: Ui, id: String, first: Value) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = (ui, id, None::<Value>, Some(first), false);
    stream::unfold(start, |(ui, id, last, next, done)| async move {
        if done {
            return None;
        }
        let mut next = next;
        loop {
            let seen = match next.take() {
                Some(v) => v,
                None => {
                    tokio::time::sleep(POLL).await;
                    match glance(&ui, &id).await {
                        Ok(v) => v,
                        Err(e) => {
                            let ev = Event::default().event("error").data(error_chain(&e));
                            return Some((Ok(ev), (ui, id, last, None, true)));
                        }
                    }
                }
            };
            if last.as_ref() != Some(&seen) {
                let settled = !matches!(seen["status"].as_str(), Some("created" | "running"));
                let ev = Event::default()
                    .event("session")
                    .retry(SETTLED_RETRY)
                    .data(seen.to_string());
                return Some((Ok(ev), (ui, id, Some(seen), None, settled)));
            }
        }
    })
}
