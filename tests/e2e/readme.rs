//! The README cannot rot: its first lines hold the two commands (the main job and the test
//! suite, which `.ci/run` runs exactly), and every command of it is run here, in order, in a
//! fresh copy of the project that is a git repository with a last commit to review.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::common::{Run, copy_dir, workspace_root};

const MAIN_JOB: &str = "cargo run --release -p orchestra-cli -- run pipelines/pr-review.yaml";
const TESTS: &str = "cargo test --workspace";

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).unwrap()
}

/// The README's command lines (indented code lines starting with `orchestra` or `cargo`), in order.
fn commands() -> Vec<String> {
    readme()
        .lines()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .filter(|l| {
            l.starts_with("orchestra ") || l.starts_with("cargo ") || l.contains("=... orchestra ")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_first_lines_give_the_main_job_and_the_test_command_and_ci_runs_exactly_that() {
    let cmds = commands();
    assert_eq!(cmds.first().map(String::as_str), Some(MAIN_JOB));
    assert_eq!(cmds.get(1).map(String::as_str), Some(TESTS));
    let text = readme();
    let head: Vec<&str> = text.lines().take(8).collect();
    assert!(
        head.contains(&format!("    {MAIN_JOB}").as_str()),
        "{head:?}"
    );
    let ci = std::fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
    let test_lines: Vec<&str> = ci
        .lines()
        .filter(|l| l.trim_start().starts_with("cargo test"))
        .collect();
    assert_eq!(
        test_lines,
        [TESTS],
        ".ci/run must run exactly the README's test command"
    );
}

/// A fresh copy of the project as a git repository (also what other tests run pr-review in).
pub(crate) struct Repo {
    _dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    home: PathBuf,
}

impl Repo {
    /// The project's pipelines and their files, committed twice so `HEAD~1..HEAD` has a diff.
    pub(crate) fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let ws = workspace_root();
        for d in ["pipelines", "prompts", "conditions", "fixtures"] {
            copy_dir(&ws.join(d), &root.join(d));
        }
        for f in ["orchestra.yaml", "README.md", ".gitignore"] {
            std::fs::copy(ws.join(f), root.join(f)).unwrap();
        }
        let repo = Repo {
            _dir: dir,
            root,
            home,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "the project"]);
        std::fs::create_dir_all(repo.root.join("src")).unwrap();
        std::fs::write(
            repo.root.join("src/lib.rs"),
            "pub fn parse(input: &str) -> usize {\n    input.len()\n}\n",
        )
        .unwrap();
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "add a parser"]);
        repo
    }

    /// The `HOME` of the commands run in it.
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    pub(crate) fn git(&self, args: &[&str]) {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=Reader",
                "-c",
                "user.email=reader@example.com",
            ])
            .args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    /// `orchestra ARGS` at the top of the repository, with a cleared environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        self.env(&mut cmd).args(args);
        cmd
    }

    /// `cmd` at the top of the repository, with a cleared environment (`HOME`, `PATH`).
    pub(crate) fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.current_dir(&self.root)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
    }

    /// Runs `orchestra ARGS` with `stdin` as its input.
    pub(crate) fn orchestra(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The id in the `session ID` line a command printed last.
pub(crate) fn session_of(run: &Run) -> Option<String> {
    run.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("session "))
        .map(|s| s.trim().to_owned())
}

fn exists(root: &Path, shown: &str) -> bool {
    root.join(shown).is_file()
}

#[test]
fn every_command_of_the_readme_runs_in_a_fresh_clone() {
    let repo = Repo::new();
    let mut session: Option<String> = None;
    let mut ran = 0;
    for cmd in commands() {
        if cmd == TESTS || cmd.starts_with("cargo install") {
            continue; // the test suite is what runs this; installing is cargo's business
        }
        if cmd.contains("=... ") {
            // Real-model commands need a key and the network: check they are well-formed only.
            let rest = cmd.split_once("=... ").unwrap().1;
            assert!(rest.starts_with("orchestra run pipelines/"), "{cmd}");
            let provider = rest.split_whitespace().last().unwrap();
            let compiled = repo.orchestra(
                &[
                    "compile",
                    "pipelines/pr-review.yaml",
                    "--provider",
                    provider,
                ],
                "",
            );
            assert_eq!(compiled.code, 0, "{cmd}\n{}", compiled.transcript());
            continue;
        }
        let line = cmd
            .strip_prefix("cargo run --release -p orchestra-cli -- ")
            .or_else(|| cmd.strip_prefix("orchestra "))
            .unwrap_or_else(|| panic!("not a command this test knows: {cmd}"));
        let id = session.clone().unwrap_or_default();
        let line = line.replace("SESSION", &id);
        let args: Vec<&str> = line.split_whitespace().collect();
        let stdin = if args[0] == "attach" {
            "/approve looks good\n"
        } else {
            ""
        };
        let run = repo.orchestra(&args, stdin);
        let expected = if line.contains("--max-steps 2") { 3 } else { 0 };
        assert_eq!(
            run.code,
            expected,
            "`{cmd}` (as `{line}`)\n{}",
            run.transcript()
        );
        if args[0] == "run" {
            session = Some(
                session_of(&run)
                    .unwrap_or_else(|| panic!("`{cmd}` printed no session\n{}", run.transcript())),
            );
        }
        if cmd == MAIN_JOB {
            let wrote = run
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("wrote "))
                .expect("the review's path");
            assert!(exists(&repo.root, wrote), "{wrote}");
            let review = std::fs::read_to_string(repo.root.join(wrote)).unwrap();
            assert!(
                review.contains("`src/lib.rs`"),
                "the review is about the last commit:\n{review}"
            );
            assert!(
                run.stdout.starts_with("completed: 5 steps"),
                "{}",
                run.stdout
            );
        }
        if args[0] == "attach" {
            assert!(run.stdout.contains("completed"), "{}", run.transcript());
        }
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} commands ran");
}

/// The main job against a real model (ignored unless built with `ORCHESTRA_REAL_LLM=1`; see
/// `build.rs`): the reviewers fan out, the critic loops 0 to 2 times, the synthesizer writes the
/// review, every step has its checkpoint, and the repository under review is left as it was.
#[test]
#[cfg_attr(
    not(real_llm),
    ignore = "calls a real model: set ORCHESTRA_REAL_LLM=1 and ANTHROPIC_API_KEY or OPENAI_API_KEY"
)]
fn real_llm_pr_review_runs_to_the_end() {
    let (provider, key) = if std::env::var("ANTHROPIC_API_KEY").is_ok_and(|k| !k.is_empty()) {
        ("anthropic", "ANTHROPIC_API_KEY")
    } else if std::env::var("OPENAI_API_KEY").is_ok_and(|k| !k.is_empty()) {
        ("openai", "OPENAI_API_KEY")
    } else {
        panic!("ORCHESTRA_REAL_LLM=1 needs ANTHROPIC_API_KEY or OPENAI_API_KEY");
    };
    let repo = Repo::new();
    let status_before = git_status(&repo);
    let out = Command::new(crate::binary::orchestra_bin())
        .args([
            "run",
            "pipelines/pr-review.yaml",
            "--provider",
            provider,
            "--json",
        ])
        .current_dir(&repo.root)
        .env_clear()
        .env("HOME", &repo.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(key, std::env::var(key).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], "completed");
    let steps = v["steps"].as_u64().unwrap();
    assert!(
        (3..=7).contains(&steps),
        "reviewers, critic x1..3 with 0..2 loops, synthesizer: {steps}"
    );
    assert_eq!(v["checkpoints"].as_u64(), Some(steps + 1));
    let review = v["state"]["review"].as_str().unwrap();
    assert!(review.len() > 100, "{review}");
    let path = v["outputs"][0].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), review);
    let detail = repo.orchestra(&["status", v["session"].as_str().unwrap(), "--json"], "");
    let d: serde_json::Value = serde_json::from_str(&detail.stdout).unwrap();
    let runs = |node: &str| {
        d["usage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["node"] == node)
            .map_or(0, |u| u["runs"].as_u64().unwrap())
    };
    assert!((1..=3).contains(&runs("critic")));
    assert_eq!(runs("security-reviewer"), runs("critic"));
    assert_eq!(runs("architecture-reviewer"), runs("critic"));
    assert_eq!(runs("synthesizer"), 1);
    assert_eq!(
        git_status(&repo),
        status_before,
        "the reviewed repository is untouched"
    );
}

fn git_status(repo: &Repo) -> String {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(&repo.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
