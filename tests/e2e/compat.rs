//! Sessions stored by release 0.1 (`tests/fixtures/release-0.1/`) go on with this release, in
//! a project that was moved since: resume, attach and replay, with the outputs written into
//! the project where the command runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::common::{Run, orchestra, tests_dir};
use super::pty::Term;

const STOPPED_REVIEW: &str = "20261203-065537-39ef34";
const PAUSED_PLAN: &str = "20261203-065542-530b3c";
const STOPPED_EDIT: &str = "20261203-065542-ed7a22";
const COMPLETED_EDIT: &str = "20261203-065542-e7317f";
const INTERRUPTED_REVIEW: &str = "20261203-065542-f9ee77";

/// Where release 0.1 made the sessions (their stored paths point there).
const OLD_ROOT: &str = "/tmp/compat/proj";

/// The project of the fixture, moved: its repository (every branch, from the bundle) in a new
/// directory, and its database at the default place.
struct Moved {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Moved {
    fn new() -> Moved {
        let fixture = tests_dir().join("fixtures/release-0.1");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("moved-project");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let m = Moved {
            _dir: dir,
            root,
            home,
        };
        m.git(&["init", "-q", "-b", "scratch"]);
        let bundle = fixture.join("repo.bundle");
        m.git(&[
            "fetch",
            "-q",
            bundle.to_str().unwrap(),
            "refs/heads/*:refs/heads/*",
        ]);
        m.git(&["checkout", "-q", "main"]);
        std::fs::create_dir_all(m.root.join(".orchestra")).unwrap();
        std::fs::copy(
            fixture.join("orchestra.db"),
            m.root.join(".orchestra/orchestra.db"),
        )
        .unwrap();
        m
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.home)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, args: &[&str]) -> Run {
        orchestra(&self.root, &self.home, args)
    }

    fn status(&self, id: &str) -> Value {
        let run = self.run(&["status", id, "--json"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        serde_json::from_str(run.stdout.trim()).unwrap()
    }
}

/// Files under the old project root written since `since` (it exists only on the machine that
/// made the fixture): none may be, whatever this release resumes.
fn written_under_old_root(since: std::time::SystemTime) -> Vec<PathBuf> {
    fn walk(dir: &Path, since: std::time::SystemTime, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, since, out);
            } else if e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > since)
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(OLD_ROOT), since, &mut out);
    out
}

#[test]
fn sessions_of_release_0_1_resume_in_a_moved_project_and_write_there() {
    let since = std::time::SystemTime::now();
    let p = Moved::new();

    // A pr-review stopped at --max-steps 2: a plain resume completes it, and its review is
    // written into this project.
    let run = p.run(&["resume", STOPPED_REVIEW]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.starts_with("completed: "),
        "{}",
        run.transcript()
    );
    let review = p
        .root
        .join(format!(".orchestra/reviews/{STOPPED_REVIEW}.md"));
    assert!(review.is_file(), "{}", run.transcript());
    assert_eq!(p.status(STOPPED_REVIEW)["status"], "completed");

    // Interrupted by Ctrl-C after its first step: finished agents are not run again.
    let run = p.run(&["resume", INTERRUPTED_REVIEW]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("resuming session") && !run.stderr.contains("step 1:"),
        "{}",
        run.transcript()
    );
    assert!(
        p.root
            .join(format!(".orchestra/reviews/{INTERRUPTED_REVIEW}.md"))
            .is_file()
    );

    // Parallel writers stopped after their step: the session branch (its worktree is gone
    // with the old directory) goes on and ends with the tester's commit.
    let run = p.run(&["resume", STOPPED_EDIT]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.contains("tester"), "{}", run.transcript());
    assert_eq!(p.status(STOPPED_EDIT)["status"], "completed");
    let branch = format!("orchestra/parallel-edit/{STOPPED_EDIT}");
    let log = p.git(&["log", "--format=%s", &branch]);
    assert!(
        log.contains("coder-a: ") && log.contains("coder-b: "),
        "{log}"
    );
    let worktree = p
        .root
        .join(format!(".orchestra/worktrees/{STOPPED_EDIT}/app"));
    assert!(worktree.join("orchestra-demo/greet.sh").is_file());
    p.git(&["fsck", "--no-progress"]);

    // A completed session forks at checkpoint 1 and runs on from the commits stored then.
    let run = p.run(&["replay", COMPLETED_EDIT, "--checkpoint", "1"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("completed: "), "{}", run.transcript());

    assert_eq!(written_under_old_root(since), Vec::<PathBuf>::new());
}

#[test]
fn a_paused_chat_of_release_0_1_is_attached_and_approved() {
    let p = Moved::new();
    let mut t = Term::spawn(&p.root, &p.home, &["attach", PAUSED_PLAN]);
    t.expect(&format!("resuming session {PAUSED_PLAN}"));
    t.expect("you> ");
    t.line("/approve");
    t.expect("completed:");
    assert_eq!(t.wait(), 0, "{}", t.screen());
    assert_eq!(p.status(PAUSED_PLAN)["status"], "completed");
}

#[test]
fn sessions_of_release_0_1_are_listed() {
    let p = Moved::new();
    let run = p.run(&["status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let listed: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<&str> = listed.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    // Release 0.1 stored stopped and interrupted sessions as `failed` with a note; they are
    // migrated to statuses of their own.
    for (id, status) in [
        (STOPPED_REVIEW, "stopped"),
        (PAUSED_PLAN, "paused"),
        (STOPPED_EDIT, "stopped"),
        (COMPLETED_EDIT, "completed"),
        (INTERRUPTED_REVIEW, "interrupted"),
    ] {
        let s = listed.iter().find(|s| s["id"] == id).unwrap();
        assert_eq!(s["status"], status, "{id}: {s}");
    }
}

#[test]
fn sessions_of_release_0_1_are_shown_without_a_trace() {
    let p = Moved::new();
    let run = p.run(&["show", COMPLETED_EDIT]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("(this session was stored without prompts, answers or routing: an older release ran it)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("step 1: "), "{}", run.stdout);
    assert!(run.stdout.contains("  run    "), "{}", run.stdout);
    assert!(
        run.stdout.contains("state at checkpoint "),
        "{}",
        run.stdout
    );
    let json = p.run(&["show", STOPPED_REVIEW, "--checkpoint", "1", "--json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["traced"], false);
    assert_eq!(v["checkpoint"], 1);
    assert!(v["state"].is_object());
    let node = v["steps"][0]["runs"][0]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = p.run(&["show", STOPPED_REVIEW, "--node", &node]);
    assert_eq!(one.code, 0, "{}", one.transcript());
    assert!(
        one.stdout.contains(&format!("node {node}: ")),
        "{}",
        one.stdout
    );
}
