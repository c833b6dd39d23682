//! `orchestra report` after real runs (offline, real git and SQLite): Markdown and JSON
//! snapshots of a pr-review run; the commits with their diffstat of a parallel-edit run; an
//! HTML file that loads nothing from outside and escapes a hostile answer; the HTML opened in
//! a real headless Chromium, whose DOM has the graph's node labels; `-o` and its errors.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::fake_model::{FakeModel, text, tool_call};
use super::project::Project;
use super::readme::{Repo, session_of};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(super::common::tests_dir().join("snapshots/report"));
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

/// A duration as the report prints it (`12ms`, `1.5s`, `2m3s`).
fn is_duration(w: &str) -> bool {
    let w = w.trim_matches(|c: char| c == '|' || c == '`');
    !w.is_empty()
        && w.chars().next().is_some_and(|c| c.is_ascii_digit())
        && (w.ends_with("ms") || w.ends_with('s'))
        && w.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'm' | 's' | 'h'))
}

/// The Markdown with the session id, start time, durations and commit ids redacted.
fn redact_md(text: &str, id: &str) -> String {
    text.replace(id, "SESSION")
        .lines()
        .map(|line| {
            if line.starts_with("| Started |") {
                return "| Started | TIME |".to_owned();
            }
            line.split(' ')
                .map(|w| if is_duration(w) { "TIME" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .map(|l| l + "\n")
        .collect()
}

/// The JSON with the session id, times and commit ids redacted.
fn redact_json(v: &mut Value, id: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "duration_ms" | "started_at" | "at_ms") {
                    *x = Value::from("TIME");
                } else if k == "sha" || k == "call_id" {
                    *x = Value::from("SHA");
                } else {
                    redact_json(x, id);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_json(x, id)),
        Value::String(s) if s.contains(id) => *s = s.replace(id, "SESSION"),
        _ => {}
    }
}

#[test]
fn a_pr_review_report_in_markdown_and_json() {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/pr-review.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();

    let md = repo.orchestra(&["report", &id], "");
    assert_eq!(md.code, 0, "{}", md.transcript());
    assert!(
        md.stdout.contains("| Outcome | **completed** |"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("    a2[\"critic ✓ ×2\"]"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains("- Route: critic -> revise -> security-reviewer, architecture-reviewer (loop 1/2) [critic_routing]"),
        "{}",
        md.stdout
    );
    let json = repo.orchestra(&["report", &id, "--format", "json"], "");
    assert_eq!(json.code, 0, "{}", json.transcript());
    let mut v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["session"]["id"], id.as_str());
    assert_eq!(v["steps"].as_array().unwrap().len(), 5);
    let outputs = v["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{v}");
    assert!(repo.root.join(outputs[0].as_str().unwrap()).is_file());
    redact_json(&mut v, &id);
    settings().bind(|| {
        insta::assert_snapshot!("pr-review.md", redact_md(&md.stdout, &id));
        insta::assert_snapshot!("pr-review.json", serde_json::to_string_pretty(&v).unwrap());
    });
}

#[test]
fn a_report_lists_each_steps_commits_with_their_diffstat_and_the_forks() {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/parallel-edit.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();
    let fork = repo.orchestra(&["replay", &id, "--checkpoint", "1", "--no-run"], "");
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    let json = repo.orchestra(&["report", &id, "--format", "json"], "");
    assert_eq!(json.code, 0, "{}", json.transcript());
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let first = &v["steps"][0];
    assert_eq!(first["step"], 1);
    let commits = first["commits"].as_array().unwrap();
    let agents: Vec<&str> = commits.iter().filter_map(|c| c["agent"].as_str()).collect();
    assert!(
        agents.contains(&"coder-a") && agents.contains(&"coder-b"),
        "{v}"
    );
    let a = commits.iter().find(|c| c["agent"] == "coder-a").unwrap();
    assert_eq!(a["files_changed"], 1);
    assert!(a["insertions"].as_u64().unwrap() > 0);
    assert!(
        a["files"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("greet.sh"),
        "{a}"
    );
    assert_eq!(v["repos"][0]["removed"], false);
    assert_eq!(v["forks"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["forks"][0]["checkpoint"], 1);
    let md = repo.orchestra(&["report", &id], "");
    assert!(md.stdout.contains("## Forks\n"), "{}", md.stdout);
    assert!(md.stdout.contains("greet.sh` +"), "{}", md.stdout);
}

/// A session whose agent answers with markup and calls a tool with markup in its arguments.
fn hostile() -> (Project, String) {
    let p = Project::new();
    let model = FakeModel::start(vec![
        tool_call(
            "c1",
            "app__repeat",
            r#"{"n": 3, "x": "<img src=x onerror=alert(2)>"}"#,
        ),
        text("<script>alert(1)</script> & <a href=\"http://evil.example\">x</a>"),
    ]);
    let pipeline = std::fs::read_to_string(p.path("bad/tools.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:9/v1", &model.api_base());
    p.write("bad/hostile.yaml", &pipeline);
    let run = p.run(&["run", "bad/hostile.yaml"]);
    let id = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .map(str::to_owned);
    (p, id.unwrap_or_else(|| panic!("{}", run.transcript())))
}

/// Every `href`/`src` of `html` is a link inside the page.
fn assert_self_contained(html: &str) {
    assert!(!html.contains("http"), "nothing from outside: {html}");
    assert!(!html.contains("<script"), "no script: {html}");
    assert!(!html.contains("src="), "no source loaded: {html}");
    for (at, _) in html.match_indices("href=") {
        assert!(html[at..].starts_with("href=\"#"), "{}", &html[at..at + 40]);
    }
    assert!(!html.contains("@import") && !html.contains("url(http"));
}

#[test]
fn the_html_report_is_self_contained_and_escapes_what_the_agents_said() {
    let (p, id) = hostile();
    let out = p.path("report.html");
    let run = p.run(&["report", &id, "--format", "html", "-o", "report.html"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.stdout, "", "with -o nothing goes to stdout");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The answer, the tool arguments and the node's name are shown, escaped.
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;a href=&quot;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{html}"
    );
    assert!(html.contains("<svg "), "{html}");
    // Everything else in the page is the page's own: the escaped text is all that mentions
    // `http`, `src=` or scripts.
    let stripped = html
        .replace("&lt;a href=&quot;http://evil.example&quot;&gt;", "")
        .replace("&lt;img src=x onerror=alert(2)&gt;", "")
        .replace("\\u003cimg src=x", "")
        .replace("&lt;script&gt;", "");
    assert_self_contained(&stripped);

    // Markdown escapes it too, and `-o` overwrites.
    let md = p.run(&["report", &id, "-o", "report.html"]);
    assert_eq!(md.code, 0, "{}", md.transcript());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# tools — session"), "{text}");
    assert!(
        text.contains("```text\n<script>alert(1)</script> & <a href="),
        "the answer is in a code block, where Markdown shows it as text: {text}"
    );

    // An unwritable path is an I/O error (5) that names the file.
    let bad = p.run(&["report", &id, "-o", "no/such/dir/r.md"]);
    assert_eq!(bad.code, 5, "{}", bad.transcript());
    assert!(
        bad.stderr.contains("error: cannot write "),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("no/such/dir/r.md"), "{}", bad.stderr);
    // An unknown session is bad input.
    let unknown = p.run(&["report", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.transcript());
}

fn dump_dom(chromium: &Path, file: &Path, profile: &Path) -> String {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .env("HOME", profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The browser test: with the Chromium that tests/build.rs found or installed, or ignored with
/// the reason it has none (run with `--ignored`, it fails with that reason).
macro_rules! browser_test {
    (found $path:literal) => {
        #[test]
        fn the_html_report_renders_its_graph_in_a_headless_chromium() {
            renders_its_graph(Path::new($path));
        }
    };
    (ignored $why:literal) => {
        #[test]
        #[ignore = $why]
        fn the_html_report_renders_its_graph_in_a_headless_chromium() {
            panic!("{}", $why);
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/chromium.rs"));

fn renders_its_graph(chromium: &Path) {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/pr-review.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();
    let wrote = repo.orchestra(&["report", &id, "--format", "html", "-o", "r.html"], "");
    assert_eq!(wrote.code, 0, "{}", wrote.transcript());
    let profile = tempfile::tempdir().unwrap();
    let dom = dump_dom(chromium, &repo.root.join("r.html"), profile.path());
    // The browser parsed an SVG with every node's label and the path's marks.
    let svg_at = dom
        .find("<svg")
        .unwrap_or_else(|| panic!("no svg in the DOM: {dom}"));
    let svg = &dom[svg_at
        ..dom[svg_at..]
            .find("</svg>")
            .map_or(dom.len(), |e| svg_at + e)];
    for label in [
        ">START<",
        ">END<",
        ">security-reviewer ✓ ×2<",
        ">architecture-reviewer ✓ ×2<",
        ">critic ✓ ×2<",
        ">synthesizer ✓<",
    ] {
        assert!(svg.contains(label), "{label} in {svg}");
    }
    assert!(svg.contains("class=\"edge taken\""), "{svg}");
    assert!(dom.contains("<h2>Timeline</h2>"), "{dom}");
}
