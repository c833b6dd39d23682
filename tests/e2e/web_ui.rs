//! `orchestra ui`: the JSON API, the security checks and the page in a real headless Chromium,
//! served by the real binary over a real SQLite database holding a real run of
//! `pipelines/pr-review.yaml` (offline, scripted answers, real git).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use serde_json::Value;

use super::browser::headless;
use super::readme::{Repo, session_of};

/// A running `orchestra ui`; killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// The lines it printed before serving.
    pub(super) banner: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(repo: &Repo, addr: &str) -> Served {
    serve_with(repo, addr, &[])
}

/// `orchestra ui --addr ADDR` with `env` added to its environment.
pub(crate) fn serve_with(repo: &Repo, addr: &str, env: &[(&str, &str)]) -> Served {
    let mut child = repo
        .command(&["ui", "--addr", addr])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    // It prints its URL, the token line on a non-loopback address, then the database line.
    while !banner.contains("database: ") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "ui exited: {banner}");
        banner.push_str(&line);
    }
    let port = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.rsplit(':').next())
        .unwrap_or_else(|| panic!("no URL in {banner}"))
        .to_owned();
    Served {
        child,
        addr: format!("127.0.0.1:{port}"),
        banner,
    }
}

/// One HTTP/1.1 exchange: the status, the head and the body (a server-sent event stream is
/// read up to its first event).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_with(addr, method, path, headers, "")
}

/// [`http`] with a request body.
pub(crate) fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(super::common::PATIENCE)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if text.contains("text/event-stream")
            && text
                .split("\r\n\r\n")
                .nth(1)
                .is_some_and(|b| b.contains("\n\n"))
        {
            break;
        }
        // A server that keeps the connection open (chromedriver): the body's length says when
        // the answer is whole.
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Some(len) = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            && body.len() >= len
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            out.push_str(&rest[..n.min(rest.len())]);
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

pub(crate) fn get_json(addr: &str, path: &str) -> Value {
    let (status, head, body) = http(addr, "GET", path, &[]);
    assert_eq!(status, 200, "GET {path}: {head}\n{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A project with one completed pr-review session and a fork of it at checkpoint 2.
pub(crate) fn reviewed() -> (Repo, String, String) {
    let repo = Repo::new();
    let run = repo.orchestra(&["run", "pipelines/pr-review.yaml"], "");
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run).unwrap();
    let fork = repo.orchestra(&["replay", &id, "--checkpoint", "2"], "");
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    let forked = session_of(&fork).unwrap();
    assert_ne!(forked, id);
    (repo, id, forked)
}

#[test]
fn ui_api_lists_sessions_and_shows_runs_graph_state_and_events() {
    let (repo, id, forked) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    assert!(!ui.banner.contains("token"), "{}", ui.banner);
    let a = ui.addr.as_str();

    let rows = get_json(a, "/api/sessions");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(row["pipeline"], "pr-review");
    assert_eq!(row["status"], "completed");
    assert_eq!(row["steps"], 5);
    assert_eq!(row["checkpoints"], 6);
    assert!(row["tokens_in"].as_u64().unwrap() > 0, "{row}");
    assert!(row["duration_ms"].is_u64(), "{row}");
    let child = rows.iter().find(|r| r["id"] == forked.as_str()).unwrap();
    assert_eq!(child["parent_session"], id.as_str());
    assert_eq!(child["parent_checkpoint"], 2);
    // Filters.
    assert_eq!(
        get_json(a, "/api/sessions?status=failed"),
        Value::Array(vec![])
    );
    assert_eq!(
        get_json(a, "/api/sessions?pipeline=pr-review")
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        get_json(a, "/api/sessions?pipeline=other"),
        Value::Array(vec![])
    );

    let d = get_json(a, &format!("/api/sessions/{id}"));
    assert_eq!(d["detail"]["status"], "completed");
    assert_eq!(d["detail"]["checkpoints"].as_array().unwrap().len(), 6);
    assert_eq!(d["detail"]["forks"][0]["id"], forked.as_str());
    let nodes: Vec<&str> = d["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        nodes,
        [
            "START",
            "security-reviewer",
            "architecture-reviewer",
            "critic",
            "synthesizer",
            "END"
        ]
    );
    let edges = d["graph"]["edges"].as_array().unwrap();
    assert!(
        edges.iter().any(|e| e["from"] == "critic"
            && e["to"] == "security-reviewer"
            && e["kind"] == "condition"),
        "{edges:?}"
    );
    let steps = d["shown"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[1]["routes"][0]["decision"], "revise");

    // A node's runs in full: the prompt as sent, answers, tool calls, routing.
    let critic = get_json(a, &format!("/api/sessions/{id}/nodes/critic"));
    let run = &critic["steps"][0]["runs"][0];
    assert!(run["system"].as_str().unwrap().len() > 100, "{run}");
    assert_eq!(run["turns"][0]["tool_calls"][0]["tool"], "app:get-git-diff");
    assert!(!run["turns"][0]["answer"].is_null(), "{run}");
    let (status, _, body) = http(a, "GET", &format!("/api/sessions/{id}/nodes/nobody"), &[]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has no node `nobody`"), "{body}");

    // The state at a checkpoint.
    let cp = get_json(a, &format!("/api/sessions/{id}/checkpoints/2"));
    assert_eq!(cp["checkpoint"], 2);
    assert!(
        cp["state"]["agent_outputs"]["critic"].is_object()
            || cp["state"]["agent_outputs"]["critic"].is_string(),
        "{cp}"
    );
    assert!(
        get_json(a, &format!("/api/sessions/{id}/checkpoints/0"))["state"]["agent_outputs"]
            .as_object()
            .is_none_or(|m| m.is_empty())
    );
    let (status, _, body) = http(a, "GET", &format!("/api/sessions/{id}/checkpoints/9"), &[]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has no checkpoint 9"), "{body}");
    let (status, _, _) = http(a, "GET", &format!("/api/sessions/{id}/checkpoints/x"), &[]);
    assert_eq!(status, 400);
    let (status, _, body) = http(a, "GET", "/api/sessions/no-such-session", &[]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no session matches"), "{body}");

    // Events: the session's state at once.
    let (status, head, body) = http(a, "GET", &format!("/api/sessions/{id}/events"), &[]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(body.contains("event: session\n"), "{body}");
    assert!(body.contains("\"status\":\"completed\""), "{body}");
    assert!(body.contains("\"checkpoints\":6"), "{body}");

    // The page and its assets, nothing loaded from elsewhere.
    let (status, head, page) = http(a, "GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("default-src 'none'"), "{head}");
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    for asset in ["/app.js", "/inspect.js", "/app.css"] {
        let (status, _, body) = http(a, "GET", asset, &[]);
        assert_eq!(status, 200);
        // The SVG namespace is a name, not a load.
        let body = body.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} loads from elsewhere"
        );
    }
}

#[test]
fn ui_on_loopback_refuses_other_hosts_and_cross_origin_posts() {
    let (repo, _, _) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    let a = ui.addr.as_str();
    // DNS rebinding: a page of another name that resolves to 127.0.0.1.
    let (status, _, body) = http(a, "GET", "/api/sessions", &[("Host", "evil.example:7878")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        http(a, "GET", "/api/sessions", &[("Host", "localhost")]).0,
        200
    );
    // A request that changes something needs this server's own Origin.
    let (status, _, body) = http(a, "POST", "/api/sessions", &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Origin"), "{body}");
    let (status, _, _) = http(
        a,
        "POST",
        "/api/sessions",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403);
    let origin = format!("http://{a}");
    // Same origin: past the check (the API has no POST there: 405).
    let (status, _, _) = http(a, "POST", "/api/sessions", &[("Origin", &origin)]);
    assert_eq!(status, 405);
}

/// Checks that the UI at `a` answers 401 without `token` or with a wrong one, and 200 with it
/// (`Authorization: Bearer`, or `?token=`); the `Set-Cookie` of the answer to `?token=`.
fn requires_token(a: &str, token: &str) -> String {
    for path in ["/", "/app.js", "/api/sessions"] {
        let (status, _, body) = http(a, "GET", path, &[]);
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, _, body) = http(
        a,
        "GET",
        "/api/sessions",
        &[("Authorization", "Bearer 0123")],
    );
    assert_eq!(status, 401, "{body}");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http(a, "GET", "/api/sessions", &[("Authorization", &bearer)]).0,
        200
    );
    // `?token=` sets a cookie the page's own requests carry.
    let (status, head, _) = http(a, "GET", &format!("/?token={token}"), &[]);
    assert_eq!(status, 200, "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_owned()
}

#[test]
fn ui_on_another_address_requires_the_token_it_prints() {
    let (repo, _, _) = reviewed();
    // Every interface; the test connects over loopback only.
    let ui = serve(&repo, "0.0.0.0:0");
    let token = ui
        .banner
        .split("?token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in {}", ui.banner))
        .to_owned();
    assert_eq!(token.len(), 32, "{}", ui.banner);
    assert!(
        ui.banner
            .contains(&format!("Authorization: Bearer {token}")),
        "{}",
        ui.banner
    );
    let a = ui.addr.as_str();
    let cookie = requires_token(a, &token);
    let bearer = format!("Bearer {token}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(http(a, "GET", "/api/sessions", &[("Cookie", pair)]).0, 200);
    let (status, _, _) = http(
        a,
        "GET",
        "/api/sessions",
        &[("Cookie", "orchestra_token=wrong")],
    );
    assert_eq!(status, 401);
    // A POST with the token still needs the same origin.
    let (status, _, _) = http(a, "POST", "/api/sessions", &[("Authorization", &bearer)]);
    assert_eq!(status, 403);
}

#[test]
fn ui_with_a_token_of_the_users_requires_it_on_loopback_too_and_never_prints_it() {
    let repo = Repo::new();
    let token = "0123456789abcdefXYZ";
    let ui = serve_with(&repo, "127.0.0.1:0", &[("ORCHESTRA_UI_TOKEN", token)]);
    assert!(!ui.banner.contains(token), "{}", ui.banner);
    assert!(!ui.banner.contains("?token="), "{}", ui.banner);
    assert!(
        ui.banner
            .contains("every request needs the token set in ORCHESTRA_UI_TOKEN (not shown;"),
        "{}",
        ui.banner
    );
    let cookie = requires_token(ui.addr.as_str(), token);
    assert!(cookie.starts_with("orchestra_token="), "{cookie}");

    refuses_token(
        &repo,
        &["ui", "--addr", "127.0.0.1:0"],
        ("ORCHESTRA_UI_TOKEN", "tiny"),
        "ORCHESTRA_UI_TOKEN is too short: a token needs at least 16 characters, it has 4",
    );
}

/// Checks that `orchestra ARGS` with the variable `var` set to a token it does not accept
/// exits 2 before serving, saying `why` and never the value.
pub(crate) fn refuses_token(repo: &Repo, args: &[&str], (var, bad): (&str, &str), why: &str) {
    let out = repo
        .command(args)
        .env(var, bad)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end(), format!("error: {why}"));
    assert!(!stderr.contains(bad), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn ui_in_a_headless_browser_lists_sessions_and_shows_a_pr_review_session() {
    let (repo, id, forked) = reviewed();
    let ui = serve(&repo, "127.0.0.1:0");
    let base = format!("http://{}/", ui.addr);
    let list = headless(&base, &["--dump-dom"], 3000);
    assert!(list.contains(&format!("href=\"#/s/{id}\"")), "{list}");
    assert!(
        list.contains(&format!("data-session=\"{forked}\"")),
        "{list}"
    );
    assert!(
        list.contains("class=\"status s-completed\">completed<"),
        "{list}"
    );
    assert!(list.contains("2 of 2 sessions"), "{list}");

    let page = headless(&format!("{base}#/s/{id}"), &["--dump-dom"], 4000);
    assert!(page.contains(&format!("Session {id}")), "{page}");
    for node in [
        "security-reviewer",
        "architecture-reviewer",
        "critic",
        "synthesizer",
    ] {
        // Drawn in the graph as a node that ran.
        assert!(
            page.contains(&format!("<g class=\"node taken\" data-node=\"{node}\">")),
            "{node}: {page}"
        );
    }
    assert!(page.contains("critic: ok"), "{page}");
    assert!(
        page.contains(
            "route critic → revise → security-reviewer, architecture-reviewer (loop 1/2)"
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!("{forked}</a> at 2 (completed)")),
        "{page}"
    );
}
