//! Interactive agents through the engine: a scripted human (an `Interaction` of the test), chats
//! stored in and rebuilt from a real SQLite file, verdicts routing a condition; and the attach
//! socket's protocol with real Unix-socket clients.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, json};
use tokio::sync::watch;

use orchestra_graph::{Compiled, LoadOptions, load};
use orchestra_runtime::attach::{
    AttachError, AttachServer, Joined, Outcome, ServerMsg, connect, socket_path,
};
use orchestra_runtime::interactive::{
    ChatChannel, ChatEvent, ChatInfo, HumanInput, Interaction, Speaker, Verdict,
};
use orchestra_runtime::{
    BoxFuture, CollectEvents, DriveOptions, Engine, Event, Finish, NoEvents,
    Outcome as SessionOutcome,
};
use orchestra_store::SessionStatus;

const PIPELINE: &str = r#"
name: chat
defaults: { provider: scripted, model: m }
providers:
  scripted: { kind: scripted, responses: responses.yaml }
state:
  verdict: { type: string, enum: [approve, reject] }
  note: { type: string }
agents:
  writer: { role: { text: "You write." }, task: { text: "Write a note." }, writes: { note: "" } }
  reviewer:
    mode: interactive
    role: { text: "You review notes with a human." }
    task: { text: "Review: {{ state.note }}" }
    writes: { verdict: /verdict }
graph:
  - { from: START, to: writer }
  - { from: writer, to: reviewer }
  - { from: reviewer, condition: route, to: [writer, END], max_loops: 1, on_max_loops: END }
"#;

const ROUTE: &str = r#"
rules:
  - when: state.verdict == "reject"
    to: writer
default: END
"#;

const RESPONSES: &str = r#"
agents:
  writer:
    runs:
      - turns: [{ text: "draft 1" }]
      - turns: [{ text: "draft 2" }]
  reviewer:
    runs:
      - turns: [{ text: "first look" }, { text: "second look" }, { text: "third look" }]
      - turns: [{ text: "the new draft is fine" }]
"#;

fn compiled(dir: &Path) -> Arc<Compiled> {
    std::fs::write(dir.join("chat.yaml"), PIPELINE).unwrap();
    std::fs::write(dir.join("responses.yaml"), RESPONSES).unwrap();
    std::fs::create_dir_all(dir.join("conditions")).unwrap();
    std::fs::write(dir.join("conditions/route.yaml"), ROUTE).unwrap();
    let opts = LoadOptions {
        cwd: dir.to_path_buf(),
        ..LoadOptions::default()
    };
    Arc::new(load(Path::new("chat.yaml"), &opts).unwrap_or_else(|d| panic!("{d:?}")))
}

/// A human who types the lines given (`None`: leaves), then is gone.
#[derive(Default)]
struct Scripted {
    lines: Mutex<VecDeque<Option<String>>>,
    shown: Mutex<Vec<ChatEvent>>,
}

impl Scripted {
    fn new(lines: &[Option<&str>]) -> Arc<Scripted> {
        Arc::new(Scripted {
            lines: Mutex::new(lines.iter().map(|l| l.map(str::to_owned)).collect()),
            shown: Mutex::default(),
        })
    }

    fn shown(&self) -> Vec<ChatEvent> {
        self.shown.lock().unwrap().clone()
    }
}

struct ScriptedHuman(Arc<Scripted>);

impl Interaction for ScriptedHuman {
    fn open<'a>(&'a self, _: &'a ChatInfo) -> BoxFuture<'a, Result<Box<dyn ChatChannel>, String>> {
        Box::pin(async move {
            if self.0.lines.lock().unwrap().is_empty() {
                return Err("nobody is left".to_owned());
            }
            Ok(Box::new(ScriptedChat(Arc::clone(&self.0))) as Box<dyn ChatChannel>)
        })
    }
}

struct ScriptedChat(Arc<Scripted>);

impl ChatChannel for ScriptedChat {
    fn show(&mut self, event: ChatEvent) {
        self.0.shown.lock().unwrap().push(event);
    }

    fn read(&mut self) -> BoxFuture<'_, HumanInput> {
        Box::pin(async move {
            match self.0.lines.lock().unwrap().pop_front() {
                Some(Some(line)) => HumanInput::Line(line),
                Some(None) => HumanInput::Left("the human walked away".into()),
                None => HumanInput::Left("the script ended".into()),
            }
        })
    }
}

/// Drive options with `human`; keep the sender alive while driving (a dropped cancel sender
/// reads as a cancel).
fn options(human: Option<Arc<Scripted>>) -> (DriveOptions, watch::Sender<bool>) {
    let (tx, cancel) = watch::channel(false);
    let opts = DriveOptions {
        stream: false,
        events: Arc::new(NoEvents),
        cancel,
        env: Arc::new(|_: &str| None),
        tools: orchestra_tools::Registry::new(),
        conditions: HashMap::new(),
        retry_base: Duration::from_millis(1),
        limits: Default::default(),
        human: human.map(|h| Arc::new(ScriptedHuman(h)) as Arc<dyn Interaction>),
    };
    (opts, tx)
}

async fn roles(engine: &Engine, id: &str) -> Vec<(u32, String)> {
    let id = id.to_owned();
    engine
        .store()
        .call(move |s| s.messages(&id, "reviewer"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.run_index, m.role))
        .collect()
}

async fn run(engine: &Engine, c: &Arc<Compiled>, human: Option<Arc<Scripted>>) -> SessionOutcome {
    let (opts, _cancel) = options(human);
    engine
        .run(Arc::clone(c), Map::new(), None, &opts)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verdict_routes_and_every_turn_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let c = compiled(dir.path());
    let engine = open_engine(&dir.path().join("db.sqlite"));
    let human = Scripted::new(&[
        Some("what about tests?"),
        Some("/done"),
        Some("/reject needs tests"),
        Some("/approve"),
    ]);
    let (mut opts, _cancel) = options(Some(Arc::clone(&human)));
    let events = Arc::new(CollectEvents::default());
    opts.events = events.clone();
    let out = engine
        .run(Arc::clone(&c), Map::new(), None, &opts)
        .await
        .unwrap();
    assert!(
        matches!(out.finish, Finish::Completed { .. }),
        "{:?}",
        out.finish
    );
    let events = events.take();
    // The lines the chat took are human turns; the refused `/done` is not.
    let turns: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::HumanTurn { node, text } => Some((node.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("reviewer", "what about tests?"),
            ("reviewer", "/reject needs tests"),
            ("reviewer", "/approve")
        ]
    );
    let Some(Event::SessionFinished {
        session,
        status,
        steps,
        error,
        ..
    }) = events.last()
    else {
        panic!("the last event ends the session: {events:?}")
    };
    assert_eq!(
        (session, status.as_str(), *steps, error),
        (&out.session, "completed", out.steps, &None)
    );
    assert_eq!(out.state["verdict"], "approve");
    assert_eq!(
        out.state["note"], "draft 2",
        "the reject sent it back to the writer"
    );
    assert_eq!(
        out.state["agent_outputs"]["reviewer"],
        json!({"verdict": "approve", "answer": "the new draft is fine", "comment": ""})
    );
    let shown = human.shown();
    let ChatEvent::Opened { info, history } = &shown[0] else {
        panic!("{shown:?}")
    };
    assert_eq!(
        info.ends,
        [Verdict::Approve, Verdict::Reject],
        "verdict's enum rules out /done"
    );
    assert!(history.is_empty());
    assert!(shown.iter().any(|e| matches!(e, ChatEvent::Notice { text } if text.starts_with("/done cannot end this chat"))));
    let roles = roles(&engine, &out.session).await;
    let expected: Vec<(u32, String)> = [
        (0, "assistant"),
        (0, "user"),
        (0, "assistant"),
        (0, "command"),
        (1, "assistant"),
        (1, "command"),
    ]
    .iter()
    .map(|(r, s)| (*r, (*s).to_owned()))
    .collect();
    assert_eq!(roles, expected);
    // The chat's model turns are traced like an autonomous agent's: each adds what the human
    // said since the last one.
    let id = out.session.clone();
    let trace = engine.store().call(move |s| s.trace(&id)).await.unwrap();
    let chat: Vec<(u32, u32, usize)> = trace
        .turns
        .iter()
        .filter(|t| t.node == "reviewer")
        .map(|t| {
            (
                t.run_index,
                t.turn,
                t.messages.value().as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(chat, [(0, 0, 1), (0, 1, 1), (1, 0, 1)]);
    let second = trace
        .turns
        .iter()
        .filter(|t| t.node == "reviewer")
        .nth(1)
        .unwrap();
    assert_eq!(
        second.messages.value()[0]["content"][0]["text"],
        "what about tests?"
    );
    let routes: Vec<String> = trace
        .routes
        .iter()
        .filter(|r| r.from == "reviewer")
        .map(|r| {
            format!(
                "{:?} {:?} {:?} {:?}/{:?}",
                r.condition, r.decision, r.targets, r.loop_round, r.loop_max
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            r#"Some("route") Some("reject") ["writer"] Some(1)/Some(1)"#,
            r#"Some("route") Some("default") ["END"] None/None"#,
        ]
    );
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_left_midway_pauses_and_resumes_from_the_store_without_asking_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = compiled(dir.path());
    let db = dir.path().join("db.sqlite");
    let engine = open_engine(&db);
    let out = run(&engine, &c, Some(Scripted::new(&[Some("q1"), None]))).await;
    let Finish::Paused { node, reason } = &out.finish else {
        panic!("{:?}", out.finish)
    };
    assert_eq!(node, "reviewer");
    assert!(
        reason.starts_with("the human walked away; the chat is saved"),
        "{reason}"
    );
    let id = out.session.clone();
    let store = engine.store().clone();
    let sid = id.clone();
    let rec = store.call(move |s| s.find_session(&sid)).await.unwrap();
    assert_eq!(rec.status, SessionStatus::Paused);
    engine.close().await;

    // Another process (another engine on the file) resumes it with another human.
    let engine = open_engine(&db);
    let human = Scripted::new(&[Some("/approve lgtm")]);
    let (opts, _cancel) = options(Some(Arc::clone(&human)));
    let out = engine.resume(&id, &opts).await.unwrap();
    assert!(
        matches!(out.finish, Finish::Completed { .. }),
        "{:?}",
        out.finish
    );
    let ChatEvent::Opened { history, .. } = &human.shown()[0] else {
        panic!()
    };
    let said: Vec<(Speaker, &str)> = history.iter().map(|l| (l.who, l.text.as_str())).collect();
    assert_eq!(
        said,
        [
            (Speaker::Agent, "first look"),
            (Speaker::Human, "q1"),
            (Speaker::Agent, "second look")
        ]
    );
    assert!(
        !human
            .shown()
            .iter()
            .any(|e| matches!(e, ChatEvent::Answer { .. })),
        "the stored answers were reused, not asked for again"
    );
    assert_eq!(out.state["agent_outputs"]["reviewer"]["comment"], "lgtm");
    assert_eq!(
        out.state["agent_outputs"]["reviewer"]["answer"],
        "second look"
    );
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_human_the_session_pauses_at_the_interactive_agent() {
    let dir = tempfile::tempdir().unwrap();
    let c = compiled(dir.path());
    let engine = open_engine(&dir.path().join("db.sqlite"));
    let (mut opts, _cancel) = options(None);
    let events = Arc::new(CollectEvents::default());
    opts.events = events.clone();
    let out = engine
        .run(Arc::clone(&c), Map::new(), None, &opts)
        .await
        .unwrap();
    let Finish::Paused { node, reason } = &out.finish else {
        panic!("{:?}", out.finish)
    };
    assert_eq!(node, "reviewer");
    assert!(reason.contains("cannot reach a human"), "{reason}");
    match events.take().last() {
        Some(Event::SessionFinished { status, error, .. }) => {
            assert_eq!(status, "paused");
            assert!(error.as_deref().unwrap().contains("waiting at `reviewer`"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.state["note"], "draft 1", "the writer's step was kept");
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_an_output_schema_the_chat_ends_only_on_a_valid_answer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typed.yaml"),
        r#"
name: typed
defaults: { provider: scripted, model: m }
providers:
  scripted: { kind: scripted, responses: typed.responses.yaml }
state:
  steps: { type: array }
agents:
  planner:
    mode: interactive
    role: { text: "You plan with a human." }
    output: { schema: { type: object, required: [steps], properties: { steps: { type: array } } } }
    writes: { steps: /answer/steps }
graph:
  - { from: START, to: planner }
  - { from: planner, to: END }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("typed.responses.yaml"),
        r#"
agents:
  planner:
    runs:
      - turns: [{ text: "Let us talk first." }, { text: "```json\n{\"steps\": [\"a\", \"b\"]}\n```" }]
"#,
    )
    .unwrap();
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let c = Arc::new(load(Path::new("typed.yaml"), &opts).unwrap_or_else(|d| panic!("{d:?}")));
    let engine = open_engine(&dir.path().join("db.sqlite"));
    let human = Scripted::new(&[Some("/done"), Some("the JSON, please"), Some("/done")]);
    let out = run(&engine, &c, Some(Arc::clone(&human))).await;
    assert!(
        matches!(out.finish, Finish::Completed { .. }),
        "{:?}",
        out.finish
    );
    assert_eq!(out.state["steps"], json!(["a", "b"]));
    assert_eq!(
        out.state["agent_outputs"]["planner"],
        json!({"verdict": "done", "answer": {"steps": ["a", "b"]}, "comment": ""})
    );
    let refused = human.shown().into_iter().any(|e| {
        matches!(e, ChatEvent::Notice { text }
            if text.starts_with("/done cannot end this chat: the agent's last answer must be JSON"))
    });
    assert!(refused, "{:?}", human.shown());
    engine.close().await;
}

/// An engine over a SQLite database, for the project around it.
fn open_engine(db: &Path) -> Engine {
    let store = orchestra_store_sqlite::SqliteStore::open(db).unwrap();
    Engine::new(Box::new(store), db.parent().unwrap()).unwrap()
}

mod attach;
