//! Interactive agents and `orchestra attach`, driven like a human would: the real binary in a
//! pseudo-terminal, on a copy of `pipelines/plan-with-human.yaml` (scripted provider).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::common::{Run, copy_dir, orchestra, wait_until, workspace_root};
use super::pty::Term;

pub(crate) const PIPELINE: &str = "pipelines/plan-with-human.yaml";

/// A temp project holding the workspace's plan-with-human pipeline and what it uses.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = workspace_root();
        std::fs::copy(
            root.join("orchestra.yaml"),
            dir.path().join("orchestra.yaml"),
        )
        .unwrap();
        for sub in ["prompts", "conditions", "fixtures"] {
            copy_dir(&root.join(sub), &dir.path().join(sub));
        }
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        std::fs::copy(root.join(PIPELINE), dir.path().join(PIPELINE)).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Project { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// Makes the planner a command that answers only once a file `open` exists in the project
    /// ([`Project::open_gate`]): the session stays live at the planner meanwhile.
    fn gated_planner(&self) {
        gate_planner(&self.root().join(PIPELINE));
    }

    /// Lets the gated planner answer.
    fn open_gate(&self) {
        std::fs::write(self.root().join("open"), "").unwrap();
    }

    /// `orchestra ARGS` without a terminal (stdin is empty).
    fn run(&self, args: &[&str]) -> Run {
        orchestra(self.root(), &self.home(), args)
    }

    /// `orchestra ARGS` in a pseudo-terminal.
    fn term(&self, args: &[&str]) -> Term {
        Term::spawn(self.root(), &self.home(), args)
    }

    /// The session's status as JSON.
    fn status(&self, id: &str) -> Value {
        let run = self.run(&["status", id, "--json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        serde_json::from_str(run.stdout.trim()).unwrap()
    }

    /// The stored chat of `node` in session `id`: (run index, role, content).
    fn chat(&self, id: &str, node: &str) -> Vec<(u32, String, String)> {
        use orchestra_store::Store as _;
        let store =
            orchestra_store_sqlite::SqliteStore::open(self.root().join(".orchestra/orchestra.db"))
                .unwrap();
        store
            .messages(id, node)
            .unwrap()
            .into_iter()
            .map(|m| (m.run_index, m.role, m.content))
            .collect()
    }
}

/// Makes the planner of the plan-with-human pipeline at `file` a command that answers only
/// once a file `open` exists in the directory it runs in: the session stays live at the
/// planner meanwhile.
pub(crate) fn gate_planner(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let gated = text
        .replacen(
            "providers:\n",
            "providers:\n  gate:\n    kind: command\n    command: [sh, -c, 'cat >/dev/null; while [ ! -e open ]; do sleep 0.02; done; echo A plan.']\n    stdin: true\n",
            1,
        )
        .replacen(
            "    task: draft-plan\n",
            "    task: draft-plan\n    provider: gate\n",
            1,
        );
    assert_eq!(
        gated.matches("gate").count(),
        2,
        "the pipeline changed shape"
    );
    std::fs::write(file, gated).unwrap();
}

/// The session id in "attach with: orchestra attach ID" or "session ID".
fn session_id(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("session "))
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no session id in:\n{text}"))
}

/// The final state from a `--json` outcome line among other output.
fn json_outcome(screen: &str) -> Value {
    let line = screen
        .lines()
        .find(|l| l.starts_with("{\"session\""))
        .unwrap_or_else(|| panic!("no JSON outcome in:\n{screen}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn inline_chat_rejects_then_approves_and_the_state_routes_on_the_verdict() {
    let p = Project::new();
    let mut t = p.term(&["run", PIPELINE, "--json", "--events", "events.jsonl"]);
    t.expect("--- chat with `reviewer`");
    t.expect("/approve [comment] approves it; /reject [comment] rejects it");
    t.expect("reviewer> Two things matter in this plan.");
    t.expect("you> ");
    t.line("what happens when redis is down?");
    t.expect("reviewer> Agreed. A feature flag");
    t.expect("you> ");
    t.line("/aprove");
    t.expect("unknown command `/aprove`; did you mean `/approve`?");
    t.line("/done");
    t.expect("/done cannot end this chat: `reviewer` wrote \"done\" to state field `verdict`");
    t.line("/reject add a rollback");
    t.expect("--- chat ended: /reject add a rollback ---");
    // The planner revises; the reviewer's second run opens a new chat.
    t.expect("reviewer> The revision addresses both problems");
    t.line("/approve ship it");
    t.expect("--- chat ended: /approve ship it ---");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    let out = json_outcome(&t.screen());
    assert_eq!(out["status"], "completed");
    let state = &out["state"];
    assert_eq!(state["verdict"], "approve");
    assert_eq!(state["human_comment"], "ship it");
    assert!(state["plan"].as_str().unwrap().contains("(revised)"));
    assert!(
        state["review_notes"]
            .as_str()
            .unwrap()
            .starts_with("The revision addresses")
    );
    assert_eq!(
        state["agent_outputs"]["reviewer"]["verdict"], "approve",
        "the output is the envelope"
    );
    let id = out["session"].as_str().unwrap();
    let chat = p.chat(id, "reviewer");
    let roles: Vec<(u32, &str)> = chat
        .iter()
        .map(|(r, role, _)| (*r, role.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            (0, "assistant"),
            (0, "user"),
            (0, "assistant"),
            (0, "command"),
            (1, "assistant"),
            (1, "command")
        ]
    );
    assert_eq!(chat[1].2, "what happens when redis is down?");

    // The lines the chats took are human turns of the events; the refused ones are not.
    let events = super::events::parse_events(
        &std::fs::read_to_string(p.root().join("events.jsonl")).unwrap(),
        id,
    );
    super::events::check_drive(&events, "completed");
    let turns: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "human_turn")
        .map(|e| (e["node"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        turns,
        [
            ("reviewer", "what happens when redis is down?"),
            ("reviewer", "/reject add a rollback"),
            ("reviewer", "/approve ship it")
        ]
    );
    // The approved plan is written to a file, and its path printed.
    let plan_rel = format!(".orchestra/plans/{id}.md");
    let written = out["outputs"][0].as_str().unwrap_or_default();
    assert!(written.ends_with(&plan_rel), "{out}");
    let plan = std::fs::read_to_string(p.root().join(&plan_rel)).unwrap();
    assert!(
        plan.starts_with(&format!(
            "> Goal: Add per-client rate limiting to the public HTTP API.\n\
             > Approved in review, with the comment: ship it.\n\
             > Session: `{id}`\n\n\
             # Rate limiting for the public API (revised)\n"
        )),
        "{plan}"
    );
    assert!(plan.contains("Rollback: turn the flag off"), "{plan}");

    // The report has both chats, with the person's lines, and the plan as an output file.
    let report = p.run(&["report", id]);
    assert_eq!(report.code, 0, "{}", report.transcript());
    let md = &report.stdout;
    let chats = md
        .split_once("\n## Human turns\n")
        .unwrap_or_else(|| panic!("no human turns: {md}"))
        .1;
    for part in [
        "### reviewer #0\n",
        "**user** (turn 1):\n\n```text\nwhat happens when redis is down?\n```",
        "**command** (turn 3):\n\n```text\n/reject add a rollback\n```",
        "### reviewer #1\n",
        "/approve ship it",
    ] {
        assert!(chats.contains(part), "{part:?} in {chats}");
    }
    assert!(
        md.contains(&format!("## Output files\n\n- `{plan_rel}`\n")),
        "{md}"
    );
}

#[test]
fn detach_pauses_then_attach_resumes_the_chat_here() {
    let p = Project::new();
    let run = p.run(&["run", PIPELINE, "--detach"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "paused at `reviewer`: agent `reviewer` needs a human, and the run was started with --detach"
        ),
        "{}",
        run.transcript()
    );
    let id = session_id(&run.stdout);
    assert!(
        run.stdout
            .contains(&format!("attach with: orchestra attach {id}"))
    );
    assert_eq!(p.status(&id)["status"], "paused");
    assert!(
        !p.root()
            .join(format!(".orchestra/sessions/{id}.sock"))
            .exists(),
        "the attach socket is removed on exit"
    );

    let mut t = p.term(&["attach", &id[..12]]);
    t.expect(&format!("resuming session {id}"));
    t.expect("reviewer> Two things matter in this plan.");
    t.expect("you> ");
    t.line("/approve");
    t.expect("completed:");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    assert_eq!(p.status(&id)["status"], "completed");

    // Nothing left to attach to.
    let again = p.run(&["attach", &id]);
    assert_eq!(again.code, 2, "{}", again.transcript());
    assert!(
        again
            .stderr
            .contains("is completed; there is nothing to attach to")
    );
}

/// Waits for the attach socket of the only session to appear; returns the session id.
pub(crate) fn live_session(root: &Path) -> String {
    let dir = root.join(".orchestra/sessions");
    wait_until("the attach socket of the run", || {
        std::fs::read_dir(&dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sock").map(str::to_owned)
        })
    })
}

#[test]
fn attach_joins_a_live_run_and_a_second_attach_is_told_who_holds_it() {
    let p = Project::new();
    p.gated_planner();
    let driver = Command::new(crate::binary::orchestra_bin())
        .args(["run", PIPELINE])
        .current_dir(p.root())
        .env_clear()
        .env("HOME", p.home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = live_session(p.root());

    let mut t = p.term(&["attach", &id]);
    t.expect(&format!("attached to session {id}, run by `orchestra run`"));
    p.open_gate();
    // The driver's progress streams here, then its reviewer chats here.
    t.expect("done   planner");
    t.expect("reviewer> Two things matter in this plan.");
    t.expect("you> ");

    let second = p.run(&["attach", &id]);
    assert_eq!(second.code, 4, "{}", second.transcript());
    assert!(
        second
            .stderr
            .contains(&format!("session {id} is held by `orchestra attach` (pid")),
        "{}",
        second.transcript()
    );

    t.line("is a week of log-only enough?");
    t.expect("reviewer> Agreed.");
    t.expect("you> ");
    t.line("/approve looks fine");
    t.expect("--- chat ended: /approve looks fine ---");
    t.expect("completed");
    assert_eq!(t.wait(), 0, "{}", t.screen());

    let out = driver.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("completed:"), "{stdout}");
    assert_eq!(p.status(&id)["status"], "completed");
    let chat = p.chat(&id, "reviewer");
    assert_eq!(chat[1].2, "is a week of log-only enough?");
}

#[test]
fn ctrl_c_mid_chat_keeps_the_conversation_and_the_session_resumable() {
    let p = Project::new();
    let mut t = p.term(&["run", PIPELINE]);
    t.expect("you> ");
    t.line("what happens when redis is down?");
    t.expect("reviewer> Agreed.");
    t.expect("you> ");
    t.ctrl('c');
    t.expect("interrupted");
    assert_eq!(t.wait(), 130, "{}", t.screen());
    let id = session_id(&t.screen());
    let status = p.status(&id);
    assert_ne!(status["status"], "completed");
    assert_ne!(status["status"], "running");

    // The chat comes back as it was: the stored answers are shown, not asked for again.
    let mut t = p.term(&["attach", &id]);
    t.expect("you> what happens when redis is down?");
    t.expect("reviewer> Agreed.");
    t.expect("you> ");
    t.line("and the load test?");
    // The third scripted answer: the model saw the whole conversation.
    t.expect("reviewer> Yes, that is covered by the changes above.");
    t.line("/approve");
    t.expect("completed:");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    let answers = p
        .chat(&id, "reviewer")
        .iter()
        .filter(|(run, role, _)| *run == 0 && role == "assistant")
        .count();
    assert_eq!(answers, 3, "no answer was asked for twice");
}

#[test]
fn end_of_input_pauses_with_a_clear_message_and_never_hangs() {
    let p = Project::new();
    let mut t = p.term(&["run", PIPELINE]);
    t.expect("you> ");
    t.ctrl('d');
    t.expect("paused at `reviewer`: the chat was left (end of input on stdin)");
    t.expect("attach with: orchestra attach");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    let id = session_id(&t.screen());
    assert_eq!(p.status(&id)["status"], "paused");

    // Attaching with nothing on stdin: the same clear pause.
    let run = p.run(&["attach", &id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("paused at `reviewer`: the chat was left (end of input on stdin)"),
        "{}",
        run.transcript()
    );

    // Lines on stdin without a terminal work too (scripts can attach).
    let piped = Command::new(crate::binary::orchestra_bin())
        .args(["attach", &id])
        .current_dir(p.root())
        .env_clear()
        .env("HOME", p.home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = piped.stdin.as_ref().unwrap();
    std::io::Write::write_all(&mut stdin, b"/reject too risky\n/approve\n").unwrap();
    let out = piped.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("completed:"));
}

#[test]
fn without_a_terminal_a_run_pauses_at_the_interactive_agent() {
    let p = Project::new();
    let run = p.run(&["run", PIPELINE]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "paused at `reviewer`: agent `reviewer` needs a human, and there is no terminal to chat on (stdin is not a terminal)"
        ),
        "{}",
        run.transcript()
    );
}

#[test]
fn writes_of_interactive_agents_are_checked_against_the_chat_output() {
    let p = Project::new();
    let file = p.root().join(PIPELINE);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("verdict: /verdict", "verdict: /verdit")).unwrap();
    let run = p.run(&["compile", PIPELINE]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("the output schema has no property `verdit`"),
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("verdict"), "{}", run.transcript());
}
