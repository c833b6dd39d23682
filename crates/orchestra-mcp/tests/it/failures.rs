//! Servers that misbehave: killed mid-call, never answering `initialize` (and leaving a child
//! behind), printing garbage, or not starting at all. Each is an error naming the server, in
//! bounded time, and no process is left behind.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{marker, rt, servers};
use crate::install::{mcp_install, processes_with, wait_gone, wait_none_in};

#[test]
fn a_server_killed_mid_call_is_a_tool_error_at_once() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker("killed");
    let bin = install.npm_bin("mcp-server-everything");
    let yaml = format!(
        "every: {{ command: {}, args: [stdio, {mark}], timeout: 60s }}\n",
        bin.display()
    );
    let s = servers(&yaml, tmp.path(), &[]);
    rt().block_on(async {
        s.tools("every").await.unwrap();
        let pids = processes_with(&mark);
        assert!(!pids.is_empty());
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for pid in pids {
                let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        });
        let t0 = Instant::now();
        let (text, err) = s
            .call("every", "trigger-long-running-operation", json!({"duration": 30, "steps": 3}))
            .await;
        killer.await.unwrap();
        assert!(err, "{text}");
        assert!(
            text.starts_with("`every:trigger-long-running-operation` failed: MCP server `every` stopped: it was killed by signal 9"),
            "{text}"
        );
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        // Later calls in the same run fail at once; the next agent run starts it again.
        let (text, err) = s.call("every", "echo", json!({"message": "x"})).await;
        assert!(err && text.contains("is not running"), "{text}");
        let again = s.tools("every").await.unwrap();
        assert!(!again.is_empty());
        let (text, err) = s.call("every", "echo", json!({"message": "back"})).await;
        assert!(!err && text.contains("back"), "{text}");
        // Killed again: it is not restarted a second time in this drive.
        for pid in processes_with(&mark) {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        assert_eq!(wait_gone(&mark), Vec::<u32>::new());
        // The client may see the death during this call ("stopped") or already before it
        // ("is not running"): either way a tool error at once.
        let (text, err) = s.call("every", "echo", json!({"message": "x"})).await;
        assert!(
            err && (text.contains("MCP server `every` stopped") || text.contains("is not running")),
            "{text}"
        );
        let (text, err) = s.call("every", "echo", json!({"message": "x"})).await;
        assert!(
            err && text.contains("is not running")
                && text.contains("it was restarted once already, so it is not started again in this drive"),
            "{text}"
        );
        let gone = "MCP server `every` stopped again after it was restarted; it is not started again in this drive";
        let found = s
            .definitions(&[("every".to_owned(), "echo".to_owned())])
            .await
            .unwrap();
        assert_eq!(found.unavailable.len(), 1);
        assert!(found.unavailable[0].new);
        assert_eq!(found.unavailable[0].error.to_string(), gone);
        assert_eq!(s.tools("every").await.unwrap_err().to_string(), gone);
        let (text, err) = s.call("every", "echo", json!({"message": "x"})).await;
        assert_eq!((text.as_str(), err), (format!("`every:echo` failed: {gone}").as_str(), true));
        assert!(processes_with(&mark).is_empty(), "it was started again");
        s.shutdown().await;
    });
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
}

#[test]
fn a_server_that_never_answers_initialize_times_out_and_its_group_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker("silent");
    // It reads nothing and starts a child of its own that would outlive a plain kill.
    let yaml = format!(
        "mute: {{ command: bash, args: [-c, \"(exec -a {mark}-child sleep 300) & exec -a {mark}-main sleep 301\"], startup_timeout: 1s }}\n"
    );
    let s = servers(&yaml, tmp.path(), &[]);
    let t0 = Instant::now();
    let runtime = rt();
    let e = runtime
        .block_on(async {
            let started = s.tools("mute");
            tokio::pin!(started);
            // Both processes run while it waits for `initialize`.
            tokio::select! {
                r = &mut started => panic!("it ended early: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            assert_eq!(processes_with(&mark).len(), 2);
            started.await
        })
        .unwrap_err()
        .to_string();
    assert_eq!(e, "MCP server `mute` did not answer `initialize` within 1s");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // The program and the child it left in the background are killed with the group.
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
}

#[test]
fn a_server_printing_garbage_fails_to_start_with_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker("garbage");
    // It notes each start in `starts`.
    let script = "import sys, time\nopen('starts', 'a').write('started\\n')\nsys.stderr.write('booting the garbage server\\n'); sys.stderr.flush()\nfor i in range(1000):\n    print('this is not JSON-RPC', flush=True)\n    time.sleep(0.05)\n";
    let path = tmp.path().join("garbage.py");
    std::fs::write(&path, script).unwrap();
    let yaml = format!(
        "junk: {{ command: python3, args: [\"{}\", {mark}], startup_timeout: 2s }}\n",
        path.display()
    );
    let s = servers(&yaml, tmp.path(), &[]);
    let e = rt().block_on(s.tools("junk")).unwrap_err().to_string();
    assert!(e.starts_with("MCP server `junk` did not answer `initialize` within 2s; its stderr ends:\nbooting the garbage server"), "{e}");
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
    // A call to it is a tool error at once (the failure is remembered: no second start), not
    // a hang or a panic.
    let t0 = Instant::now();
    let (text, err) = rt().block_on(s.call("junk", "anything", json!({})));
    assert!(
        err && text.starts_with("`junk:anything` failed: MCP server `junk` did not answer"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // An agent naming its tools gets stand-ins that say why; `junk:*` gives none.
    let refs = [
        ("junk".to_owned(), "anything".to_owned()),
        ("junk".to_owned(), "*".to_owned()),
    ];
    let found = rt().block_on(s.definitions(&refs)).unwrap();
    assert_eq!(found.tools.len(), 1);
    assert_eq!(found.tools[0].name, "junk:anything");
    assert_eq!(
        found.tools[0].description,
        "Unavailable: MCP server `junk` did not answer `initialize` within 2s. Every call returns this error."
    );
    assert_eq!(
        found.tools[0].parameters,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(found.unavailable.len(), 1);
    assert!(!found.unavailable[0].new, "it failed before this call");
    assert_eq!(found.unavailable[0].error.to_string(), e);
    let starts = std::fs::read_to_string(tmp.path().join("starts")).unwrap();
    assert_eq!(starts, "started\n");
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
    // The next drive (after `shutdown`) tries again.
    rt().block_on(s.shutdown());
    rt().block_on(s.tools("junk")).unwrap_err();
    let starts = std::fs::read_to_string(tmp.path().join("starts")).unwrap();
    assert_eq!(starts, "started\nstarted\n");
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
}

#[test]
fn a_server_that_exits_at_once_says_how() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "gone: { command: sh, args: [-c, \"echo no config here >&2; exit 3\"] }\nnope: { command: /no/such/program }\n";
    let s = servers(yaml, tmp.path(), &[]);
    let e = rt().block_on(s.tools("gone")).unwrap_err().to_string();
    assert!(
        e.starts_with("MCP server `gone` failed to initialize: it exited with status 3"),
        "{e}"
    );
    assert!(e.ends_with("its stderr ends:\nno config here"), "{e}");
    let e = rt().block_on(s.tools("nope")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MCP server `nope`: cannot start `/no/such/program`"
    );
    // Neither fails an agent's definitions: a named tool gets a stand-in, `*` none.
    let refs = [
        ("gone".to_owned(), "*".to_owned()),
        ("nope".to_owned(), "read".to_owned()),
    ];
    let found = rt().block_on(s.definitions(&refs)).unwrap();
    let names: Vec<&str> = found.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["nope:read"]);
    let servers: Vec<&str> = found
        .unavailable
        .iter()
        .map(|u| u.server.as_str())
        .collect();
    assert_eq!(servers, ["gone", "nope"]);
    // Brief: one line, without the stderr.
    let brief = found.unavailable[0].error.brief();
    assert!(
        brief.starts_with("MCP server `gone` failed to initialize: it exited with status 3 (")
            && !brief.contains('\n')
            && !brief.contains("stderr"),
        "{brief}"
    );
    let e = rt().block_on(s.tools("other")).unwrap_err();
    assert_eq!(e.to_string(), "unknown MCP server `other`");
}

#[test]
fn dropping_the_servers_kills_their_groups() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker("dropped");
    let bin = install.npm_bin("mcp-server-everything");
    let yaml = format!(
        "every: {{ command: {}, args: [stdio, {mark}] }}\n",
        bin.display()
    );
    let runtime = rt();
    let s = servers(&yaml, tmp.path(), &[]);
    runtime.block_on(s.tools("every")).unwrap();
    assert!(!processes_with(&mark).is_empty());
    drop(s);
    drop(runtime);
    assert_eq!(wait_gone(&mark), Vec::<u32>::new());
    // Nothing else it started runs in its directory either.
    assert_eq!(wait_none_in(tmp.path()), Vec::<u32>::new());
}
