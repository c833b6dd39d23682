//! The actions of `orchestra ui` (start a run, resume, fork, stop, chat): through the API with
//! their refusals, and in a real headless Chromium driven by chromedriver (clicks and keys),
//! served by the real binary over a real SQLite database; the runs, resumes and forks are real
//! detached `orchestra` processes (scripted providers and a command gate: offline).

use serde_json::{Value, json};

use super::common::wait_until;
use super::readme::Repo;
use super::web_ui::{get_json, http_with, reviewed, serve};
use super::webdriver::Browser;

/// A POST from the page's own origin: status and JSON body.
pub(super) fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let origin = format!("http://{addr}");
    let (status, _, text) = http_with(
        addr,
        "POST",
        path,
        &[("Origin", &origin), ("Content-Type", "application/json")],
        &body.to_string(),
    );
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"));
    (status, v)
}

/// The error text of a refused action.
pub(super) fn error_of(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

/// Waits until session `id` has `status` (as the API shows it).
pub(super) fn wait_status(addr: &str, id: &str, status: &str) -> Value {
    wait_until(&format!("session {id} to be {status}"), || {
        let d = get_json(addr, &format!("/api/sessions/{id}"));
        (d["detail"]["status"] == status).then_some(d)
    })
}

/// A pipeline whose agent runs until a file `open` exists in the project.
const GATE: &str = r#"name: gate
description: Waits for a file named open.
inputs:
  topic: { type: string, description: What it is about. }
providers:
  gate:
    kind: command
    command: ["sh", "-c", "cat >/dev/null; while [ ! -e open ]; do sleep 0.02; done; echo through"]
    stdin: true
agents:
  first: { provider: gate }
graph:
  - { from: START, to: first }
  - { from: first, to: END }
"#;

#[test]
fn ui_actions_fork_resume_and_answer_refuse_bad_input_with_the_clis_text() {
    let (repo, id, _) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();

    // The project's pipelines with their typed inputs; no prompt layers, conditions or
    // scripted responses among them.
    let pipes = get_json(a, "/api/pipelines");
    let pipes = pipes.as_array().unwrap();
    let plan = pipes
        .iter()
        .find(|p| p["path"] == "pipelines/plan-with-human.yaml")
        .unwrap_or_else(|| panic!("{pipes:?}"));
    assert_eq!(plan["name"], "plan-with-human");
    assert_eq!(plan["inputs"][0]["name"], "goal");
    assert_eq!(plan["inputs"][0]["type"], "string");
    assert_eq!(plan["inputs"][0]["required"], false);
    for p in pipes {
        let path = p["path"].as_str().unwrap();
        assert!(
            !path.contains(".responses.")
                && !path.contains("/conditions/")
                && !path.contains("/prompts/"),
            "{path}"
        );
    }

    // Fork: bad input is refused with the CLI's text, and nothing is made.
    let fork = format!("/api/sessions/{id}/fork");
    let (status, v) = post(a, &fork, &json!({ "checkpoint": 2, "set": ["nope=1"] }));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("has no state field `nope`"), "{v}");
    assert!(error_of(&v).contains("nothing was changed"), "{v}");
    let (status, v) = post(
        a,
        &fork,
        &json!({ "checkpoint": 2, "set": ["critique=[1,"] }),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        error_of(&v).contains("the value of `critique` is not JSON"),
        "{v}"
    );
    let (status, v) = post(a, &fork, &json!({ "checkpoint": 2, "set": ["critique"] }));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("expected FIELD=JSON"), "{v}");
    let (status, v) = post(a, &fork, &json!({ "checkpoint": "two" }));
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(a, &fork, &json!({ "checkpoint": 99 }));
    assert_eq!(status, 404, "{v}");
    assert!(error_of(&v).contains("has no checkpoint 99"), "{v}");
    let (status, v) = post(a, "/api/sessions/no-such/fork", &json!({ "checkpoint": 1 }));
    assert_eq!(status, 404, "{v}");
    assert!(error_of(&v).contains("no session matches"), "{v}");
    // From another origin, or none: refused before anything happens.
    for origin in [Some("http://evil.example"), None] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        let (status, _, body) = http_with(a, "POST", &fork, &headers, r#"{"checkpoint": 2}"#);
        assert_eq!(status, 403, "{body}");
    }
    assert_eq!(get_json(a, "/api/sessions").as_array().unwrap().len(), 2);

    // A fork with an edited field: a new session, driven by a process of its own, completes.
    let (status, v) = post(
        a,
        &fork,
        &json!({ "checkpoint": 2, "set": ["critique=\"from the web UI\""] }),
    );
    assert_eq!(status, 201, "{v}");
    let new = v["session"].as_str().unwrap().to_owned();
    assert_eq!(v["parent"], id.as_str());
    let done = wait_status(a, &new, "completed");
    assert_eq!(done["detail"]["parent_session"], id.as_str());
    assert_eq!(done["detail"]["parent_checkpoint"], 2);
    let edited = done["detail"]["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| {
            let st = get_json(a, &format!("/api/sessions/{new}/checkpoints/{}", c["step"]));
            st["state"]["critique"] == "from the web UI"
        });
    assert!(edited, "no checkpoint of {new} has the edited critique");

    // Resume, stop and answer a completed session: 409; bad lines: 400.
    let (status, v) = post(a, &format!("/api/sessions/{id}/resume"), &json!({}));
    assert_eq!(status, 409, "{v}");
    assert!(error_of(&v).contains("is completed"), "{v}");
    let (status, v) = post(a, &format!("/api/sessions/{id}/stop"), &json!({}));
    assert_eq!(status, 409, "{v}");
    assert!(
        error_of(&v).contains("is not running (it is completed)"),
        "{v}"
    );
    let answer = format!("/api/sessions/{id}/answer");
    let (status, v) = post(a, &answer, &json!({ "text": "/approve" }));
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(a, &answer, &json!({ "text": "two\nlines" }));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("an answer is one line"), "{v}");
    let (status, v) = post(a, &answer, &json!({ "text": "  " }));
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(a, "/api/sessions/no-such/resume", &json!({}));
    assert_eq!(status, 404, "{v}");
    let (status, v) = post(a, "/api/sessions/no-such/stop", &json!({}));
    assert_eq!(status, 404, "{v}");
    assert_eq!(
        get_json(a, &format!("/api/sessions/{id}/chat")),
        Value::Null
    );
}

#[test]
fn ui_actions_start_stop_and_resume_a_run() {
    let repo = Repo::new();
    std::fs::write(repo.root.join("pipelines/gate.yaml"), GATE).unwrap();
    // `orchestra ui` serves an existing session database.
    let first = repo.orchestra(&["run", "pipelines/plan-with-human.yaml"], "");
    assert_eq!(first.code, 0, "{}", first.transcript());
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();
    let run = "/api/pipelines/run";

    // Bad runs: the CLI's text, nothing started.
    let (status, v) = post(a, run, &json!({ "pipeline": "pipelines/gate.yaml" }));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("topic"), "{v}");
    let (status, v) = post(
        a,
        run,
        &json!({ "pipeline": "pipelines/gate.yaml", "inputs": { "topic": "t", "nope": "x" } }),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        error_of(&v).contains("the pipeline has no input `nope`"),
        "{v}"
    );
    for outside in [
        "../gate.yaml",
        "/etc/passwd",
        "fixtures/x.yaml",
        "pipelines/none.yaml",
    ] {
        let (status, v) = post(a, run, &json!({ "pipeline": outside }));
        assert_eq!(status, 400, "{outside}: {v}");
        assert!(
            error_of(&v).contains("is not a pipeline of this project"),
            "{v}"
        );
    }
    assert_eq!(get_json(a, "/api/sessions").as_array().unwrap().len(), 1);

    // A run, detached: it goes on while the test looks.
    let (status, v) = post(
        a,
        run,
        &json!({ "pipeline": "pipelines/gate.yaml", "inputs": { "topic": "stop me" } }),
    );
    assert_eq!(status, 202, "{v}");
    let id = v["session"].as_str().unwrap().to_owned();
    wait_status(a, &id, "running");
    let (status, v) = post(a, &format!("/api/sessions/{id}/resume"), &json!({}));
    assert_eq!(status, 409, "resuming a running session: {v}");
    assert!(
        error_of(&v).contains("is being driven by another process"),
        "{v}"
    );

    // Stop: as Ctrl-C in its process, the session is interrupted (resumable).
    let (status, v) = post(a, &format!("/api/sessions/{id}/stop"), &json!({}));
    assert_eq!(status, 202, "{v}");
    assert!(v["pid"].as_i64().unwrap() > 0, "{v}");
    wait_status(a, &id, "interrupted");
    let (status, v) = post(a, &format!("/api/sessions/{id}/stop"), &json!({}));
    assert_eq!(status, 409, "{v}");

    // Resume it; `orchestra stop` stops it the same way, and waits for it.
    let (status, v) = post(a, &format!("/api/sessions/{id}/resume"), &json!({}));
    assert_eq!(status, 202, "{v}");
    wait_status(a, &id, "running");
    let stop = repo.orchestra(&["stop", &id], "");
    assert_eq!(stop.code, 0, "{}", stop.transcript());
    assert!(
        stop.stdout
            .contains(&format!("session {id} stopped: interrupted")),
        "{}",
        stop.transcript()
    );
    assert!(
        stop.stdout.contains("orchestra resume"),
        "{}",
        stop.transcript()
    );
    let again = repo.orchestra(&["stop", &id], "");
    assert_eq!(again.code, 2, "{}", again.transcript());
    assert!(
        again.stderr.contains("is not running (it is interrupted)"),
        "{}",
        again.transcript()
    );
    let unknown = repo.orchestra(&["stop", "no-such"], "");
    assert_eq!(unknown.code, 2, "{}", unknown.transcript());
    assert!(
        unknown.stderr.contains("no session matches"),
        "{}",
        unknown.transcript()
    );

    // Resume it, let the gate through: it completes.
    let (status, v) = post(a, &format!("/api/sessions/{id}/resume"), &json!({}));
    assert_eq!(status, 202, "{v}");
    std::fs::write(repo.root.join("open"), "").unwrap();
    let done = wait_status(a, &id, "completed");
    assert_eq!(done["shown"]["state"]["agent_outputs"]["first"], "through");
}

/// The sessions the API lists.
fn ids(addr: &str) -> Vec<String> {
    get_json(addr, "/api/sessions")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[cfg_attr(
    no_chromedriver,
    ignore = "no chromedriver: see the warning of tests/build.rs"
)]
#[test]
fn ui_in_a_browser_forks_a_pr_review_session_and_the_fork_completes() {
    let (repo, id, forked) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();
    let b = Browser::start();
    b.open(&format!("http://{a}/#/s/{id}"));
    b.wait_text(&format!("Session {id}"));
    b.choose("#fork-checkpoint", "2");
    b.click("#fork-start");
    b.wait_text("forked as ");
    let new = b
        .eval(
            "return document.querySelector('#action-status a').textContent;",
            &[],
        )
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new != id && new != forked, "{new}");
    assert!(ids(a).contains(&new));

    // The list shows it, and its status goes to completed there without a reload.
    b.click("header a.brand");
    b.wait_text(&new);
    wait_until(&format!("the list to show {new} completed"), || {
        let st = b.eval(
            "const r = document.querySelector(`tr[data-session=\"${arguments[0]}\"] .status`); return r && r.textContent;",
            &[json!(new)],
        );
        (st == "completed").then_some(())
    });
    let d = get_json(a, &format!("/api/sessions/{new}"));
    assert_eq!(d["detail"]["status"], "completed");
    assert_eq!(d["detail"]["parent_checkpoint"], 2);
}

#[cfg_attr(
    no_chromedriver,
    ignore = "no chromedriver: see the warning of tests/build.rs"
)]
#[test]
fn ui_in_a_browser_starts_plan_with_human_and_approves_it_until_it_completes() {
    let repo = Repo::new();
    // `orchestra ui` serves an existing session database: one session of another pipeline.
    let first = repo.orchestra(&["run", "pipelines/examples/hello.yaml"], "");
    assert_eq!(first.code, 0, "{}", first.transcript());
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();
    let b = Browser::start();
    b.open(&format!("http://{a}/#/"));
    b.choose("#run-pipeline", "pipelines/plan-with-human.yaml");
    b.type_into("input[name=goal]", "Add a cache to the API");
    b.click("#run-start");
    b.wait_text("started session ");
    b.click(".action-status a");
    b.wait_text("Paused at reviewer");
    let id = ids(a).into_iter().next().unwrap();
    let d = get_json(a, &format!("/api/sessions/{id}"));
    assert_eq!(d["detail"]["pipeline"], "plan-with-human");
    // The graph marks the agent it waits at: ◆, from the path's `waiting`.
    assert_eq!(d["path"]["waiting"], json!(["reviewer"]), "{}", d["path"]);
    assert_eq!(d["path"]["running"], json!([]), "{}", d["path"]);
    b.wait_text("reviewer ◆");
    // It paused before the agent spoke: a message from the keyboard opens the chat, the agent
    // speaks, takes it and answers; the session pauses again, its chat shown.
    b.type_into("#chat-text", "What about a rollback?");
    b.click("#chat-send");
    b.wait_text("Changes requested");
    assert!(
        b.text().contains("agent: Two things matter"),
        "{}",
        b.text()
    );
    b.click("button[data-command=\"/approve\"]");
    wait_status(a, &id, "completed");
    b.wait_text("completed");
    let d = get_json(a, &format!("/api/sessions/{id}"));
    let out = &d["shown"]["state"]["agent_outputs"]["reviewer"];
    assert_eq!(out["verdict"], "approve", "{out}");
    let goal = &d["shown"]["state"]["inputs"]["goal"];
    assert!(
        goal == "Add a cache to the API" || d.to_string().contains("Add a cache to the API"),
        "{d}"
    );
}

#[test]
fn ui_starts_in_a_new_project_and_runs_its_first_session() {
    let repo = Repo::new();
    let db = repo.root.join(".orchestra/orchestra.db");
    assert!(!repo.root.join(".orchestra").exists());
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();
    assert!(db.exists(), "the UI made the session database");
    assert_eq!(get_json(a, "/api/sessions"), json!([]));
    let pipes = get_json(a, "/api/pipelines");
    let paths: Vec<&str> = pipes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(paths.contains(&"pipelines/pr-review.yaml"), "{pipes}");

    // The first run of the project, started from the UI, lands in that database.
    let (status, v) = post(
        a,
        "/api/pipelines/run",
        &json!({ "pipeline": "pipelines/pr-review.yaml" }),
    );
    assert_eq!(status, 202, "{v}");
    let id = v["session"].as_str().unwrap().to_owned();
    wait_status(a, &id, "completed");
    let status = repo.orchestra(&["status", &id], "");
    assert_eq!(status.code, 0, "{}", status.transcript());
}
