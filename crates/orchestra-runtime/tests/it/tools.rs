//! Tools registered at run time (a name, a description, a JSON Schema and an async handler, as
//! MCP tools arrive) are called by every agent that lists them, through the engine with the
//! scripted provider and a real SQLite file; the results reach the model and the state.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use orchestra_graph::{LoadOptions, load};
use orchestra_runtime::{CollectEvents, DriveOptions, Engine, Event, Finish};
use orchestra_tools::{Registry, ToolDef, ToolFailure};

const PIPELINE: &str = r#"
name: notes
defaults: { provider: scripted, model: m }
providers:
  scripted: { kind: scripted, responses: responses.yaml }
state:
  summary: { type: string }
  check: { type: string }
agents:
  reader:
    role: { text: "You read notes." }
    task: { text: "Summarize today's notes." }
    tools: ["notes:read"]
    writes: { summary: "" }
  checker:
    role: { text: "You check notes." }
    task: { text: "Check that yesterday's notes exist." }
    tools: ["notes:read"]
    writes: { check: "" }
graph:
  - { from: START, to: reader }
  - { from: reader, to: checker }
  - { from: checker, to: END }
"#;

const RESPONSES: &str = r#"
agents:
  reader:
    runs:
      - turns:
          - tool_calls: [{ tool: "notes:read", args: { day: today } }]
          - text: "summary: {{ tool_results[0] }}"
  checker:
    runs:
      - turns:
          - tool_calls: [{ tool: "notes:read", args: { day: yesterday } }]
          - text: "check: {{ tool_results[0] }}"
"#;

/// The tool as an MCP client would register it: a definition discovered at run time and a
/// handler forwarding the call (here to a map of notes); every call is logged.
fn notes_tool(log: Arc<Mutex<Vec<Value>>>) -> Registry {
    let notes: HashMap<&str, &str> = HashMap::from([("today", "ship the release")]);
    let mut tools = Registry::new();
    let def = ToolDef {
        name: "notes:read".into(),
        description: "Read the notes of a day.".into(),
        parameters: json!({
            "type": "object",
            "properties": { "day": { "type": "string" } },
            "required": ["day"]
        }),
    };
    tools
        .register(def, move |args: Value| {
            log.lock().unwrap().push(args.clone());
            let note = args["day"].as_str().and_then(|d| notes.get(d).copied());
            async move {
                match note {
                    Some(text) => Ok(text.to_owned()),
                    None => Err(ToolFailure::new(format!("no notes for {}", args["day"]))),
                }
            }
        })
        .unwrap();
    tools
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_registered_at_run_time_is_called_by_every_agent_listing_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.yaml"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("responses.yaml"), RESPONSES).unwrap();
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        registered_tools: vec!["notes:read".into()],
        ..LoadOptions::default()
    };
    let compiled =
        Arc::new(load(Path::new("notes.yaml"), &opts).unwrap_or_else(|d| panic!("{d:?}")));

    let log = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(CollectEvents::default());
    let (_cancel_tx, cancel) = watch::channel(false);
    let drive = DriveOptions {
        stream: false,
        events: events.clone(),
        cancel,
        env: Arc::new(|_: &str| None),
        tools: notes_tool(Arc::clone(&log)),
        conditions: HashMap::new(),
        retry_base: Duration::from_millis(1),
        limits: Default::default(),
        human: None,
    };
    let store = orchestra_store_sqlite::SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
    let engine = Engine::new(Box::new(store), dir.path()).unwrap();
    let out = engine
        .run(compiled, Map::new(), None, &drive)
        .await
        .unwrap();
    assert!(
        matches!(out.finish, Finish::Completed { .. }),
        "{:?}",
        out.finish
    );
    // The handler's text went back to the model (the scripted answer quotes it), and a
    // failure reached it as a failed call, not as an error of the session.
    assert_eq!(out.state["summary"], "summary: ship the release");
    assert_eq!(out.state["check"], "check: no notes for \"yesterday\"");
    assert_eq!(
        *log.lock().unwrap(),
        [json!({"day": "today"}), json!({"day": "yesterday"})]
    );
    let events = events.take();
    // A ModelTurn event per model call: two turns per agent, the first asking for the tool.
    let turns: Vec<(String, u32, String, u32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ModelTurn {
                node,
                turn,
                stop,
                tool_calls,
                provider,
                model,
                ..
            } => {
                assert_eq!((provider.as_str(), model.as_str()), ("scripted", "m"));
                Some((node.clone(), *turn, stop.clone(), *tool_calls))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("reader".to_owned(), 0, "tool_use".to_owned(), 1),
            ("reader".to_owned(), 1, "end_turn".to_owned(), 0),
            ("checker".to_owned(), 0, "tool_use".to_owned(), 1),
            ("checker".to_owned(), 1, "end_turn".to_owned(), 0),
        ]
    );
    let routed: Vec<(String, Vec<String>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Routed { from, targets, .. } => Some((from.clone(), targets.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        routed,
        [
            ("reader".to_owned(), vec!["checker".to_owned()]),
            ("checker".to_owned(), vec!["END".to_owned()]),
        ]
    );
    let called: Vec<(String, String, bool)> = events
        .into_iter()
        .filter_map(|e| match e {
            Event::ToolCalled {
                node,
                tool,
                is_error,
                ..
            } => Some((node, tool, is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        called,
        [
            ("reader".to_owned(), "notes:read".to_owned(), false),
            ("checker".to_owned(), "notes:read".to_owned(), true),
        ]
    );

    // What was recorded: the outputs in the stored session, one tool call per node run.
    let id = out.session.clone();
    let runs = engine
        .store()
        .call(move |s| s.node_runs(&id))
        .await
        .unwrap();
    let calls: Vec<(String, u64)> = runs
        .iter()
        .map(|r| (r.node.clone(), r.tool_calls))
        .collect();
    assert_eq!(calls, [("reader".to_owned(), 1), ("checker".to_owned(), 1)]);

    // The trace: the prompt as sent, the answers, the tool calls with arguments and results.
    let id = out.session.clone();
    let trace = engine.store().call(move |s| s.trace(&id)).await.unwrap();
    assert_eq!(trace.turns.len(), 4);
    let first = &trace.turns[0];
    assert_eq!(
        (first.node.as_str(), first.step, first.turn),
        ("reader", 1, 0)
    );
    assert!(first.system.contains("You read notes."), "{}", first.system);
    assert!(first.system.contains("Summarize today's notes."));
    assert_eq!(first.messages.value()[0]["role"], "user");
    assert_eq!(first.answer.value()[0]["type"], "tool_use");
    assert_eq!(first.answer.value()[0]["input"], json!({"day": "today"}));
    // The second turn adds nothing but the answer and the tool results (kept elsewhere).
    assert_eq!(trace.turns[1].messages.value(), json!([]));
    assert_eq!(
        trace.turns[1].answer.value()[0]["text"],
        "summary: ship the release"
    );
    assert!(Arc::ptr_eq(&trace.turns[0].system, &trace.turns[1].system));
    let tools: Vec<(&str, u32, &str, &str, bool)> = trace
        .tools
        .iter()
        .map(|t| {
            (
                t.node.as_str(),
                t.turn,
                t.args.as_str(),
                t.result.as_str(),
                t.is_error,
            )
        })
        .collect();
    assert_eq!(
        tools,
        [
            ("reader", 0, r#"{"day":"today"}"#, "ship the release", false),
            (
                "checker",
                0,
                r#"{"day":"yesterday"}"#,
                "no notes for \"yesterday\"",
                true
            ),
        ]
    );
    assert!(trace.tools.iter().all(|t| !t.result_cut() && !t.args_cut()));
    let routes: Vec<(u64, &str, &[String])> = trace
        .routes
        .iter()
        .map(|r| (r.step, r.from.as_str(), r.targets.as_slice()))
        .collect();
    assert_eq!(
        routes,
        [
            (1, "reader", &["checker".to_owned()][..]),
            (2, "checker", &["END".to_owned()][..]),
        ]
    );
    engine.close().await;
}
