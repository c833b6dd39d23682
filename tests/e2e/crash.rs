//! Crash safety of the real binary: `orchestra run` is killed with SIGKILL (with the agent
//! scripts it started) at random moments, `orchestra resume` completes the session, the final
//! state, tokens and checkpoints equal an uninterrupted run's, and no agent run that had
//! finished before the kill runs again (every agent is a script that logs its calls).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::project::Project;

/// How many runs are killed.
const TRIALS: u64 = 20;
/// How many trials run at once (the agents mostly sleep, so this is cheap on 2 cores).
const PARALLEL: u64 = 4;

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed with
/// `ORCHESTRA_CRASH_SEED=N`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("ORCHESTRA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                .into()
        })
        | 1
}

/// Calls per agent in a log of agent names.
fn count(lines: &[String]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.clone()).or_insert(0) += 1;
    }
    m
}

/// Runs that finished (and were recorded) per agent, from `status ID --json`.
fn finished_runs(status: &Value) -> BTreeMap<String, u64> {
    status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let n = u["runs"].as_u64().unwrap() - u["errors"].as_u64().unwrap();
            (u["node"].as_str().unwrap().to_owned(), n)
        })
        .collect()
}

/// The steps and nodes of a session's checkpoints.
fn checkpoints(status: &Value) -> Vec<(u64, Value)> {
    status["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["step"].as_u64().unwrap(), c["nodes"].clone()))
        .collect()
}

struct Reference {
    outcome: Value,
    calls: BTreeMap<String, u64>,
    checkpoints: Vec<(u64, Value)>,
    /// From the start of the process to its session line.
    startup: Duration,
    /// From the session line to the end.
    driving: Duration,
}

fn reference() -> Reference {
    // Timed with progress lines (`--json` has none), then run again for the outcome.
    let timed = Project::new();
    let t0 = Instant::now();
    let running = timed.spawn(&["run", "crash.yaml"]);
    let started = running.wait_for("session ");
    let startup = t0.elapsed();
    let run = running.finish();
    assert!(started.is_some(), "{}", run.transcript());
    let driving = t0.elapsed() - startup;
    assert_eq!(run.code, 0, "{}", run.transcript());
    let p = Project::new();
    let (run, outcome) = p.run_json(&["run", "crash.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(outcome["status"], "completed");
    let calls = count(&p.log("calls.log"));
    // Two rounds of five agents.
    assert_eq!(
        calls.values().copied().collect::<Vec<_>>(),
        [2; 5],
        "{calls:?}"
    );
    let id = outcome["session"].as_str().unwrap();
    Reference {
        checkpoints: checkpoints(&p.status(id)),
        outcome,
        calls,
        startup,
        driving,
    }
}

/// What one trial saw, for the summary.
enum Trial {
    /// Killed before the session row existed: nothing ran, nothing to resume.
    BeforeSession,
    /// Killed after the last checkpoint: the session was already complete.
    AfterEnd,
    /// Killed mid-run and resumed; how many agent runs had finished before the kill.
    Resumed(u64),
}

/// Agent runs recorded as finished (per agent), checked against the calls logged so far.
fn recorded_before(
    p: &Project,
    id: &str,
    before: &[String],
) -> Result<BTreeMap<String, u64>, String> {
    let finished = finished_runs(&p.status(id));
    for (agent, n) in &finished {
        let logged = count(before).get(agent).copied().unwrap_or(0);
        if logged < *n {
            return Err(format!(
                "{agent}: {n} runs recorded but only {logged} calls logged"
            ));
        }
    }
    Ok(finished)
}

/// Kills a run (`early`: anywhere around its start), optionally kills its first resume too
/// (`twice`), resumes it to the end and compares with the uninterrupted run.
fn trial(reference: &Reference, rng: &mut Rng, early: bool, twice: bool) -> Result<Trial, String> {
    let p = Project::new();
    let running = p.spawn(&["run", "crash.yaml"]);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(1000);
    if early {
        // Anywhere around the start: before the session exists, before or after its first
        // checkpoint, or in the first step.
        let window = ms(reference.startup) + 30;
        std::thread::sleep(Duration::from_millis(rng.below(window)));
    } else {
        running
            .wait_for("session ")
            .ok_or("the run never printed its session line")?;
        std::thread::sleep(Duration::from_millis(rng.below(ms(reference.driving))));
    }
    running.signal("KILL", true);
    let killed = running.finish();
    let before = p.log("calls.log");
    let sessions = p.sessions();
    let Some(session) = sessions.first() else {
        if !before.is_empty() {
            return Err(format!(
                "agents ran ({before:?}) but no session was recorded"
            ));
        }
        return Ok(Trial::BeforeSession);
    };
    let id = session["id"].as_str().unwrap().to_owned();
    if killed.code == 0 || session["status"] == "completed" {
        // The kill came after the session was marked completed.
        let calls = count(&before);
        if calls != reference.calls {
            return Err(format!("a completed session made calls {calls:?}"));
        }
        return Ok(Trial::AfterEnd);
    }
    if session["status"] != "interrupted" {
        return Err(format!(
            "a killed session shows as {} instead of interrupted",
            session["status"]
        ));
    }
    let mut finished = recorded_before(&p, &id, &before)?;
    let mut before = before;
    if twice {
        // Kill the resume as well, at a random moment of its drive.
        let resuming = p.spawn(&["resume", &id]);
        if resuming
            // "resuming session ..." (or "session ..." when it had no checkpoint yet)
            .wait_for("session ")
            .is_none()
        {
            let run = resuming.finish();
            return Err(format!("the first resume failed:\n{}", run.transcript()));
        }
        std::thread::sleep(Duration::from_millis(rng.below(ms(reference.driving) / 2)));
        resuming.signal("KILL", true);
        let second = resuming.finish();
        if second.code != 0 {
            before = p.log("calls.log");
            finished = recorded_before(&p, &id, &before)?;
        }
    }
    if p.status(&id)["status"] != "completed" {
        let (run, outcome) = p.run_json(&["resume", &id]);
        if run.code != 0 {
            return Err(format!("resume failed:\n{}", run.transcript()));
        }
        for key in ["status", "steps", "tokens", "checkpoints", "state"] {
            // Byte for byte: the same keys in the same order, the same values.
            let (got, want) = (outcome[key].to_string(), reference.outcome[key].to_string());
            if got != want {
                return Err(format!(
                    "`{key}` differs after kill + resume:\n  resumed:       {got}\n  uninterrupted: {want}"
                ));
            }
        }
    }
    let after = p.log("calls.log")[before.len()..].to_vec();
    let again = count(&after);
    for (agent, total) in &reference.calls {
        let done = finished.get(agent).copied().unwrap_or(0);
        let ran = again.get(agent).copied().unwrap_or(0);
        if done + ran != *total {
            return Err(format!(
                "{agent}: {done} run(s) had finished before the last kill and {ran} ran after it; \
                 an uninterrupted run makes {total} (calls before the kill: {before:?}, after: {after:?})"
            ));
        }
    }
    let status = p.status(&id);
    if checkpoints(&status) != reference.checkpoints || status["status"] != "completed" {
        return Err(format!(
            "checkpoints after resume differ: {:?} vs {:?}",
            checkpoints(&status),
            reference.checkpoints
        ));
    }
    Ok(Trial::Resumed(finished.values().sum()))
}

#[test]
fn sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run() {
    let reference = reference();
    let seed = seed();
    let results: Vec<(u64, Result<Trial, String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|w| {
                let reference = &reference;
                s.spawn(move || {
                    let mut rng = Rng(seed.wrapping_add(w.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                    (w..TRIALS)
                        .step_by(usize::try_from(PARALLEL).unwrap())
                        .map(|t| (t, trial(reference, &mut rng, t % 5 == 0, t % 3 == 1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(t, r)| r.as_ref().err().map(|e| format!("trial {t}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "seed {seed} (ORCHESTRA_CRASH_SEED={seed} to replay):\n{}",
        failures.join("\n")
    );
    // Most kills must land mid-run, with some agent runs already finished (else the test
    // would not test reuse).
    let resumed = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Trial::Resumed(_))))
        .count();
    let reused = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(Trial::Resumed(n)) if *n > 0))
        .count();
    assert!(
        resumed >= 12 && reused >= 8,
        "seed {seed}: only {resumed} of {TRIALS} kills landed mid-run ({reused} after some agent finished)"
    );
}

/// `pid@host` of a process of this machine that has exited.
fn dead_owner() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("{}@{}", child.id(), host.trim())
}

#[test]
fn a_session_killed_before_its_first_checkpoint_resumes_from_the_start() {
    use orchestra_store::{NewSession, SessionStatus, Store as _};
    use orchestra_store_sqlite::SqliteStore;

    let p = Project::new();
    let (run, first) = p.run_json(&["run", "crash.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    // What a process leaves when it is killed after creating the session row and taking the
    // lease, but before committing checkpoint 0.
    let crashed = "20260101-000000-c0ffee";
    {
        let mut store = SqliteStore::open(p.path(super::project::DB)).unwrap();
        let rec = store
            .session(first["session"].as_str().unwrap())
            .unwrap()
            .unwrap();
        store
            .create_session(&NewSession {
                id: crashed.into(),
                name: None,
                pipeline: rec.pipeline,
                pipeline_path: rec.pipeline_path,
                pipeline_source: rec.pipeline_source,
                resolved: rec.resolved,
                pipeline_hash: rec.pipeline_hash,
                inputs: rec.inputs,
                parent_session: None,
                parent_checkpoint: None,
                parent_node: None,
                created_at: rec.created_at + 1,
            })
            .unwrap();
        store
            .set_status(crashed, SessionStatus::Running, None)
            .unwrap();
        store
            .acquire_lease(crashed, &dead_owner(), Duration::from_secs(60))
            .unwrap();
    }
    assert_eq!(p.sessions()[0]["status"], "interrupted");
    std::fs::remove_file(p.path("calls.log")).unwrap();
    let (run, resumed) = p.run_json(&["resume", crashed]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(resumed["state"], first["state"]);
    assert_eq!(resumed["tokens"], first["tokens"]);
    assert_eq!(resumed["checkpoints"], first["checkpoints"]);
    assert_eq!(p.log("calls.log").len(), 10);
}
