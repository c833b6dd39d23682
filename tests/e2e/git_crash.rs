//! Crash recovery of a parallel step's git state with the real binary: `orchestra run
//! pipelines/parallel-edit.yaml` (the scripted model answering after 250 ms) is killed with
//! SIGKILL as soon as each git event of the step is seen on disk (a fork's branch or worktree
//! record appearing, a fork branch getting its agent's commit, the session branch moving, a merge in
//! progress, a fork going), every other trial its first resume too (at the same event, which
//! can land inside the recovery), and `orchestra resume` must complete it with `git fsck` clean
//! and both coders' commits on the session branch. The states a kill cannot hit reliably (inside a
//! merge, a half-made worktree record) are built by hand from a run killed mid-step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::gitrepo::GitProject;

const PIPELINE: &str = "pipelines/slow.yaml";
/// The session branches' directory under `.git/refs/heads`.
const REFS: &str = "orchestra/parallel-edit";

/// The repository with `pipelines/slow.yaml`: parallel-edit with the model answering after
/// `latency` ms, and coder-b after `latency_b` ms.
fn project(latency: u64, latency_b: u64) -> GitProject {
    let ws = super::common::workspace_root();
    let responses = fs::read_to_string(ws.join("fixtures/parallel-edit.responses.yaml"))
        .unwrap()
        .replace(
            "  coder-b:\n    runs:",
            &format!("  coder-b:\n    latency_ms: {latency_b}\n    runs:"),
        );
    let pipeline = fs::read_to_string(ws.join("pipelines/parallel-edit.yaml"))
        .unwrap()
        .replace("parallel-edit.responses.yaml", "slow.responses.yaml")
        .replace("latency_ms: 0", &format!("latency_ms: {latency}"));
    assert!(responses.contains(&format!("latency_ms: {latency_b}")));
    assert!(pipeline.contains(&format!("latency_ms: {latency}")));
    GitProject::new(&[
        ("fixtures/slow.responses.yaml", &responses),
        (PIPELINE, &pipeline),
    ])
}

/// The git events of the parallel step, in the order they happen (the coders' may interleave).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    ForkBranchA,
    ForkBranchB,
    ForkRecordA,
    ForkRecordB,
    CommitA,
    CommitB,
    SessionMoved,
    MergeHead,
    ForkGoneA,
    SessionMovedTwice,
    ForkGoneB,
}

const EVENTS: [Event; 11] = [
    Event::ForkBranchA,
    Event::ForkBranchB,
    Event::ForkRecordA,
    Event::ForkRecordB,
    Event::CommitA,
    Event::CommitB,
    Event::SessionMoved,
    Event::MergeHead,
    Event::ForkGoneA,
    Event::SessionMovedTwice,
    Event::ForkGoneB,
];

/// What the watcher has seen of the run so far.
#[derive(Default)]
struct Seen {
    id: Option<String>,
    start: Option<String>,
    moves: Vec<String>,
    branches: [bool; 2],
    records: [bool; 2],
    gone: [bool; 2],
    commits: [bool; 2],
    merge_head: bool,
}

fn read_ref(root: &Path, name: &str) -> Option<String> {
    let text = fs::read_to_string(root.join(".git/refs/heads").join(REFS).join(name)).ok()?;
    Some(text.trim().to_owned()).filter(|t| t.len() == 40)
}

impl Seen {
    /// Looks at the repository once more.
    fn look(&mut self, root: &Path) {
        if self.id.is_none() {
            let dir = root.join(".git/refs/heads").join(REFS);
            self.id = fs::read_dir(dir).ok().and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| !n.contains('+') && !n.ends_with(".lock"))
            });
        }
        let Some(id) = self.id.clone() else { return };
        let session = read_ref(root, &id);
        if self.start.is_none() {
            self.start = session.clone();
        }
        if let Some(now) = session
            && Some(&now) != self.start.as_ref()
            && self.moves.last() != Some(&now)
        {
            self.moves.push(now.clone());
        }
        let records = root.join(".git/worktrees");
        for (i, agent) in ["coder-a", "coder-b"].iter().enumerate() {
            let here = records
                .join(format!("orchestra-{id}+app+{agent}-1"))
                .exists();
            self.gone[i] |= self.records[i] && !here;
            self.records[i] |= here;
            let fork = read_ref(root, &format!("{id}+{agent}-1"));
            self.branches[i] |= fork.is_some();
            self.commits[i] |= fork.is_some() && fork != self.start;
        }
        self.merge_head |= records
            .join(format!("orchestra-{id}+app/MERGE_HEAD"))
            .exists();
    }

    fn happened(&self, event: Event) -> bool {
        match event {
            Event::ForkBranchA => self.branches[0],
            Event::ForkBranchB => self.branches[1],
            Event::ForkRecordA => self.records[0],
            Event::ForkRecordB => self.records[1],
            Event::CommitA => self.commits[0],
            Event::CommitB => self.commits[1],
            Event::SessionMoved => !self.moves.is_empty(),
            Event::MergeHead => self.merge_head,
            Event::ForkGoneA => self.gone[0],
            Event::SessionMovedTwice => self.moves.len() >= 2,
            Event::ForkGoneB => self.gone[1],
        }
    }
}

/// Polls the repository until `event` is seen (true) or the run ends first (false).
fn wait_for(root: &Path, child: &mut Child, event: Event) -> bool {
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seen.look(root);
        if seen.happened(event) {
            return true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The session id (the only session of the project).
fn session_of(p: &GitProject) -> Option<String> {
    let sessions = p.json(&["status"], 0);
    sessions[0]["id"].as_str().map(str::to_owned)
}

/// The agents whose commits are in `range` (merges left out), sorted.
fn agents_of(p: &GitProject, range: &str) -> Vec<String> {
    let log = p.git(&[
        "log",
        "--no-merges",
        "--format=%(trailers:key=Orchestra-Agent,valueonly,separator=)",
        range,
    ]);
    let mut agents: Vec<String> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    agents.sort();
    agents
}

/// `orchestra resume ID` exits 0 with the session completed, git is clean, the session branch
/// has both coders' work (and coder-a's commit `a_commit` when given) and only the session's
/// own worktree is left.
fn resume_and_check(p: &GitProject, id: &str, a_commit: Option<&str>) {
    let run = p.orchestra(&["resume", id, "--json"]);
    assert_eq!(run.code, 0, "resume failed:\n{}", run.transcript());
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "completed", "{out}");
    check_end(p, id, a_commit);
}

/// The completed session's git state: see [`resume_and_check`].
fn check_end(p: &GitProject, id: &str, a_commit: Option<&str>) {
    let branch = format!("{REFS}/{id}");
    let range = format!("main..{branch}");
    let agents = agents_of(p, &range);
    assert!(
        agents.iter().any(|a| a == "coder-a") && agents.iter().any(|a| a == "coder-b"),
        "{agents:?}"
    );
    if let Some(a) = a_commit {
        assert!(p.git(&["rev-list", &range]).lines().any(|c| c == a));
    }
    let files = p.git(&["ls-tree", "-r", "--name-only", &branch, "orchestra-demo"]);
    assert_eq!(
        files,
        "orchestra-demo/greet.sh\norchestra-demo/greet_test.sh\n"
    );
    let (_, worktree) = p.branch_and_worktree(id);
    assert_eq!(p.git_in(&worktree, &["status", "--porcelain"]), "");
    let listed = p.worktrees();
    assert_eq!(listed.len(), 2, "forks left behind: {listed:?}");
    assert_eq!(
        p.git(&[
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/orchestra/"
        ])
        .lines()
        .count(),
        1,
        "fork branches left behind"
    );
    p.assert_fsck_clean();
    p.assert_user_untouched();
}

/// How a kill at an event went.
#[derive(Debug, PartialEq, Eq)]
enum Trial {
    /// Killed right after the event was seen, then resumed to the end.
    Killed,
    /// The run ended before the event could be seen (too short to catch by polling).
    Missed,
}

/// Kills `orchestra ARGS` as soon as `event` is seen; whether it was (false: the process
/// ended first).
fn run_killed_at(p: &GitProject, args: &[&str], event: Event) -> bool {
    let mut child = p.spawn(args);
    let hit = wait_for(p.root(), &mut child, event);
    child.kill().unwrap();
    child.wait().unwrap();
    hit
}

/// Kills the run at `event` (and with `twice`, its first resume at the same event, which may
/// land in the middle of the recovery), then resumes it to the end.
fn kill_at(event: Event, twice: bool) -> Trial {
    let p = project(250, 250);
    let hit = run_killed_at(&p, &["run", PIPELINE], event);
    let id = session_of(&p).expect("a session was recorded");
    if !hit {
        let status = p.status(&id);
        assert_eq!(status["status"], "completed", "{event:?}: {status}");
        return Trial::Missed;
    }
    if twice && !run_killed_at(&p, &["resume", &id], event) {
        // The resume completed before the event came again: nothing left to resume.
        let status = p.status(&id);
        assert_eq!(status["status"], "completed", "{event:?}: {status}");
        check_end(&p, &id, None);
        return Trial::Killed;
    }
    resume_and_check(&p, &id, None);
    Trial::Killed
}

#[test]
fn a_run_killed_at_each_git_event_of_a_parallel_step_resumes_to_the_end() {
    let trials: u64 = std::env::var("ORCHESTRA_GIT_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let results: Vec<(Event, Trial)> = std::thread::scope(|scope| {
        let handles: Vec<_> = EVENTS
            .iter()
            .map(|&event| {
                scope.spawn(move || {
                    (0..trials)
                        .map(|i| (event, kill_at(event, i % 2 == 1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let killed = |e: Event| {
        results
            .iter()
            .filter(|(ev, t)| *ev == e && *t == Trial::Killed)
            .count()
    };
    eprintln!(
        "kills per event: {:?}",
        EVENTS.map(|e| (e, killed(e), trials))
    );
    // The events between model answers (250 ms apart) are caught by polling; those inside a
    // merge may not be (a merge takes microseconds): their states are built by hand below. On a
    // loaded machine a poll can oversleep an event too, so each must be caught at least once,
    // not in every trial.
    for e in [
        Event::ForkBranchA,
        Event::ForkBranchB,
        Event::ForkRecordA,
        Event::ForkRecordB,
        Event::CommitA,
        Event::CommitB,
    ] {
        assert!(killed(e) >= 1, "{e:?} was never caught in {trials} trials");
    }
}

/// A run killed once coder-a's work is committed (and recorded) while coder-b still waits for
/// its model: returns the project, the session id and coder-a's commit.
fn killed_mid_step() -> (GitProject, String, String) {
    let mut p = project(0, 30_000);
    let mut child = p.spawn(&["run", PIPELINE]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        assert!(Instant::now() < deadline, "coder-a did not finish");
        std::thread::sleep(Duration::from_millis(20));
        let Some(id) = session_of(&p) else { continue };
        let usage = p.status(&id)["usage"].clone();
        if usage
            .as_array()
            .is_some_and(|u| u.iter().any(|r| r["node"] == "coder-a"))
        {
            break id;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The resume must not wait for coder-b's model again.
    let responses = p.root().join("fixtures/slow.responses.yaml");
    let text = fs::read_to_string(&responses).unwrap();
    fs::write(
        &responses,
        text.replace("latency_ms: 30000", "latency_ms: 0"),
    )
    .unwrap();
    p.resnapshot();
    let a = p.rev(&format!("{REFS}/{id}+coder-a-1"));
    (p, id, a)
}

fn record(p: &GitProject, id: &str, leaf: &str) -> PathBuf {
    p.root()
        .join(".git/worktrees")
        .join(format!("orchestra-{id}+{leaf}"))
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "").unwrap();
}

#[test]
fn a_half_done_merge_with_stale_locks_is_redone_on_resume() {
    let (p, id, a) = killed_mid_step();
    let (branch, worktree) = p.branch_and_worktree(&id);
    let fork_a = format!("{branch}+coder-a-1");
    // The merge of coder-a's fork half written: merge state, a 0-byte staged file, locks on
    // the index, the session branch and coder-a's fork branch.
    p.git_in(
        &worktree,
        &["merge", "-q", "--no-commit", "--no-ff", &fork_a],
    );
    fs::write(worktree.join("orchestra-demo/greet_test.sh"), "").unwrap();
    p.git_in(&worktree, &["add", "orchestra-demo/greet_test.sh"]);
    touch(&record(&p, &id, "app").join("index.lock"));
    touch(
        &p.root()
            .join(".git/refs/heads")
            .join(format!("{branch}.lock")),
    );
    touch(
        &p.root()
            .join(".git/refs/heads")
            .join(format!("{fork_a}.lock")),
    );
    resume_and_check(&p, &id, Some(&a));
}

#[test]
fn half_made_fork_worktrees_are_made_again_on_resume() {
    let (p, id, a) = killed_mid_step();
    let (branch, _) = p.branch_and_worktree(&id);
    // coder-a's fork lost its worktree (its branch keeps the recorded work); coder-b's record
    // is half written and points at a branch that is gone.
    let fork_a_dir = p
        .root()
        .join(format!(".orchestra/worktrees/{id}/app+coder-a-1"));
    p.git(&[
        "worktree",
        "remove",
        "--force",
        fork_a_dir.to_str().unwrap(),
    ]);
    fs::remove_file(record(&p, &id, "app+coder-b-1").join("commondir")).unwrap();
    fs::remove_file(
        p.root()
            .join(".git/refs/heads")
            .join(format!("{branch}+coder-b-1")),
    )
    .unwrap();
    resume_and_check(&p, &id, Some(&a));
}

#[test]
fn a_merge_killed_after_the_first_fork_went_keeps_its_work() {
    let (p, id, a) = killed_mid_step();
    let (branch, worktree) = p.branch_and_worktree(&id);
    let fork_a = format!("{branch}+coder-a-1");
    // coder-a's fork fast-forwarded and removed, then a checkout half done in the session
    // worktree (files written, the branch not moved yet).
    p.git_in(&worktree, &["merge", "-q", "--ff-only", &fork_a]);
    let fork_a_dir = p
        .root()
        .join(format!(".orchestra/worktrees/{id}/app+coder-a-1"));
    p.git(&[
        "worktree",
        "remove",
        "--force",
        fork_a_dir.to_str().unwrap(),
    ]);
    p.git(&["branch", "-D", &fork_a]);
    fs::write(worktree.join("orchestra-demo/greet_test.sh"), "").unwrap();
    resume_and_check(&p, &id, Some(&a));
}
