//! `orchestra ui`'s read views beyond `status` and `show`, over real runs (offline, real git):
//! the path with edge counts and the nodes running now, a node run's usage and commits with
//! their diffs, the difference between two checkpoints, the report in its three formats, the
//! same API on a real PostgreSQL server, and all of it in a real headless Chromium.

use std::process::Stdio;

use orchestra_store_postgres::testing::server;
use serde_json::Value;

use super::browser::headless;
use super::common::wait_until;
use super::readme::{Repo, session_of};
use super::web_ui::{get_json, http, reviewed, serve, serve_with};

/// How many times the drawn edge `from -> to` fired, from a session's `graph` and `path`.
fn fired(d: &Value, from: &str, to: &str) -> u64 {
    let edges = d["graph"]["edges"].as_array().unwrap();
    let counts = d["path"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), counts.len(), "{d}");
    edges
        .iter()
        .zip(counts)
        .filter(|(e, _)| e["from"] == from && e["to"] == to)
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// The checks of the read API every database answers alike: a completed pr-review session
/// `id` (one revise loop) served at `a`.
fn check_views(a: &str, id: &str) {
    let d = get_json(a, &format!("/api/sessions/{id}"));
    assert_eq!(fired(&d, "START", "security-reviewer"), 1);
    // The critic sent the reviewers back once, then on to the synthesizer.
    assert_eq!(fired(&d, "critic", "security-reviewer"), 1);
    assert_eq!(fired(&d, "critic", "synthesizer"), 1);
    assert_eq!(fired(&d, "synthesizer", "END"), 1);
    assert_eq!(fired(&d, "security-reviewer", "critic"), 2);
    assert_eq!(d["path"]["runs"]["critic"], 2);
    assert_eq!(d["path"]["running"], Value::Array(vec![]));

    // A node run's usage record: its times and cost.
    let critic = get_json(a, &format!("/api/sessions/{id}/nodes/critic"));
    let usage = &critic["steps"][0]["runs"][0]["usage"];
    let started = usage["started_at"].as_u64().unwrap();
    assert!(usage["finished_at"].as_u64().unwrap() >= started, "{usage}");
    assert!(usage.get("cost_usd").is_some(), "{usage}");

    // The difference between two checkpoints: the critic's output arrives at step 2.
    let diff = get_json(a, &format!("/api/sessions/{id}/diff?from=1&to=2"));
    assert_eq!(diff["session"], id);
    let changes = diff["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["path"]
            .as_str()
            .unwrap()
            .starts_with("agent_outputs.critic")
            && c["kind"] == "added"
            && c.get("before").is_none()),
        "{diff}"
    );
    assert!(
        !changes.iter().any(|c| c["path"]
            .as_str()
            .unwrap()
            .starts_with("agent_outputs.security-reviewer")),
        "the reviewers did not run at step 2: {diff}"
    );
    let same = get_json(a, &format!("/api/sessions/{id}/diff?from=3&to=3"));
    assert_eq!(same["changes"], Value::Array(vec![]));
    for (query, want, says) in [
        ("from=3&to=1", 400, "is after `to`"),
        ("from=1&to=99", 404, "has no checkpoint 99"),
        ("from=x&to=1", 400, "`from=x` is not a checkpoint number"),
        ("from=1", 400, "`to` is missing"),
    ] {
        let (status, _, body) = http(a, "GET", &format!("/api/sessions/{id}/diff?{query}"), &[]);
        assert_eq!(status, want, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    let (status, _, body) = http(a, "GET", "/api/sessions/nobody/diff?from=0&to=1", &[]);
    assert_eq!(status, 404, "{body}");

    // The report, as `orchestra report` writes it.
    let (status, head, html) = http(a, "GET", &format!("/api/sessions/{id}/report"), &[]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/html"), "{head}");
    assert!(head.contains("default-src 'none'"), "{head}");
    assert!(html.contains("<svg") && html.contains(id), "{html}");
    let (status, head, md) = http(
        a,
        "GET",
        &format!("/api/sessions/{id}/report?format=md"),
        &[],
    );
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/markdown"), "{head}");
    assert!(md.contains("| Outcome | **completed** |"), "{md}");
    let json = get_json(a, &format!("/api/sessions/{id}/report?format=json"));
    assert_eq!(json["version"], 1);
    assert_eq!(json["session"]["id"], id);
    assert_eq!(json["steps"].as_array().unwrap().len(), 5);
    let (status, _, body) = http(
        a,
        "GET",
        &format!("/api/sessions/{id}/report?format=pdf"),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a report format"), "{body}");
    let (status, _, _) = http(a, "GET", "/api/sessions/nobody/report", &[]);
    assert_eq!(status, 404);

    // A step's commits: pr-review's reviewers write nothing.
    let none = get_json(a, &format!("/api/sessions/{id}/steps/2/commits"));
    assert_eq!(none["commits"], Value::Array(vec![]));
    let (status, _, body) = http(
        a,
        "GET",
        &format!("/api/sessions/{id}/steps/99/commits"),
        &[],
    );
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = http(
        a,
        "GET",
        &format!("/api/sessions/{id}/steps/x/commits"),
        &[],
    );
    assert_eq!(status, 400);
}

#[test]
fn ui_api_counts_edges_diffs_checkpoints_and_serves_the_report() {
    let (repo, id, _) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    check_views(&ui.addr, &id);
}

#[test]
fn ui_api_shows_a_steps_commits_with_their_diffs() {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/parallel-edit.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();
    let ui = serve(&repo, "127.0.0.1:0");
    let c = get_json(&ui.addr, &format!("/api/sessions/{id}/steps/1/commits"));
    let commits = c["commits"].as_array().unwrap();
    let a = commits
        .iter()
        .find(|c| c["agent"] == "coder-a")
        .unwrap_or_else(|| panic!("{c}"));
    let patch = a["patch"].as_str().unwrap();
    assert!(patch.contains("greet.sh"), "{patch}");
    assert!(patch.contains("\n+++ b/"), "{patch}");
    assert!(patch.contains("\n@@ "), "{patch}");
    assert!(
        patch
            .lines()
            .any(|l| l.starts_with('+') && !l.starts_with("+++")),
        "{patch}"
    );
    assert_eq!(a["patch_cut"], false);
    assert_eq!(a["patch_bytes"].as_u64().unwrap() as usize, patch.len());
    assert_eq!(a["files_changed"], 1);
}

#[test]
fn ui_api_names_the_nodes_running_now() {
    let repo = Repo::new();
    std::fs::write(
        repo.root.join("pipelines/slow.yaml"),
        "name: slow\nagents:\n  wait:\n    command: [sh, -c, 'while [ ! -f gate ]; do sleep 0.05; done']\ngraph:\n  - { from: START, to: wait }\n  - { from: wait, to: END }\n",
    )
    .unwrap();
    let mut run = repo
        .command(&["run", "pipelines/slow.yaml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The UI needs the session database the run makes.
    let id = wait_until("the session to run", || {
        let status = repo.orchestra(&["status", "--json"], "");
        let rows: Value = serde_json::from_str(&status.stdout).ok()?;
        rows.as_array()
            .and_then(|r| r.first())
            .filter(|r| r["status"] == "running")
            .and_then(|r| r["id"].as_str().map(str::to_owned))
    });
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.clone();
    let d = get_json(&a, &format!("/api/sessions/{id}"));
    assert_eq!(d["path"]["running"], serde_json::json!(["wait"]), "{d}");
    assert_eq!(d["path"]["running_step"], 1);
    assert_eq!(fired(&d, "START", "wait"), 0);
    std::fs::write(repo.root.join("gate"), "").unwrap();
    assert!(run.wait().unwrap().success());
    let d = get_json(&a, &format!("/api/sessions/{id}"));
    assert_eq!(d["detail"]["status"], "completed");
    assert_eq!(d["path"]["running"], Value::Array(vec![]));
    assert_eq!(fired(&d, "START", "wait"), 1);
    assert_eq!(fired(&d, "wait", "END"), 1);
}

#[test]
fn ui_api_reads_sessions_on_postgres() {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let url = server.url(&db);
    let repo = Repo::new();
    let mut cmd = repo.command(&["run", "pipelines/pr-review.yaml", "--db", &url]);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let ui = serve_with(&repo, "127.0.0.1:0", &[("ORCHESTRA_DATABASE", &url)]);
    assert!(
        !ui.banner.contains(&server.password),
        "the password is printed: {}",
        ui.banner
    );
    let rows = get_json(&ui.addr, "/api/sessions");
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["status"], "completed");
    check_views(&ui.addr, &id);
}

#[test]
fn ui_in_a_headless_browser_shows_edge_counts_a_commit_diff_and_a_checkpoint_diff() {
    let (repo, id, _) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    let base = format!("http://{}/", ui.addr);
    // The critic's run of step 2 opened, checkpoints 1 and 2 compared (a link to both).
    let page = headless(
        &format!("{base}#/s/{id}?run=2/critic&from=1&to=2"),
        &["--dump-dom"],
        5000,
    );
    // The loop back to the reviewers, taken once, and the edges into the critic, twice.
    assert!(
        page.contains("data-edge=\"critic&gt;security-reviewer\" data-count=\"1\"")
            || page.contains("data-edge=\"critic>security-reviewer\" data-count=\"1\""),
        "{page}"
    );
    // The fan-in into the critic fired twice.
    assert!(page.contains("join: all ×2</text>"), "{page}");
    assert!(page.contains("critic at step 2"), "{page}");
    assert!(page.contains("<dt>Cost</dt>"), "{page}");
    assert!(
        page.contains("No commit on a session branch at this step."),
        "{page}"
    );
    assert!(page.contains("State from checkpoint 1 to 2:"), "{page}");
    assert!(page.contains("class=\"change c-added\""), "{page}");
    assert!(page.contains("+ added"), "{page}");
    assert!(page.contains("report?format=html"), "{page}");

    // A node run that committed: its diff as text.
    let run = repo.orchestra(&["run", "pipelines/parallel-edit.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let edit = session_of(&run).unwrap();
    let page = headless(
        &format!("{base}#/s/{edit}?run=1/coder-a"),
        &["--dump-dom"],
        5000,
    );
    assert!(page.contains("class=\"diff\""), "{page}");
    assert!(page.contains("+++ b/"), "{page}");
    assert!(page.contains("greet.sh (+"), "{page}");
}
