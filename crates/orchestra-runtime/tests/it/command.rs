//! Command nodes through the engine with real programs and a real SQLite file: argv templates
//! rendered into one argument each (no shell), fixed environment variables, output capped with
//! its start and end kept, a non-zero exit code recorded as data (the session goes on), and no
//! tokens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use orchestra_graph::{LoadOptions, load};
use orchestra_runtime::{CollectEvents, DriveOptions, Engine, Event, Finish};

const PIPELINE: &str = r#"
name: cmds
inputs:
  q: { default: "a b; echo \"c\" $(id)" }
state:
  echo: {}
  failing: { type: integer }
  err: { type: string }
agents:
  echo:
    command: [sh, -c, 'printf "%s|%s|%s\n" "$1" "$2" "$GREETING"; head -c 200000 /dev/zero | tr "\0" y', sh, "{{ inputs.q }}", "$HOME"]
    env: { GREETING: hi }
    writes: { echo: "" }
  failing:
    command: [sh, -c, 'echo "bad input" >&2; exit 7']
    writes: { failing: /exit_code, err: /stderr }
graph:
  - { from: START, to: echo }
  - { from: echo, to: failing }
  - { from: failing, to: END }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn command_nodes_render_argv_cap_output_and_record_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cmds.yaml"), PIPELINE).unwrap();
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let compiled =
        Arc::new(load(Path::new("cmds.yaml"), &opts).unwrap_or_else(|d| panic!("{d:?}")));
    let events = Arc::new(CollectEvents::default());
    let (_cancel_tx, cancel) = watch::channel(false);
    let drive = DriveOptions {
        stream: false,
        events: events.clone(),
        cancel,
        env: Arc::new(|_: &str| None),
        tools: orchestra_tools::Registry::new(),
        conditions: HashMap::new(),
        retry_base: Duration::from_millis(1),
        limits: Default::default(),
        human: None,
    };
    let store = orchestra_store_sqlite::SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
    let engine = Engine::new(Box::new(store), dir.path()).unwrap();
    let inputs: Map<String, Value> = compiled.inputs_with(&[]).values;
    let out = engine.run(compiled, inputs, None, &drive).await.unwrap();
    assert!(
        matches!(out.finish, Finish::Completed { .. }),
        "{:?}",
        out.finish
    );
    // One argument per element, nothing expanded: not `$(id)`, not `$HOME`.
    let echo = &out.state["echo"];
    let stdout = echo["stdout"].as_str().unwrap();
    assert!(
        stdout.starts_with("a b; echo \"c\" $(id)|$HOME|hi\nyyyy"),
        "{}",
        &stdout[..80]
    );
    // 200 KB of output: its first and last 32 KiB, around a note of what was cut.
    assert!(stdout.len() < 64 * 1024 + 100, "{}", stdout.len());
    assert!(stdout.contains("bytes cut ...]\n"), "no note");
    assert!(stdout.ends_with("yyyy"));
    assert_eq!(echo["exit_code"], 0);
    assert_eq!(echo["stderr"], "");
    // A non-zero exit is data: written, and the session went on to its end.
    assert_eq!(out.state["failing"], 7);
    assert_eq!(out.state["err"], "bad input\n");
    let finished: Vec<(String, u64, Option<i32>)> = events
        .take()
        .into_iter()
        .filter_map(|e| match e {
            Event::NodeFinished {
                node,
                tokens_in,
                tokens_out,
                exit_code,
                ..
            } => Some((node, tokens_in + tokens_out, exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [
            ("echo".to_owned(), 0, Some(0)),
            ("failing".to_owned(), 0, Some(7))
        ]
    );
    // The stored output is the node's `{exit_code, stdout, stderr}`.
    let id = out.session.clone();
    let runs = engine
        .store()
        .call(move |s| s.node_runs(&id))
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.error.is_none() && r.tokens_in == 0));
    assert_eq!(
        out.state["agent_outputs"]["failing"],
        json!({"exit_code": 7, "stdout": "", "stderr": "bad input\n"})
    );
    engine.close().await;
}
