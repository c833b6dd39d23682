//! Costs through the binary: each run's cost from the model prices (`prices:`), shown by `run`
//! and `status` (text and `--json`); `limits.max_cost` stops the session cleanly (exit 3) after
//! the step that crossed it, and `resume --max-cost` goes on; a model without a price has an
//! unknown cost, never 0.

use serde_json::Value;

use super::project::Project;

/// One run of `limits/cost.yaml`'s writer, in US dollars.
const RUN: f64 = 0.0151;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|got| (got - want).abs() < 1e-9)
}

#[test]
fn max_cost_stops_at_the_step_that_crossed_it_and_resume_with_a_higher_limit_completes() {
    let p = Project::new();
    let run = p.run(&["run", "limits/cost.yaml"]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    // $0.0151, $0.0302, $0.0453: the third step crossed $0.04, and the session stopped there.
    assert!(
        run.stdout.starts_with(
            "stopped: the session spent its cost budget (limits.max_cost: $0.04, spent $0.0453) \
             (3 steps, 45 tokens, $0.0453, "
        ),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("resume ") && run.stdout.contains(" --max-cost N`"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("  done   writer  ")
            && run
                .stderr
                .contains("tokens 10 in / 5 out  cache 6 read / 2 written  $0.0151  tools 0"),
        "{}",
        run.transcript()
    );
    assert_eq!(run.stderr.matches("  start  writer").count(), 3);
    let id = session_of(&run.stdout);

    let status = p.status(&id);
    assert_eq!(status["status"], "stopped");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("limits.max_cost: $0.04, spent $0.0453"),
        "{status}"
    );
    assert!(close(&status["cost_usd"], 3.0 * RUN), "{status}");
    assert_eq!(status["cost_partial"], false);
    let writer = &status["usage"][0];
    assert_eq!(writer["node"], "writer");
    assert_eq!(
        (
            writer["runs"].as_u64(),
            writer["cache_read_tokens"].as_u64(),
            writer["cache_write_tokens"].as_u64()
        ),
        (Some(3), Some(18), Some(6))
    );
    assert!(close(&writer["cost_usd"], 3.0 * RUN), "{writer}");
    let listed = &p.sessions()[0];
    assert!(close(&listed["cost_usd"], 3.0 * RUN), "{listed}");
    // The listing's note says which limit stopped it.
    let list = p.run(&["status"]);
    assert!(
        list.stdout.contains(" stopped ")
            && list.stdout.contains(
                "the session spent its cost budget (limits.max_cost: $0.04, spent $0.0453)"
            ),
        "{}",
        list.stdout
    );

    // The same limit stops it again at once; a higher one lets it finish its 20 drafts.
    let again = p.run(&["resume", &id]);
    assert_eq!(again.code, 3, "{}", again.transcript());
    assert!(!again.stderr.contains("start"), "{}", again.transcript());
    let (done, out) = p.run_json(&["resume", &id, "--max-cost", "1"]);
    assert_eq!(done.code, 0, "{}", done.transcript());
    assert_eq!(out["status"], "completed");
    assert_eq!(out["state"]["drafts"].as_array().unwrap().len(), 20);
    assert!(close(&out["cost_usd"], 20.0 * RUN), "{out}");
    assert_eq!(out["cost_partial"], false);
    let status = p.status(&id);
    assert_eq!(status["status"], "completed");
    assert!(close(&status["cost_usd"], 20.0 * RUN), "{status}");

    let text = p.run(&["status", &id]);
    assert!(
        text.stdout.contains("cost      $0.3020\n"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_model_without_a_price_has_an_unknown_cost_and_max_cost_says_it_cannot_count_it() {
    let p = Project::new();
    // The budget pipeline's model (`worker`, scripted) has no price.
    let (run, out) = p.run_json(&["run", "limits/budget.yaml", "--max-cost", "0.01"]);
    assert_eq!(run.code, 3, "stopped by max_tokens: {}", run.transcript());
    assert_eq!(out["cost_usd"], Value::Null, "{out}");
    assert!(
        run.stderr.contains(
            "warning: limits.max_cost ($0.0100) cannot count the runs of this model: no price \
             is known for `worker`; add it under `prices:`"
        ),
        "{}",
        run.transcript()
    );
    let id = out["session"].as_str().unwrap().to_owned();
    let status = p.status(&id);
    assert_eq!(status["cost_usd"], Value::Null, "{status}");
    assert_eq!(status["usage"][0]["cost_usd"], Value::Null, "{status}");
    assert_eq!(p.sessions()[0]["cost_usd"], Value::Null);
    let text = p.run(&["status", &id]);
    assert!(
        text.stdout
            .contains("cost      unknown (no price is known for its models)\n"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("$0"), "{}", text.stdout);
}

#[test]
fn a_session_with_some_runs_priced_shows_the_known_part_and_says_it_is_partial() {
    let p = Project::new();
    // `priced` runs on a model with a price (the project's default `worker`), `local` on one
    // without; their tokens are the scripted provider's estimates.
    p.write(
        "mixed.yaml",
        "name: mixed\n\
         prices:\n  worker: { input: 1000, output: 1000 }\n\
         agents:\n  priced: {}\n  local: { model: qwen-local }\n\
         graph:\n  - { from: START, to: priced }\n  - { from: priced, to: local }\n  - { from: local, to: END }\n",
    );
    let (run, out) = p.run_json(&["run", "mixed.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = out["session"].as_str().unwrap().to_owned();
    let status = p.status(&id);
    let by_node = |n: &str| {
        status["usage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["node"] == n)
            .unwrap()
            .clone()
    };
    let priced = by_node("priced");
    let tokens = priced["tokens_in"].as_u64().unwrap() + priced["tokens_out"].as_u64().unwrap();
    #[expect(clippy::cast_precision_loss, reason = "a few hundred tokens")]
    let want = tokens as f64 * 1000.0 / 1e6;
    assert!(close(&priced["cost_usd"], want), "{priced}");
    assert_eq!(by_node("local")["cost_usd"], Value::Null);
    assert!(close(&status["cost_usd"], want), "{status}");
    assert_eq!(status["cost_partial"], true);
    assert!(
        close(&out["cost_usd"], want) && out["cost_partial"] == true,
        "{out}"
    );
    let listed = &p.sessions()[0];
    assert_eq!(listed["cost_partial"], true, "{listed}");
    let text = p.run(&["status", &id]);
    assert!(
        text.stdout.contains("(partial: 1 run without a price)"),
        "{}",
        text.stdout
    );
    let list = p.run(&["status"]);
    assert!(
        list.stdout
            .contains("cost partial: 1 of 2 runs without a price"),
        "{}",
        list.stdout
    );
}

/// A fork is a new session: its `max_cost` and `max_tokens` count what it spends itself, not
/// what its parent spent before the fork (shown beside its own figures, never added in).
#[test]
fn a_forks_budgets_count_what_the_fork_spends() {
    let p = Project::new();
    let run = p.run(&["run", "limits/cost.yaml"]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let parent = session_of(&run.stdout);
    // The parent spent $0.0453 (45 tokens), past the budget of $0.04: a fork at its last
    // checkpoint still runs three writers of its own before the same budget stops it.
    let (fork, out) = p.run_json(&["replay", &parent, "--checkpoint", "3"]);
    assert_eq!(fork.code, 3, "{}", fork.transcript());
    // From checkpoint 3 to 6: three writers of its own.
    assert_eq!(out["steps"], 6, "{out}");
    assert!(close(&out["cost_usd"], 3.0 * RUN), "{out}");
    assert_eq!(out["tokens"], 45, "{out}");
    let id = out["session"].as_str().unwrap().to_owned();
    let status = p.status(&id);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("limits.max_cost: $0.04, spent $0.0453"),
        "{status}"
    );
    assert!(close(&status["cost_usd"], 3.0 * RUN), "{status}");
    assert_eq!(status["inherited_tokens"], 45, "{status}");

    // The same with a token budget: 30 tokens are two writers of the fork's own.
    let (fork, out) = p.run_json(&[
        "replay",
        &parent,
        "--checkpoint",
        "3",
        "--max-tokens",
        "30",
        "--max-cost",
        "1",
    ]);
    assert_eq!(fork.code, 3, "{}", fork.transcript());
    assert_eq!(out["steps"], 5, "{out}");
    assert_eq!(out["tokens"], 30, "{out}");
    let id = out["session"].as_str().unwrap().to_owned();
    assert!(
        p.status(&id)["error"]
            .as_str()
            .unwrap()
            .contains("--max-tokens: 30, used 30"),
        "{}",
        p.status(&id)
    );
}
