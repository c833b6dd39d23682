//! Against servers nobody here wrote: server-everything (tool shapes, structured content,
//! errors, slow tools; stdio and streamable HTTP), server-filesystem over a temp dir, and the
//! Python mcp-server-time.

use serde_json::json;

use crate::common::{marker, rt, servers};
use crate::install::{mcp_install, wait_gone};

#[test]
fn server_everything_tools_results_errors_and_timeouts() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    let mark = marker("everything");
    let bin = install.npm_bin("mcp-server-everything");
    let yaml = format!(
        "every: {{ command: {}, args: [stdio, {mark}], timeout: 2s }}\n",
        bin.display()
    );
    let s = servers(&yaml, tmp.path(), &[]);
    rt().block_on(async {
        let all = s.tools("every").await.unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        assert!(names.contains(&"every:echo"), "{names:?}");
        let echo = all.iter().find(|d| d.name == "every:echo").unwrap();
        assert!(!echo.description.is_empty());
        assert_eq!(echo.parameters["type"], "object");
        assert!(
            echo.parameters["properties"]["message"].is_object(),
            "{}",
            echo.parameters
        );

        // Chosen tools, in order, each once; a typo is an error with a suggestion.
        let defs = s
            .definitions(&[
                ("every".into(), "get-sum".into()),
                ("every".into(), "echo".into()),
                ("every".into(), "get-sum".into()),
            ])
            .await
            .unwrap();
        assert!(defs.unavailable.is_empty(), "{defs:?}");
        let got: Vec<&str> = defs.tools.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(got, ["every:get-sum", "every:echo"]);
        let e = s
            .definitions(&[("every".into(), "ecko".into())])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("MCP server `every` has no tool `ecko`; did you mean `echo`?"),
            "{e}"
        );

        let (text, err) = s
            .call("every", "echo", json!({"message": "hi there"}))
            .await;
        assert!(!err, "{text}");
        assert!(text.contains("hi there"), "{text}");
        let (text, err) = s.call("every", "get-sum", json!({"a": 2, "b": 40})).await;
        assert!(!err, "{text}");
        assert!(text.contains("42"), "{text}");

        // Structured content (the server also sends it as text: shown once).
        let (text, err) = s
            .call(
                "every",
                "get-structured-content",
                json!({"location": "Chicago"}),
            )
            .await;
        assert!(!err, "{text}");
        assert!(text.contains("drizzle"), "{text}");
        assert_eq!(text.matches("drizzle").count(), 1, "{text}");

        // An image block becomes a line saying what it is.
        let (text, err) = s.call("every", "get-tiny-image", json!({})).await;
        assert!(!err, "{text}");
        assert!(text.contains("[image image/png,"), "{text}");

        // Bad arguments: the server's error, as a tool error.
        let (text, err) = s.call("every", "get-sum", json!({"a": "x"})).await;
        assert!(err, "{text}");
        let (text, err) = s.call("every", "get-sum", json!([1])).await;
        assert!(err && text.contains("expected a JSON object"), "{text}");
        let (text, err) = s.call("every", "no-such-tool", json!({})).await;
        assert!(err, "{text}");

        // A slow tool past the call timeout: a tool error, and the server still answers.
        let t0 = std::time::Instant::now();
        let (text, err) = s
            .call(
                "every",
                "trigger-long-running-operation",
                json!({"duration": 30, "steps": 3}),
            )
            .await;
        assert!(err, "{text}");
        assert_eq!(
            text,
            "`every:trigger-long-running-operation` timed out after 2s (the call was cancelled)"
        );
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
        let (text, err) = s
            .call("every", "echo", json!({"message": "still here"}))
            .await;
        assert!(!err && text.contains("still here"), "{text}");
        s.shutdown().await;
    });
    assert_eq!(
        wait_gone(&mark),
        Vec::<u32>::new(),
        "server-everything left behind"
    );
}

#[test]
fn server_filesystem_reads_and_lists_a_temp_dir() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "the answer is 42\n").unwrap();
    let bin = install.npm_bin("mcp-server-filesystem");
    let yaml = format!(
        "fs: {{ command: {}, args: [\"{}\"] }}\n",
        bin.display(),
        tmp.path().display()
    );
    let s = servers(&yaml, tmp.path(), &[]);
    rt().block_on(async {
        let defs = s.definitions(&[("fs".into(), "*".into())]).await.unwrap();
        assert!(
            defs.tools.iter().any(|d| d.name == "fs:read_text_file"),
            "{defs:?}"
        );
        let path = tmp.path().join("notes.txt");
        let (text, err) = s
            .call(
                "fs",
                "read_text_file",
                json!({"path": path.display().to_string()}),
            )
            .await;
        assert!(!err, "{text}");
        assert!(text.contains("the answer is 42"), "{text}");
        let (text, err) = s
            .call(
                "fs",
                "list_directory",
                json!({"path": tmp.path().display().to_string()}),
            )
            .await;
        assert!(!err && text.contains("notes.txt"), "{text}");
        // Outside the allowed directory: the server refuses (a tool error).
        let (text, err) = s
            .call("fs", "read_text_file", json!({"path": "/etc/hostname"}))
            .await;
        assert!(err, "{text}");
        s.shutdown().await;
    });
}

#[test]
fn python_time_server_converts_time() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    let bin = install.venv_bin("mcp-server-time");
    // `${TZ_NAME:-...}` in env: expanded from the drive's environment, default used here.
    let yaml = format!(
        "time: {{ command: {}, args: [--local-timezone, UTC], env: {{ ORCHESTRA_UNUSED: \"${{TZ_NAME:-UTC}}\" }} }}\n",
        bin.display()
    );
    let s = servers(&yaml, tmp.path(), &[]);
    rt().block_on(async {
        let defs = s
            .definitions(&[("time".into(), "convert_time".into())])
            .await
            .unwrap();
        assert_eq!(defs.tools[0].name, "time:convert_time");
        let (text, err) = s
            .call(
                "time",
                "convert_time",
                json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
            )
            .await;
        assert!(!err, "{text}");
        assert!(text.contains("21:00"), "{text}");
        s.shutdown().await;
    });
}

#[test]
fn server_everything_over_streamable_http_with_headers() {
    let install = mcp_install();
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mark = marker("http");
    let mut server = std::process::Command::new(install.npm_bin("mcp-server-everything"))
        .args(["streamableHttp", &mark])
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for "listening" on stderr.
    let mut err = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "server-everything exited before listening");
        if line.contains("listening") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let yaml = format!(
        "web: {{ url: \"http://127.0.0.1:{port}/mcp\", headers: {{ X-Test-Token: \"${{TOKEN}}\" }} }}\n"
    );
    let s = servers(&yaml, tmp.path(), &[("TOKEN", "abc")]);
    rt().block_on(async {
        let (text, e) = s.call("web", "echo", json!({"message": "over http"})).await;
        assert!(!e && text.contains("over http"), "{text}");
        let (text, e) = s.call("web", "get-sum", json!({"a": 1, "b": 2})).await;
        assert!(!e && text.contains('3'), "{text}");
        s.shutdown().await;
    });
    // A missing variable without default names the variable and the server, not a value.
    let s = servers(&yaml, tmp.path(), &[]);
    let e = rt().block_on(s.tools("web")).unwrap_err().to_string();
    assert_eq!(
        e,
        "MCP server `web`: `headers.X-Test-Token`: environment variable `TOKEN` is not set (give a default with `${TOKEN:-default}`)"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
