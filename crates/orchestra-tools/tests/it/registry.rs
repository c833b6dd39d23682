//! The registry: names, definitions, unknown tools, Rust function tools, limits, concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestra_spec::{ShellToolSpec, SourceFile, parse_yaml};
use orchestra_tools::{Registry, RepoRoot, ToolDef, ToolError, ToolFailure, ToolLimits};
use serde::Deserialize;
use serde_json::json;

use crate::common::{builtins, dir_with, fails, ok};

#[derive(Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// The first number.
    a: i64,
    /// The second number.
    b: i64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct WaitArgs {
    /// Milliseconds to wait.
    ms: u64,
}

fn shell_spec(yaml: &str) -> ShellToolSpec {
    parse_yaml(&SourceFile::new("pipeline.yaml", yaml), "tool").unwrap()
}

#[test]
fn definitions_follow_the_order_asked_and_suggest_names() {
    let dir = dir_with(&[]);
    let mut r = builtins(dir.path(), true);
    r.add_shell_tool(
        &shell_spec(
            "{name: run-tests, repo: app, command: [cargo, test], description: Run the tests.}",
        ),
        dir.path(),
    )
    .unwrap();
    let defs = r
        .definitions(&["app:write-file", "app:run-tests", "app:read-file"])
        .unwrap();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["app:write-file", "app:run-tests", "app:read-file"]);
    assert_eq!(defs[2].parameters["required"], json!(["path"]));
    assert_eq!(
        defs[2].parameters["properties"]["start_line"]["description"],
        "First line to return, 1-based (default 1)."
    );
    assert!(
        defs[1]
            .description
            .starts_with("Run the tests. (Runs a command;")
    );
    assert_eq!(r.all_definitions().len(), 6);

    let e = r.definitions(&["app:read-files"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown tool `app:read-files`; did you mean `app:read-file`?"
    );
    assert_eq!(e.suggestions(), ["app:read-file"]);
}

#[test]
fn names_must_be_unique_and_valid() {
    let dir = dir_with(&[]);
    let mut r = builtins(dir.path(), false);
    let e = r
        .add_repo_builtins(&RepoRoot::new("app", dir.path(), false))
        .unwrap_err();
    assert!(matches!(e, ToolError::Duplicate { .. }), "{e}");
    let e = r
        .add_shell_tool(
            &shell_spec("{name: read-file, repo: app, command: [cat]}"),
            dir.path(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "tool `app:read-file` is already registered");
    let e = r
        .register_fn("bad name", "x", |a: AddArgs| {
            Ok::<_, String>((a.a + a.b).to_string())
        })
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidName { .. }), "{e}");
    let e = r
        .add_repo_builtins(&RepoRoot::new("my repo", dir.path(), false))
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidName { .. }), "{e}");
}

#[tokio::test]
async fn unknown_tools_are_tool_errors_with_suggestions() {
    let dir = dir_with(&[]);
    let r = builtins(dir.path(), false);
    let e = fails(&r, "app:serch-code", json!({})).await;
    assert_eq!(
        e,
        "unknown tool `app:serch-code`; did you mean `app:search-code`?; available tools: \
         app:read-file, app:list-files, app:search-code, app:get-git-diff"
    );
}

#[tokio::test]
async fn rust_functions_sync_and_async() {
    let mut r = Registry::new();
    r.register_fn("add", "Add two numbers.", |a: AddArgs| {
        a.a.checked_add(a.b)
            .map(|s| s.to_string())
            .ok_or("overflow")
    })
    .unwrap();
    r.register_async_fn("wait", "Wait a while.", |w: WaitArgs| async move {
        tokio::time::sleep(Duration::from_millis(w.ms)).await;
        Ok::<_, String>(format!("waited {}ms", w.ms))
    })
    .unwrap();
    let defs = r.definitions(&["add"]).unwrap();
    assert_eq!(
        defs[0].parameters["properties"]["a"],
        json!({"type": "integer", "format": "int64", "description": "The first number."})
    );
    assert_eq!(ok(&r, "add", json!({"a": 2, "b": 40})).await, "42");
    assert_eq!(
        fails(&r, "add", json!({"a": i64::MAX, "b": 1})).await,
        "overflow"
    );
    let e = fails(&r, "add", json!({"a": 1})).await;
    assert_eq!(e, "invalid arguments: missing field `b`");
    assert_eq!(ok(&r, "wait", json!({"ms": 1})).await, "waited 1ms");
    let e = fails(&r, "wait", json!({"ms": "soon"})).await;
    assert!(
        e.starts_with("invalid arguments: invalid type: string \"soon\""),
        "{e}"
    );
}

#[tokio::test]
async fn tools_registered_at_run_time_with_a_json_schema() {
    let schema = json!({
        "type": "object",
        "properties": { "path": { "type": "string" } },
        "required": ["path"]
    });
    let mut r = Registry::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    r.register(
        ToolDef {
            name: "fs:read_text_file".into(),
            description: "Read a text file.".into(),
            parameters: schema.clone(),
        },
        move |args: serde_json::Value| {
            log.lock().unwrap().push(args.clone());
            async move {
                match args["path"].as_str() {
                    Some("missing.txt") => Err(ToolFailure::new("no such file: missing.txt")),
                    Some(path) => Ok(format!("contents of {path}")),
                    None => Err("`path` must be a string".into()),
                }
            }
        },
    )
    .unwrap();
    assert_eq!(
        r.definitions(&["fs:read_text_file"]).unwrap(),
        [ToolDef {
            name: "fs:read_text_file".into(),
            description: "Read a text file.".into(),
            parameters: schema,
        }]
    );
    assert_eq!(
        ok(&r, "fs:read_text_file", json!({"path": "a.txt"})).await,
        "contents of a.txt"
    );
    assert_eq!(
        fails(&r, "fs:read_text_file", json!({"path": "missing.txt"})).await,
        "no such file: missing.txt"
    );
    assert_eq!(
        fails(&r, "fs:read_text_file", serde_json::Value::Null).await,
        "`path` must be a string"
    );
    assert_eq!(
        fails(&r, "fs:read_text_file", json!([1])).await,
        "invalid arguments: expected a JSON object, got an array"
    );
    // The handler saw the object calls (`null` as `{}`), never the array.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            json!({"path": "a.txt"}),
            json!({"path": "missing.txt"}),
            json!({})
        ]
    );
    // A second registration of the name, or a schema that is no object, is refused.
    let again = ToolDef {
        name: "fs:read_text_file".into(),
        description: String::new(),
        parameters: json!({"type": "object"}),
    };
    let e = r
        .register(again, |_: serde_json::Value| async { Ok(String::new()) })
        .unwrap_err();
    assert!(matches!(e, ToolError::Duplicate { .. }), "{e}");
    let scalar = ToolDef {
        name: "count".into(),
        description: String::new(),
        parameters: json!({"type": "integer"}),
    };
    let e = r
        .register(scalar, |_: serde_json::Value| async { Ok(String::new()) })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the arguments of tool `count` must be a JSON object (a struct), not type `integer`"
    );
}

#[tokio::test]
async fn rust_functions_time_out_and_are_capped() {
    let mut r = Registry::new().with_limits(ToolLimits {
        timeout: Duration::from_millis(200),
        max_output: 100,
        ..ToolLimits::default()
    });
    r.register_async_fn("wait", "Wait.", |w: WaitArgs| async move {
        tokio::time::sleep(Duration::from_millis(w.ms)).await;
        Ok::<_, String>("x".repeat(1000))
    })
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        fails(&r, "wait", json!({"ms": 30_000})).await,
        "`wait` timed out after 200ms"
    );
    // Not waited for: the function would have run for 30 s.
    assert!(started.elapsed() < Duration::from_secs(30));
    let out = ok(&r, "wait", json!({"ms": 0})).await;
    assert!(
        out.ends_with("[output truncated: 100 of 1000 bytes shown]"),
        "{out}"
    );
}

#[tokio::test]
async fn calls_run_concurrently_from_many_tasks() {
    let dir = dir_with(&[("a.txt", "alpha\n")]);
    let mut r = builtins(dir.path(), false);
    // Each call returns only once all ten are in flight: run one after another, none would.
    let all_in = Arc::new(tokio::sync::Barrier::new(10));
    r.register_async_fn("meet", "Wait for the others.", move |_: WaitArgs| {
        let all_in = Arc::clone(&all_in);
        async move {
            all_in.wait().await;
            Ok::<_, String>("done")
        }
    })
    .unwrap();
    let r = Arc::new(r);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let r = Arc::clone(&r);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    r.call("meet", json!({"ms": 0})).await
                } else {
                    r.call("app:read-file", json!({"path": "a.txt"})).await
                }
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            let out = t.await.unwrap();
            assert!(!out.is_error, "{}", out.content);
        }
    };
    // A bound on a hang only.
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the ten calls ran at once");
}

#[test]
fn building_a_registry_per_agent_run_is_cheap() {
    let dir = dir_with(&[]);
    let spec = shell_spec(
        "{name: run-tests, repo: app, command: [cargo, test, '{{filter}}'], args: {filter: {required: false}}}",
    );
    // Registration touches neither the file system nor git: it works for a repository that is
    // not there (yet), as often as agents run.
    let absent = dir.path().join("not-cloned-yet");
    let repo = RepoRoot::new("app", &absent, true);
    for _ in 0..1000 {
        let mut r = Registry::new();
        r.add_repo_builtins(&repo).unwrap();
        r.add_shell_tool(&spec, &absent).unwrap();
        assert_eq!(r.len(), 6);
    }
}

#[tokio::test]
async fn a_workspace_registry_narrowed_to_an_agents_tools() {
    let project = dir_with(&[("app/a.txt", "a\n"), ("lib/b.txt", "b\n"), ("top.txt", "")]);
    let root = project.path();
    let repos = [
        RepoRoot::new("app", root.join("app"), true),
        RepoRoot::new("lib", root.join("lib"), false),
    ];
    let tools = [
        shell_spec("{name: where, repo: lib, command: [pwd]}"),
        shell_spec("{name: where-top, command: [pwd]}"),
    ];
    let mut all = Registry::new();
    all.add_workspace(&repos, &tools, root).unwrap();
    assert_eq!(all.len(), 5 + 4 + 2);

    let agent = all
        .select(&["lib:where", "where-top", "lib:read-file"])
        .unwrap();
    let names: Vec<&str> = agent.names().collect();
    assert_eq!(names, ["lib:where", "where-top", "lib:read-file"]);
    let lib_dir = std::fs::canonicalize(root.join("lib")).unwrap();
    let top_dir = std::fs::canonicalize(root).unwrap();
    assert_eq!(
        ok(&agent, "lib:where", json!({})).await,
        format!("exit status: 0\n--- stdout ---\n{}\n", lib_dir.display())
    );
    assert_eq!(
        ok(&agent, "where-top", json!({})).await,
        format!("exit status: 0\n--- stdout ---\n{}\n", top_dir.display())
    );
    // Tools the agent was not given cannot be called through its registry.
    let e = fails(
        &agent,
        "app:write-file",
        json!({"path": "x", "content": "x"}),
    )
    .await;
    assert!(e.starts_with("unknown tool `app:write-file`"), "{e}");
    assert!(!root.join("app/x").exists());
    let e = all.select(&["lib:write-file"]).unwrap_err();
    assert!(
        e.to_string().starts_with("unknown tool `lib:write-file`"),
        "{e}"
    );

    let bad = [shell_spec("{name: t, repo: ap, command: [pwd]}")];
    let e = Registry::new()
        .add_workspace(&repos, &bad, root)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid shell tool `t`: unknown repo `ap`; did you mean `app`?"
    );
}
