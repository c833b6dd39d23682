//! `for_each` into a command node through the binary (`language/fan-out-command.yaml`): one
//! real program per item, at most `max_parallel` at once, the next step after every instance,
//! instances named `count[N]` in `--events`, `status` and `show`; an instance's failure routed by
//! `on_error`; a SIGKILL in the middle of the fan-out, after which `resume` runs only the
//! programs that had not finished. And a scripted fan-out whose instances' model turns and tool
//! calls are traced apart (`show --node researcher[1]`).

use serde_json::{Value, json};

use super::project::Project;

const PIPELINE: &str = "language/fan-out-command.yaml";

/// The `start`/`end` lines of bin/count.sh, as (kind, item index).
fn count_log(p: &Project) -> Vec<(String, u32)> {
    p.log("count.log")
        .iter()
        .filter_map(|l| {
            let mut words = l.split(' ');
            let kind = words.next()?;
            let index = words.next()?.parse().ok()?;
            matches!(kind, "start" | "end").then(|| (kind.to_owned(), index))
        })
        .collect()
}

/// The most programs that ran at once, from their start and end lines.
fn most_at_once(log: &[(String, u32)]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for (kind, _) in log {
        if kind == "start" {
            now += 1;
            most = most.max(now);
        } else {
            now -= 1;
        }
    }
    most
}

/// A project with the files the tests count.
fn project() -> Project {
    let p = Project::new();
    for (name, text) in [
        ("a.txt", "abc"),
        ("b c.txt", "hello"),
        ("c.txt", "1234567"),
        ("d.txt", "x"),
        ("e.txt", "12"),
        ("wait b.txt", "wait"),
    ] {
        p.write(name, text);
    }
    p
}

fn events(p: &Project, file: &str) -> Vec<Value> {
    std::fs::read_to_string(p.path(file))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `node` of every event of `kind`.
fn nodes_of<'e>(events: &'e [Value], kind: &str) -> Vec<&'e str> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .filter_map(|e| e["node"].as_str())
        .collect()
}

#[test]
fn a_for_each_into_a_command_node_runs_a_program_per_item_at_most_max_parallel_at_once() {
    let p = project();
    let files = r#"files=["a.txt", "b c.txt", "c.txt", "d.txt", "e.txt"]"#;
    let (run, out) = p.run_json(&["run", PIPELINE, "-i", files, "--events", "ev.jsonl"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    // Item order (a name with a space is one argument), whatever order they finished in.
    let sizes = json!(["a.txt: 3", "b c.txt: 5", "c.txt: 7", "d.txt: 1", "e.txt: 2"]);
    assert_eq!(out["state"]["sizes"], sizes);
    // Five programs ran, never more than two at once (`limits.max_parallel: 2`), and two did.
    let log = count_log(&p);
    assert_eq!(log.len(), 10, "{log:?}");
    assert_eq!(most_at_once(&log), 2, "{log:?}");
    // `total` ran after every instance had finished, and saw all their writes.
    let lines = p.log("count.log");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("total a.txt: 3, b c.txt: 5, c.txt: 7, d.txt: 1, e.txt: 2"),
        "{lines:?}"
    );

    // The events name the instances; the step names the agent once.
    let ev = events(&p, "ev.jsonl");
    let steps: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| &e["nodes"])
        .collect();
    assert_eq!(
        steps,
        [&json!(["planner"]), &json!(["count"]), &json!(["total"])]
    );
    let mut started = nodes_of(&ev, "node_started");
    started.sort_unstable();
    assert_eq!(
        started,
        [
            "count[0]", "count[1]", "count[2]", "count[3]", "count[4]", "planner", "total"
        ]
    );
    assert_eq!(nodes_of(&ev, "node_finished").len(), 7);

    // `status` and `show` name them too; `show --node count` lists them in item order.
    let id = out["session"].as_str().unwrap();
    let status = p.run(&["status", id]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    for i in 0..5 {
        assert!(
            status
                .stdout
                .contains(&format!("\n  count[{i}] (command) ")),
            "{}",
            status.stdout
        );
    }
    let usage = p.status(id)["usage"].clone();
    let rows: Vec<(&str, bool)> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["node"].as_str().unwrap(), u["command"] == true))
        .collect();
    assert_eq!(
        rows,
        [
            ("count[0]", true),
            ("count[1]", true),
            ("count[2]", true),
            ("count[3]", true),
            ("count[4]", true),
            ("planner", false),
            ("total", true)
        ]
    );
    let show = p.run(&["show", id, "--node", "count", "--json"]);
    assert_eq!(show.code, 0, "{}", show.transcript());
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    let runs: Vec<&str> = shown["steps"][0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        runs,
        ["count[0]", "count[1]", "count[2]", "count[3]", "count[4]"]
    );
    let one = p.run(&["show", id, "--node", "count[3]"]);
    assert_eq!(one.code, 0, "{}", one.transcript());
    assert!(one.stdout.contains("count[3]"), "{}", one.stdout);
    assert!(!one.stdout.contains("count[2]"), "{}", one.stdout);
    let none = p.run(&["show", id, "--node", "count[9]"]);
    assert_eq!(none.code, 2, "{}", none.transcript());
    assert!(
        none.stderr.contains("has no node `count[9]`"),
        "{}",
        none.transcript()
    );
}

#[test]
fn an_instance_that_fails_goes_on_at_its_on_error_node_with_the_others_writes_kept() {
    let p = project();
    let files = r#"files=["a.txt", "hang b.txt", "c.txt"]"#;
    let (run, out) = p.run_json(&["run", PIPELINE, "-i", files]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    let state = &out["state"];
    // The instance that hung was killed at its 2s timeout; its failure names it.
    assert_eq!(state["errors"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["errors"][0]["agent"], "count[1]");
    assert_eq!(state["errors"][0]["step"], 2);
    let error = state["errors"][0]["error"].as_str().unwrap();
    assert!(error.contains("timed out after 2s"), "{error}");
    assert_eq!(state["sizes"], json!(["a.txt: 3", "c.txt: 7"]));
    // The session went on at `triage`, not `total`.
    let lines = p.log("count.log");
    assert!(
        lines.iter().any(|l| l.starts_with("triage count[1]: ")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("total")), "{lines:?}");
}

#[test]
fn a_sigkill_in_the_middle_of_a_command_fan_out_reruns_only_the_unfinished_programs() {
    let p = project();
    let files = r#"files=["a.txt", "wait b.txt", "c.txt", "d.txt"]"#;
    let running = p.spawn(&["run", PIPELINE, "-i", files]);
    assert!(running.wait_for("step 2: count").is_some());
    let id = p.sessions()[0]["id"].as_str().unwrap().to_owned();
    // `count[1]` waits for the gate; the other three finish and are recorded.
    super::common::wait_until("the records of count[0], count[2] and count[3]", || {
        let usage = p.status(&id)["usage"].clone();
        let done: Vec<&str> = usage
            .as_array()?
            .iter()
            .filter_map(|u| u["node"].as_str())
            .filter(|n| n.starts_with("count["))
            .collect();
        (done == ["count[0]", "count[2]", "count[3]"]).then_some(())
    });
    running.signal("KILL", true);
    let killed = running.finish();
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    let starts = |p: &Project| {
        let mut s: Vec<u32> = count_log(p)
            .into_iter()
            .filter(|(k, _)| k == "start")
            .map(|(_, i)| i)
            .collect();
        s.sort_unstable();
        s
    };
    assert_eq!(starts(&p), [0, 1, 2, 3]);

    p.open_gate();
    let run = p.run(&["resume", &id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("completed: "), "{}", run.transcript());
    // Only `count[1]`'s program ran again.
    assert_eq!(starts(&p), [0, 1, 1, 2, 3]);
    assert!(run.stderr.contains("start  count[1]"), "{}", run.stderr);
    for i in [0, 2, 3] {
        assert!(
            !run.stderr.contains(&format!("start  count[{i}]")),
            "{}",
            run.stderr
        );
    }
    let show = p.run(&["show", &id, "--json"]);
    assert_eq!(show.code, 0, "{}", show.transcript());
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        shown["state"]["sizes"],
        json!(["a.txt: 3", "wait b.txt: 4", "c.txt: 7", "d.txt: 1"])
    );
}

const TRACED: &str = r#"name: fan-out-traced
providers:
  scripted: { kind: scripted, responses: fan-out-traced.responses.yaml }
workspace:
  repos:
    notes: { path: . }
state:
  topics: { type: array }
agents:
  planner: { output: { schema: { type: object } }, writes: { topics: /topics } }
  researcher: { task: { text: "Research {{ item }}." }, tools: [notes:list-files] }
graph:
  - { from: START, to: planner }
  - { from: planner, to: researcher, for_each: topics }
  - { from: researcher, to: END }
"#;

/// `researcher[1]` lists files before answering; the other instances answer at once.
const TRACED_RESPONSES: &str = r#"agents:
  planner:
    runs:
      - turns:
          - text: '{"topics": ["x", "y", "z"]}'
  researcher[1]:
    runs:
      - turns:
          - tool_calls: [{ tool: "notes:list-files", args: { path: bin } }]
          - text: y is covered.
  researcher:
    runs:
      - turns:
          - text: covered.
"#;

#[test]
fn each_instance_has_its_own_model_turns_and_tool_calls() {
    let p = Project::new();
    p.write("fan-out-traced.yaml", TRACED);
    p.write("fan-out-traced.responses.yaml", TRACED_RESPONSES);
    let (run, out) = p.run_json(&["run", "fan-out-traced.yaml", "--events", "ev.jsonl"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = out["session"].as_str().unwrap();
    let ev = events(&p, "ev.jsonl");
    let mut turns = nodes_of(&ev, "model_turn");
    turns.sort_unstable();
    assert_eq!(
        turns,
        [
            "planner",
            "researcher[0]",
            "researcher[1]",
            "researcher[1]",
            "researcher[2]"
        ]
    );
    assert_eq!(nodes_of(&ev, "tool_called"), ["researcher[1]"]);

    let show = |node: &str| {
        let run = p.run(&["show", id, "--node", node, "--json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let v: Value = serde_json::from_str(&run.stdout).unwrap();
        let runs = v["steps"][0]["runs"].as_array().unwrap().clone();
        assert_eq!(runs.len(), 1, "{v}");
        runs[0].clone()
    };
    let traced = show("researcher[1]");
    let turns = traced["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{traced}");
    // The task (with its item) is the system prompt of the instance's first turn.
    assert_eq!(traced["system"], "Research y.", "{traced}");
    let tool = &turns[0]["tool_calls"][0];
    assert_eq!(tool["tool"], "notes:list-files");
    assert!(
        tool["result"].as_str().unwrap().contains("count.sh"),
        "{tool}"
    );
    assert!(
        turns[1]["answer"].to_string().contains("y is covered."),
        "{traced}"
    );
    let plain = show("researcher[2]");
    let turns = plain["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{plain}");
    assert_eq!(plain["system"], "Research z.", "{plain}");
    assert_eq!(turns[0]["tool_calls"], json!([]));
}
