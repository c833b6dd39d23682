//! MCP servers that cannot start (no answer to `initialize`, garbage, an exit, no such
//! program, a refused URL): stand-in tools whose calls are tool errors, a note in the system
//! prompt, in `show` and in `report`, and a session that goes on.

use super::*;

#[test]
fn servers_that_cannot_start_are_tool_errors_and_the_session_goes_on() {
    let p = Project::new();
    // One that never answers `initialize` (and leaves a child in its group), one that prints
    // garbage, one that exits at once, a program that does not exist, an HTTP endpoint that
    // refuses. Each notes its starts in a file.
    let servers = "  mute: { command: bash, args: [-c, \"echo started >> mute.starts; sleep 300 & sleep 301\"], startup_timeout: 1s }\n  \
                   junk: { command: bash, args: [-c, \"echo started >> junk.starts; while :; do echo this is not JSON-RPC; sleep 0.05; done\"], startup_timeout: 1s }\n  \
                   gone: { command: sh, args: [-c, \"echo started >> gone.starts; echo no config here >&2; exit 3\"] }\n  \
                   nope: { command: /no/such/program }\n  \
                   web: { url: \"http://127.0.0.1:1/mcp\", startup_timeout: 5s }\n";
    let model = FakeModel::start(vec![
        tool_call("c1", "mute__read", r#"{"path": "a"}"#),
        tool_call("c2", "mute__read", r#"{"path": "b"}"#),
        tool_call("c3", "junk__anything", "{}"),
        tool_call("c4", "nope__read", "{}"),
        tool_call("c5", "web__fetch", "{}"),
        text("went on without them"),
    ]);
    p.write(
        "mcp/down.yaml",
        &pipeline(
            &model.api_base(),
            servers,
            "[mute:read, junk:anything, gone:*, nope:read, web:fetch]",
        ),
    );
    let t0 = std::time::Instant::now();
    let run = p.run(&["run", "mcp/down.yaml", "--events", "events.jsonl"]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    assert_eq!(p.status(&id)["status"], "completed");

    // The model was offered stand-ins for the named tools, saying why, and none of `gone:*`;
    // the system prompt has a line for each server that is unavailable.
    let requests = model.requests();
    assert_eq!(requests.len(), 6);
    let offered: Vec<(&str, &str)> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["function"]["name"].as_str().unwrap(),
                t["function"]["description"].as_str().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = offered.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["mute__read", "junk__anything", "nope__read", "web__fetch"]
    );
    assert_eq!(
        offered[0].1,
        "Unavailable: MCP server `mute` did not answer `initialize` within 1s. Every call returns this error."
    );
    let system = requests[0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("\nNote: the tools of MCP server `gone` are unavailable in this run (MCP server `gone` failed to initialize: it exited with status 3"),
        "{system}"
    );
    for server in ["mute", "junk", "nope", "web"] {
        assert!(
            system.contains(&format!(
                "Note: the tools of MCP server `{server}` are unavailable"
            )),
            "{system}"
        );
    }
    // Every call was a tool error with the start failure, at once: no server was started
    // twice in the drive.
    let told = tool_messages(&requests[5]);
    let mute = "error: `mute:read` failed: MCP server `mute` did not answer `initialize` within 1s";
    assert_eq!(told[0], format!("c1: {mute}"));
    assert_eq!(told[1], format!("c2: {mute}"));
    assert!(
        told[2].starts_with("c3: error: `junk:anything` failed: MCP server `junk` did not answer `initialize` within 1s"),
        "{told:?}"
    );
    assert_eq!(
        told[3],
        "c4: error: `nope:read` failed: MCP server `nope`: cannot start `/no/such/program`"
    );
    assert!(
        told[4].starts_with("c5: error: `web:fetch` failed: MCP server `web` "),
        "{told:?}"
    );
    for starts in ["mute.starts", "junk.starts", "gone.starts"] {
        assert_eq!(p.log(starts), ["started"], "{starts}");
    }

    // One warning per server; the calls are recorded like any failed tool call.
    for server in ["mute", "junk", "gone", "nope", "web"] {
        let warning = format!(
            "warning: agent `worker` goes on without the tools of MCP server `{server}`, unavailable for the rest of this drive: MCP server `{server}`"
        );
        assert_eq!(
            run.stderr.matches(&warning).count(),
            1,
            "{}",
            run.transcript()
        );
    }
    assert!(
        run.stderr.contains("mute:read (error)"),
        "{}",
        run.transcript()
    );
    let events = p.log("events.jsonl");
    let events: Vec<Value> = events
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warned = events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("goes on without the tools of MCP server")
        })
        .count();
    assert_eq!(warned, 5);
    let failed_calls: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "tool_called" && e["is_error"] == true)
        .map(|e| e["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed_calls,
        [
            "mute:read",
            "mute:read",
            "junk:anything",
            "nope:read",
            "web:fetch"
        ]
    );
    let show = p.run(&["show", &id, "--node", "worker", "--json"]);
    assert_eq!(show.code, 0, "{}", show.transcript());
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    let run0 = &shown["steps"][0]["runs"][0];
    assert!(
        run0["system"]
            .as_str()
            .unwrap()
            .contains("Note: the tools of MCP server `gone` are unavailable"),
        "{run0}"
    );
    let call = &run0["turns"][0]["tool_calls"][0];
    assert_eq!(call["tool"], "mute:read", "{call}");
    assert_eq!(call["is_error"], true, "{call}");
    assert_eq!(call["result"], mute.trim_start_matches("error: "), "{call}");
    let report = p.run(&["report", &id]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    assert!(
        report.stdout.contains("Tool `mute:read` (error)")
            && report.stdout.contains(
                "`mute:read` failed: MCP server `mute` did not answer `initialize` within 1s"
            ),
        "{}",
        report.stdout
    );
    // The report says, under the run, which servers it went on without, and why.
    let json = p.run(&["report", &id, "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    let down = &json["steps"][0]["runs"][0]["mcp_unavailable"];
    let named: Vec<&str> = down
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|u| u["server"].as_str().unwrap())
        .collect();
    let mut sorted = named.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["gone", "junk", "mute", "nope", "web"], "{down}");
    let nope = &down[named.iter().position(|s| *s == "nope").unwrap()]["why"];
    assert!(
        nope.as_str()
            .unwrap()
            .starts_with("MCP server `nope`: cannot start `/no/such/program`"),
        "{nope}"
    );
    let html = p.run(&["report", &id, "--format", "html"]);
    assert_eq!(html.code, 0, "{}", html.transcript());
    for server in ["mute", "junk", "gone", "nope", "web"] {
        let md = format!("**MCP server `{server}` unavailable:** MCP server `{server}`");
        assert!(report.stdout.contains(&md), "{md}\n{}", report.stdout);
        let h = format!(
            "<strong>MCP server <code>{server}</code> unavailable:</strong> MCP server `{server}`"
        );
        assert!(html.stdout.contains(&h), "{h}\n{}", html.stdout);
    }
    // The silent server's group (with the child it left behind) and the others are gone.
    assert_eq!(
        wait_none_in(p.root()),
        Vec::<u32>::new(),
        "a server's group outlived the run"
    );
}
