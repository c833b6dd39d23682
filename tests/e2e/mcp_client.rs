//! Tools from MCP servers in real sessions: an agent on a loopback OpenAI-compatible server
//! calls tools of server-everything and the Python mcp-server-time and reads their real answers;
//! compile-time checks and `compile --probe`; a call past its timeout, and servers that cannot
//! start (no answer to `initialize`, garbage, an exit, no such program, a refused URL) as tool
//! errors of a session that goes on; the `mcp-files` example run offline. No server process
//! outlives its run.

use serde_json::{Value, json};

use super::fake_model::{FakeModel, text, tool_call};
use super::project::Project;

#[path = "../../crates/orchestra-mcp/tests/it/install.rs"]
#[expect(
    dead_code,
    reason = "shared with orchestra-mcp's tests, which use all of it"
)]
mod install;

use install::{mcp_install, wait_none_in};

mod down;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

/// The tool messages of a chat-completions request, as `id: content`.
fn tool_messages(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            format!(
                "{}: {}",
                m["tool_call_id"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect()
}

/// `orchestra compile ARGS` in the project (compile takes no `--db`).
fn compile(p: &Project, args: &[&str]) -> super::common::Run {
    let mut all = vec!["compile"];
    all.extend_from_slice(args);
    super::common::orchestra(p.root(), &p.path("home"), &all)
}

fn pipeline(api_base: &str, servers: &str, tools: &str) -> String {
    format!(
        "name: mcp-agent\n\
         defaults: {{ provider: fake, model: fake }}\n\
         providers:\n  fake: {{ kind: openai, api_base: \"{api_base}\", max_retries: 0 }}\n\
         mcp_servers:\n{servers}\
         agents:\n  worker:\n    retries: 0\n    tools: {tools}\n\
         graph:\n  - {{ from: START, to: worker }}\n  - {{ from: worker, to: END }}\n"
    )
}

#[test]
fn an_agent_calls_mcp_tools_and_reads_their_real_answers() {
    let install = mcp_install();
    let p = Project::new();
    let model = FakeModel::start(vec![
        tool_call(
            "c1",
            "time__convert_time",
            r#"{"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}"#,
        ),
        tool_call("c2", "every__get-sum", r#"{"a": 2, "b": 40}"#),
        tool_call(
            "c3",
            "every__get-structured-content",
            r#"{"location": "Chicago"}"#,
        ),
        text("all done"),
    ]);
    let servers = format!(
        "  every: {{ command: {}, args: [stdio] }}\n  time: {{ command: {}, args: [--local-timezone, UTC] }}\n",
        install.npm_bin("mcp-server-everything").display(),
        install.venv_bin("mcp-server-time").display(),
    );
    p.write(
        "mcp/agent.yaml",
        &pipeline(&model.api_base(), &servers, "[time:convert_time, every:*]"),
    );
    let run = p.run(&["run", "mcp/agent.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    // The model was offered the servers' tools under wire names, with their schemas.
    let offered: Vec<&Value> = requests[0]["tools"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = offered
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "time__convert_time", "{names:?}");
    assert!(
        names.contains(&"every__echo") && names.contains(&"every__get-sum"),
        "{names:?}"
    );
    let sum = offered
        .iter()
        .find(|t| t["function"]["name"] == "every__get-sum")
        .unwrap();
    assert!(
        sum["function"]["parameters"]["properties"]["a"].is_object(),
        "{sum}"
    );
    assert!(!sum["function"]["description"].as_str().unwrap().is_empty());
    // Their real answers came back as tool results.
    let told = tool_messages(&requests[3]);
    assert_eq!(told.len(), 3, "{told:?}");
    assert!(
        told[0].starts_with("c1: ") && told[0].contains("21:00"),
        "{told:?}"
    );
    assert!(
        told[1].starts_with("c2: ") && told[1].contains("42"),
        "{told:?}"
    );
    assert!(told[2].contains("drizzle"), "{told:?}");
    // Recorded like any tool call: `show` has the arguments, result and duration.
    let id = session_of(&run.stdout);
    let show = p.run(&["show", &id, "--node", "worker", "--json"]);
    assert_eq!(show.code, 0, "{}", show.transcript());
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    let mut calls: Vec<&Value> = Vec::new();
    for turn in shown["steps"][0]["runs"][0]["turns"].as_array().unwrap() {
        calls.extend(turn["tool_calls"].as_array().into_iter().flatten());
    }
    assert_eq!(calls.len(), 3, "{shown}");
    assert_eq!(calls[1]["tool"], "every:get-sum");
    assert_eq!(calls[1]["args"], r#"{"a":2,"b":40}"#);
    assert!(
        calls[1]["result"].as_str().unwrap().contains("42"),
        "{}",
        calls[1]
    );
    assert!(calls[1]["duration_ms"].is_u64(), "{}", calls[1]);
    assert_eq!(p.status(&id)["usage"][0]["tool_calls"], 3);
    assert_eq!(
        wait_none_in(p.root()),
        Vec::<u32>::new(),
        "a server outlived the run"
    );
}

#[test]
fn a_slow_call_is_a_tool_error_and_the_session_goes_on() {
    let install = mcp_install();
    let p = Project::new();
    let model = FakeModel::start(vec![
        tool_call(
            "c1",
            "every__trigger-long-running-operation",
            r#"{"duration": 30, "steps": 3}"#,
        ),
        tool_call("c2", "every__echo", r#"{"message": "still there"}"#),
        text("done anyway"),
    ]);
    let servers = format!(
        "  every: {{ command: {}, args: [stdio], timeout: 1s }}\n",
        install.npm_bin("mcp-server-everything").display()
    );
    p.write(
        "mcp/slow.yaml",
        &pipeline(
            &model.api_base(),
            &servers,
            "[every:trigger-long-running-operation, every:echo]",
        ),
    );
    let run = p.run(&["run", "mcp/slow.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("every:trigger-long-running-operation (error)"),
        "{}",
        run.transcript()
    );
    let told = tool_messages(&model.requests()[2]);
    assert_eq!(
        told,
        [
            "c1: error: `every:trigger-long-running-operation` timed out after 1s (the call was cancelled)",
            "c2: Echo: still there"
        ]
    );
    assert_eq!(wait_none_in(p.root()), Vec::<u32>::new());
}

#[test]
fn compile_checks_mcp_servers_and_tool_names_without_starting_anything() {
    let p = Project::new();
    let api = "http://127.0.0.1:9/v1";
    let cases = [
        (
            "  files: { command: /no/such/server }\n",
            "[filse:read_text_file]",
            "unknown repository or MCP server `filse` in tool `filse:read_text_file`",
            "did you mean `files:read_text_file`?",
        ),
        (
            "  fs: { command: x, url: \"http://127.0.0.1:1/mcp\" }\n",
            "[fs:*]",
            "MCP server `fs` has both `command` and `url`",
            "a server is either a program or an HTTP endpoint",
        ),
        (
            "  fs: { args: [x] }\n",
            "[fs:*]",
            "MCP server `fs` has neither `command` nor `url`",
            "`url:` is a streamable HTTP endpoint",
        ),
        (
            "  web: { url: \"http://127.0.0.1:1/mcp\", headers: { Authorization: \"Bearer ${TOKEN\" } }\n",
            "[web:*]",
            "bad `${...}` in `headers.Authorization` of MCP server `web`",
            "`${` is not closed by `}`",
        ),
        (
            "  fs: { command: x }\n",
            "[\"fs:read file\"]",
            "invalid tool `read file` of MCP server `fs`",
            "`fs:*` gives the agent every tool of the server",
        ),
        (
            "  app: { command: x }\n",
            "[app:*]",
            "MCP server `app` has the name of a repository",
            "rename the server or the repository",
        ),
    ];
    for (i, (servers, tools, message, hint)) in cases.iter().enumerate() {
        let mut yaml = pipeline(api, servers, tools);
        if servers.starts_with("  app:") {
            yaml.push_str("workspace:\n  repos:\n    app: { path: . }\n");
        }
        let file = format!("mcp/bad{i}.yaml");
        p.write(&file, &yaml);
        let run = compile(&p, &[&file]);
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(run.stderr.contains(message), "{}", run.transcript());
        assert!(run.stderr.contains(hint), "{}", run.transcript());
        assert!(
            run.stderr.contains(&format!("--> {file}:")),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn compile_probe_starts_the_servers_and_names_a_missing_tool() {
    let install = mcp_install();
    let p = Project::new();
    let servers = format!(
        "  every: {{ command: {}, args: [stdio] }}\n",
        install.npm_bin("mcp-server-everything").display()
    );
    p.write(
        "mcp/probe.yaml",
        &pipeline(
            "http://127.0.0.1:9/v1",
            &servers,
            "[every:ecko, every:get-sum]",
        ),
    );
    // Without --probe nothing starts, so the typo is not known yet.
    let run = compile(&p, &["mcp/probe.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("every:ecko (MCP), every:get-sum (MCP)"),
        "{}",
        run.stdout
    );
    let run = compile(&p, &["mcp/probe.yaml", "--probe"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("MCP servers (probed)\n  every        ok, "),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains(
            "error: agent `worker`: MCP server `every` has no tool `ecko`; did you mean `echo`?"
        ),
        "{}",
        run.transcript()
    );
    p.write(
        "mcp/probe.yaml",
        &pipeline(
            "http://127.0.0.1:9/v1",
            &servers,
            "[every:echo, every:get-sum]",
        ),
    );
    let run = compile(&p, &["mcp/probe.yaml", "--probe", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let compiled: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        compiled["mcp_servers"]["every"]["spec"]["args"],
        json!(["stdio"])
    );
    assert!(
        run.stderr.starts_with("MCP servers (probed)"),
        "{}",
        run.transcript()
    );
    assert_eq!(wait_none_in(p.root()), Vec::<u32>::new());
}

#[test]
fn the_mcp_files_example_runs_offline_end_to_end() {
    let install = mcp_install();
    let ws = super::common::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(ws.join("orchestra.yaml"), dir.path().join("orchestra.yaml")).unwrap();
    super::common::copy_dir(
        &ws.join("pipelines/examples"),
        &dir.path().join("pipelines/examples"),
    );
    // The example starts the server with `npx -y` (which may download it); the test runs the
    // copy the harness installed, with the same arguments.
    let file = dir.path().join("pipelines/examples/mcp-files.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let npx = "command: npx\n    args: [\"-y\", \"@modelcontextprotocol/server-filesystem\", ";
    assert!(yaml.contains(npx), "{yaml}");
    let local = format!(
        "command: {}\n    args: [",
        install.npm_bin("mcp-server-filesystem").display()
    );
    std::fs::write(&file, yaml.replace(npx, &local)).unwrap();
    let orchestra = |args: &[&str]| super::common::orchestra(dir.path(), &home, args);
    let probe = orchestra(&["compile", "pipelines/examples/mcp-files.yaml", "--probe"]);
    assert_eq!(probe.code, 0, "{}", probe.transcript());
    assert!(
        probe.stdout.contains("  fs           ok, 14 tools: "),
        "{}",
        probe.stdout
    );
    let run = orchestra(&[
        "run",
        "pipelines/examples/mcp-files.yaml",
        "--db",
        "s.db",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "completed");
    let digest = out["state"]["digest"].as_str().unwrap();
    assert!(digest.starts_with("# Digest of the notes"), "{digest}");
    assert!(
        digest.contains("[FILE] retro.md") && digest.contains("[FILE] standup.md"),
        "{digest}"
    );
    assert!(
        digest.contains("decided to ship the CSV export on Friday"),
        "{digest}"
    );
    assert!(
        digest.contains("who owns the flaky upload test?"),
        "{digest}"
    );
    let report = out["outputs"][0].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(report)).unwrap(),
        digest
    );
    assert_eq!(wait_none_in(dir.path()), Vec::<u32>::new());
}
