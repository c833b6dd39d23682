//! The web UI's chat with a live interactive agent: what the page and the API show is the
//! node's conversation as stored, whoever said it — a human in a terminal's `orchestra attach`
//! or one in the page — and new lines as they are said. A real `orchestra run` of
//! plan-with-human (its planner gated, so the session is live), a real `orchestra attach` in a
//! pseudo-terminal, the real `orchestra ui`, and for the page a real headless Chromium.

use std::process::{Child, Stdio};

use serde_json::{Value, json};

use super::common::wait_until;
use super::interactive::{PIPELINE, gate_planner, live_session};
use super::pty::Term;
use super::readme::Repo;
use super::web_ui::{Served, get_json, http, serve};
use super::web_ui_actions::{error_of, post, wait_status};
use super::webdriver::Browser;

/// A project whose plan-with-human run is live at its gated planner, with the UI serving it.
struct Live {
    repo: Repo,
    driver: Child,
    id: String,
    ui: Served,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Live {
    fn start() -> Live {
        let repo = Repo::new();
        gate_planner(&repo.root.join(PIPELINE));
        let driver = repo
            .command(&["run", PIPELINE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let id = live_session(&repo.root);
        let ui = serve(&repo, "127.0.0.1:0");
        // The run listens on its socket before it records the session: 404 until it did.
        wait_until(&format!("session {id} to be running"), || {
            let (status, _, body) = http(&ui.addr, "GET", &format!("/api/sessions/{id}"), &[]);
            let d: Value = serde_json::from_str(&body).ok()?;
            (status == 200 && d["detail"]["status"] == "running").then_some(())
        });
        Live {
            repo,
            driver,
            id,
            ui,
        }
    }

    /// `orchestra attach` of the session in a terminal; the planner let through, once attached.
    fn attach_and_open_the_gate(&self) -> Term {
        let mut t = Term::spawn(&self.repo.root, self.repo.home(), &["attach", &self.id]);
        t.expect(&format!("attached to session {}", self.id));
        std::fs::write(self.repo.root.join("open"), "").unwrap();
        t.expect("reviewer> Two things matter in this plan.");
        t.expect("you> ");
        t
    }

    fn chat(&self) -> Value {
        get_json(&self.ui.addr, &format!("/api/sessions/{}/chat", self.id))
    }

    /// Waits until the chat the API shows has `n` lines; its lines as (who, first words).
    fn wait_lines(&self, n: usize) -> Vec<(String, String)> {
        wait_until(&format!("the chat to show {n} lines"), || {
            let c = self.chat();
            let lines = c["lines"].as_array()?;
            (lines.len() == n).then(|| {
                lines
                    .iter()
                    .map(|l| {
                        let text = l["text"].as_str().unwrap();
                        let head: String = text.chars().take(24).collect();
                        (l["who"].as_str().unwrap().to_owned(), head)
                    })
                    .collect()
            })
        })
    }
}

#[test]
fn ui_api_shows_a_live_chat_held_in_a_terminal_as_it_goes() {
    let live = Live::start();
    let a = live.ui.addr.as_str();
    // The planner runs: no interactive agent is live yet.
    assert_eq!(live.chat(), Value::Null);

    let mut t = live.attach_and_open_the_gate();
    // The reviewer's first answer, said in the terminal's chat, is the page's history.
    let c = live.chat();
    assert_eq!(c["node"], "reviewer", "{c}");
    assert_eq!(c["run_index"], 0, "{c}");
    assert_eq!(
        live.wait_lines(1),
        [("agent".to_owned(), "Two things matter in thi".to_owned())]
    );

    // A line typed in the terminal and the answer to it show up as they are said.
    t.line("is a week of log-only enough?");
    t.expect("reviewer> Agreed.");
    let lines = live.wait_lines(3);
    assert_eq!(
        lines[1],
        ("human".to_owned(), "is a week of log-only en".to_owned())
    );
    assert_eq!(lines[2].0, "agent");
    assert!(lines[2].1.starts_with("Agreed."), "{lines:?}");

    // The terminal holds the chat: a line from the page is refused with who holds it.
    let (status, v) = post(
        a,
        &format!("/api/sessions/{}/answer", live.id),
        &json!({ "text": "and the load test?" }),
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        error_of(&v).contains("is held by `orchestra attach`"),
        "{v}"
    );
    assert_eq!(live.wait_lines(3).len(), 3);

    t.line("/approve looks fine");
    t.expect("--- chat ended: /approve looks fine ---");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    wait_status(a, &live.id, "completed");
    // A completed session has no chat.
    assert_eq!(live.chat(), Value::Null);
}

#[cfg_attr(
    no_chromedriver,
    ignore = "no chromedriver: see the warning of tests/build.rs"
)]
#[test]
fn ui_in_a_browser_shows_a_live_chat_from_a_terminal_and_the_terminal_sees_the_pages_lines() {
    let live = Live::start();
    let a = live.ui.addr.as_str();
    let b = Browser::start();
    b.open(&format!("http://{a}/#/s/{}", live.id));
    b.wait_text(&format!("Session {}", live.id));
    b.wait_text("A line goes to the agent through the process running the session");

    // The terminal's chat, seen in the page as it goes, without a reload.
    let mut t = live.attach_and_open_the_gate();
    b.wait_text("Live chat with reviewer (run 1)");
    b.wait_text("agent: Two things matter in this plan.");
    t.line("is a week of log-only enough?");
    t.expect("reviewer> Agreed.");
    b.wait_text("human: is a week of log-only enough?");
    b.wait_text("agent: Agreed.");

    // The terminal leaves (end of input): nobody is left to chat, the session pauses there,
    // and the page shows the same conversation.
    t.ctrl('d');
    t.wait();
    wait_status(a, &live.id, "paused");
    b.wait_text("Paused at reviewer (run 1), waiting for you.");
    assert!(b.text().contains("agent: Agreed."), "{}", b.text());

    // A line from the page: the session resumes with it and the agent answers.
    b.type_into("#chat-text", "does it cover internal clients?");
    b.click("#chat-send");
    b.wait_text("agent: Yes, that is covered by the changes above.");
    wait_until("the resumed chat to pause again", || {
        let d = get_json(a, &format!("/api/sessions/{}", live.id));
        let c = live.chat();
        (d["detail"]["status"] == "paused" && c["lines"].as_array().map(Vec::len) == Some(5))
            .then_some(())
    });

    // A terminal that attaches now is shown everything, the page's line included.
    let mut t = Term::spawn(&live.repo.root, live.repo.home(), &["attach", &live.id]);
    t.expect("you> does it cover internal clients?");
    t.expect("reviewer> Yes, that is covered by the changes above.");
    t.expect("you> ");
    t.line("/approve");
    t.expect("--- chat ended: /approve ---");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    wait_status(a, &live.id, "completed");
    b.wait_text("has no chat waiting");
}
