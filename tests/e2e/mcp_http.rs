//! `orchestra mcp --http`: the official MCP Python SDK drives the real binary over streamable
//! HTTP (`tests/mcp/client.py --url`); the checks in front of it (a loopback `Host`, a foreign
//! `Origin` refused, the printed token on another address, 401 without it) seen on the wire;
//! and SIGTERM ends it cleanly while a client holds an event stream open.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::common::{PATIENCE, tests_dir, wait_until};
use super::mcp_server::{client_project, sdk_python};
use super::readme::Repo;
use super::web_ui::refuses_token;

/// A running `orchestra mcp --http`; killed when dropped.
pub(super) struct Served {
    child: Child,
    /// `127.0.0.1:PORT` (also for a server on every interface: the tests use loopback only).
    addr: String,
    /// The URL it printed.
    pub(super) url: String,
    /// The token it printed, on a non-loopback address.
    token: Option<String>,
    /// Everything it wrote on stderr so far.
    pub(super) stderr: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `orchestra mcp --http ADDR` at the top of `repo`, once it printed its URL (and token).
    pub(super) fn start(repo: &Repo, addr: &str) -> Served {
        Served::start_with(repo, addr, &[])
    }

    /// [`Served::start`] with `env` added to its environment; with `ORCHESTRA_MCP_TOKEN` among
    /// it, once it said that token is in use.
    fn start_with(repo: &Repo, addr: &str, env: &[(&str, &str)]) -> Served {
        let users = env.iter().any(|(k, _)| *k == "ORCHESTRA_MCP_TOKEN");
        let mut child = repo
            .command(&["mcp", "--http", addr])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        let want_token = users || !addr.starts_with("127.");
        loop {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "orchestra mcp --http exited: {banner}"
            );
            banner.push_str(&line);
            if banner.contains("orchestra mcp: http://")
                && (!want_token || banner.contains("Bearer "))
            {
                break;
            }
        }
        let stderr = Arc::new(Mutex::new(banner.clone()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            sink.lock().unwrap().push_str(&rest);
        });
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_owned();
        let port = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .and_then(|hp| hp.rsplit(':').next())
            .unwrap()
            .to_owned();
        let token = if users {
            None
        } else {
            banner.split("Bearer ").nth(1).map(|t| {
                t.trim_end_matches(|c: char| !c.is_ascii_hexdigit())
                    .to_owned()
            })
        };
        Served {
            child,
            addr: format!("127.0.0.1:{port}"),
            url,
            token,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        wait_until("orchestra mcp --http to exit after SIGTERM", || {
            self.child.try_wait().unwrap()
        })
    }
}

/// A POST of a JSON-RPC message to `/mcp`, as MCP clients send it.
fn post(addr: &str, headers: &[(&str, &str)], msg: &Value) -> (u16, String, String) {
    let mut all = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    all.extend_from_slice(headers);
    exchange(addr, "POST", &all, &msg.to_string())
}

/// The initialize request of a client speaking the 2025-06-18 protocol.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "orchestra-tests", "version": "1"}}})
}

/// One HTTP/1.1 exchange on `/mcp` read to its end: the status, the head and the body.
fn exchange(
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = open(addr, method, headers, body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status_of(head), head.to_owned(), body.to_owned())
}

/// A request on `/mcp` sent, the connection to read its answer from.
fn open(addr: &str, method: &str, headers: &[(&str, &str)], body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!("{method} /mcp HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s
}

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs `tests/mcp/client.py` against `served`; panics with its output unless it passed.
fn python_client(python: &std::path::Path, repo: &Repo, served: &Served, quick: bool) -> String {
    let mut cmd = Command::new(python);
    repo.env(&mut cmd)
        .arg(tests_dir().join("mcp/client.py"))
        .arg(crate::binary::orchestra_bin())
        .arg(&repo.root)
        .args(["--url", &served.url.replace("0.0.0.0", "127.0.0.1")]);
    if let Some(token) = &served.token {
        cmd.args(["--token", token]);
    }
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.starts_with("ok: "),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server stderr\n{}",
        out.status,
        served.stderr.lock().unwrap()
    );
    stdout.into_owned()
}

#[test]
#[cfg_attr(
    py_mcp_missing,
    ignore = "the MCP Python SDK cannot be installed here (the build's warning says why)"
)]
fn the_python_sdk_compiles_runs_follows_and_answers_over_http() {
    let python = sdk_python();
    let repo = client_project();
    let mut served = Served::start(&repo, "127.0.0.1:0");
    assert!(served.url.ends_with("/mcp"), "{}", served.url);
    assert_eq!(served.token, None, "no token on loopback");
    let said = python_client(&python, &repo, &served, false);
    let checks: u32 = said
        .trim_start_matches("ok: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(checks > 60, "{said}");
    assert_eq!(served.terminate().code(), Some(0));
}

#[test]
fn mcp_over_http_refuses_other_hosts_and_origins_and_stops_on_sigterm() {
    let repo = Repo::new();
    let mut served = Served::start(&repo, "127.0.0.1:0");
    let a = served.addr.clone();
    // DNS rebinding: a page of another name that resolves to 127.0.0.1.
    let (status, _, body) = post(&a, &[("Host", "evil.example:7879")], &initialize());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("127.0.0.1 or localhost only"), "{body}");
    // A page of another site.
    let (status, _, body) = post(&a, &[("Origin", "http://evil.example")], &initialize());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Origin"), "{body}");
    let port = a.rsplit(':').next().unwrap();
    let (status, _, body) = post(
        &a,
        &[("Origin", &format!("http://localhost:{port}"))],
        &initialize(),
    );
    assert_eq!(status, 403, "the origin must name the Host: {body}");

    // A client (no Origin; or its own) says hello and gets a session.
    let localhost = format!("localhost:{port}");
    let own = format!("http://{localhost}");
    let (status, head, body) = post(&a, &[("Host", &localhost), ("Origin", &own)], &initialize());
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    let (status, head, body) = post(&a, &[], &initialize());
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("\"name\":\"orchestra\""), "{body}");
    let session = header(&head, "mcp-session-id")
        .unwrap_or_else(|| panic!("no session id: {head}"))
        .to_owned();
    let (status, _, _) = post(
        &a,
        &[("Mcp-Session-Id", &session)],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(status, 202);
    let (status, _, body) = post(
        &a,
        &[("Mcp-Session-Id", &session)],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"run_pipeline\""), "{body}");

    // The client's event stream stays open ...
    let mut stream = open(
        &a,
        "GET",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session),
        ],
        "",
    );
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "the stream closed early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    // ... until SIGTERM: the server ends it and exits 0.
    assert_eq!(
        served.terminate().code(),
        Some(0),
        "{}",
        served.stderr.lock().unwrap()
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
}

#[test]
#[cfg_attr(
    py_mcp_missing,
    ignore = "the MCP Python SDK cannot be installed here (the build's warning says why)"
)]
fn mcp_over_http_on_another_address_requires_the_token_it_prints() {
    // Every interface; the test connects over loopback only.
    let repo = client_project();
    let served = Served::start(&repo, "0.0.0.0:0");
    let token = served
        .token
        .clone()
        .unwrap_or_else(|| panic!("no token: {}", served.stderr.lock().unwrap()));
    assert_eq!(token.len(), 32, "{}", served.stderr.lock().unwrap());
    let a = served.addr.as_str();
    let (status, head, body) = post(a, &[], &initialize());
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        header(&head, "www-authenticate"),
        Some("Bearer realm=\"orchestra\""),
        "{head}"
    );
    assert!(body.contains("Authorization: Bearer TOKEN"), "{body}");
    let (status, _, _) = post(a, &[("Authorization", "Bearer 0123")], &initialize());
    assert_eq!(status, 401);
    let (status, _, _) = exchange(a, "GET", &[("Accept", "text/event-stream")], "");
    assert_eq!(status, 401);
    // Any Host is fine there; the token is what counts.
    let bearer = format!("Bearer {token}");
    let (status, _, body) = post(
        a,
        &[("Authorization", &bearer), ("Host", "mcp.example:7879")],
        &initialize(),
    );
    assert_eq!(status, 200, "{body}");
    // The Python SDK with the token: its tools and compiling.
    python_client(&sdk_python(), &repo, &served, true);
}

#[test]
fn mcp_over_http_on_an_address_it_cannot_listen_on_is_bad_input() {
    let repo = Repo::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = repo
        .command(&["mcp", "--http", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let out = repo
        .command(&["mcp", "--http", "localhost:http"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'localhost:http'"),
        "{stderr}"
    );
}

#[test]
fn mcp_over_http_with_a_token_of_the_users_requires_it_on_loopback_too_and_never_prints_it() {
    let repo = Repo::new();
    let token = "my-own_token.for~the+IDE/0123=";
    let env = [("ORCHESTRA_MCP_TOKEN", token)];
    let served = Served::start_with(&repo, "127.0.0.1:0", &env);
    let banner = served.stderr.lock().unwrap().clone();
    assert!(
        banner.contains(
            "every request needs the token set in ORCHESTRA_MCP_TOKEN (not shown; programs send `Authorization: Bearer TOKEN`)"
        ),
        "{banner}"
    );
    assert!(!banner.contains(token), "{banner}");
    let a = served.addr.as_str();
    let (status, _, body) = post(a, &[], &initialize());
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = post(
        a,
        &[("Authorization", "Bearer my-own_token.for~the+IDE/0124=")],
        &initialize(),
    );
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, _, body) = post(a, &[("Authorization", &bearer)], &initialize());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    assert!(!served.stderr.lock().unwrap().contains(token));

    // A token it would not accept: refused before listening, naming the variable, never the value.
    for (bad, why) in [
        (
            "abc12",
            "ORCHESTRA_MCP_TOKEN is too short: a token needs at least 16 characters, it has 5",
        ),
        (
            "abcdefgh ijklmnopq",
            "ORCHESTRA_MCP_TOKEN holds ' ' at character 9: a token may hold only ASCII letters, digits and `-._~+/=`",
        ),
    ] {
        refuses_token(
            &repo,
            &["mcp", "--http", "127.0.0.1:0"],
            ("ORCHESTRA_MCP_TOKEN", bad),
            why,
        );
    }
}
