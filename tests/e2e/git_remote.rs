//! Git across machines with the real binary: a writable repository declared by `url:` (a bare
//! repository on the filesystem, loopback only) is cloned by each project directory (a
//! "machine") into `.orchestra/clones/app`, and the session branch is pushed after every commit.
//! Machine A runs a three-writer pipeline and is killed with SIGKILL between two commits; machine
//! B resumes it from the pushed commits, replays it from a checkpoint, and cleans up (the remote
//! branches go too). Both machines share one database: a SQLite file, and PostgreSQL (a real
//! server, `orchestra_store_postgres::testing`). What git2 did is checked with the git CLI in the
//! bare repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::common::{Run, wait_until};

/// The pipeline every machine has: three writers one after the other, each writing one file.
/// `URL` and `LATENCY` are filled in.
const PIPELINE: &str = r#"name: remote-edit
providers:
  scripted: { kind: scripted, responses: ../fixtures/remote-edit.responses.yaml, latency_ms: LATENCY }
defaults: { provider: scripted, model: worker }
workspace:
  repos:
    app: { url: "URL", write: true }
agents:
  writer-1: { role: { text: You write files. }, tools: [app:write-file] }
  writer-2: { role: { text: You write files. }, tools: [app:write-file] }
  writer-3: { role: { text: You write files. }, tools: [app:write-file] }
graph:
  - { from: START, to: writer-1 }
  - { from: writer-1, to: writer-2 }
  - { from: writer-2, to: writer-3 }
  - { from: writer-3, to: END }
"#;

/// The scripted answers: each writer writes `out/writer-N.txt`, then says it did.
fn responses() -> String {
    let mut text = String::from("agents:\n");
    for n in 1..=3 {
        text.push_str(&format!(
            "  writer-{n}:\n    runs:\n      - turns:\n          - tool_calls:\n              - tool: \"app:write-file\"\n                args: {{ path: out/writer-{n}.txt, content: \"written by writer {n}\\n\" }}\n          - text: wrote out/writer-{n}.txt\n"
        ));
    }
    text
}

/// The shared remote, the machines' directories and the database they share.
pub(crate) struct Remote {
    dir: tempfile::TempDir,
    /// The bare repository every machine clones.
    pub(crate) url: PathBuf,
    /// `ORCHESTRA_DATABASE` of every machine.
    pub(crate) db: String,
    /// `PGPASSWORD`, for PostgreSQL.
    password: Option<String>,
}

/// `git ARGS` with no system or global config; panics with its stderr when it fails.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Someone Else")
        .env("GIT_AUTHOR_EMAIL", "else@example.com")
        .env("GIT_COMMITTER_NAME", "Someone Else")
        .env("GIT_COMMITTER_EMAIL", "else@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Remote {
    /// A bare repository with one commit on `main` (made in a scratch clone), and the database
    /// `db` (None: a SQLite file beside the machines).
    pub(crate) fn new(db: Option<(String, String)>) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().canonicalize().unwrap();
        let url = top.join("remote.git");
        git(&top, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
        let seed = top.join("seed");
        git(&top, &["clone", "-q", url.to_str().unwrap(), "seed"]);
        std::fs::write(seed.join("README.md"), "# app\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "initial"]);
        git(&seed, &["push", "-q", "origin", "HEAD:main"]);
        let (db, password) = match db {
            Some((url, pw)) => (url, Some(pw)),
            None => (top.join("shared.db").display().to_string(), None),
        };
        Remote {
            dir,
            url,
            db,
            password,
        }
    }

    /// A machine: a project directory `NAME` with the pipeline (`latency` ms per answer) and
    /// its fixture, its own `HOME`; no git repository of its own.
    pub(crate) fn machine(&self, name: &str, latency: u64) -> Machine {
        self.machine_at(name, latency, self.url.to_str().unwrap())
    }

    /// [`Remote::machine`] whose pipeline reaches the remote at `url` (a network URL of it).
    pub(crate) fn machine_at(&self, name: &str, latency: u64, url: &str) -> Machine {
        let root = self.dir.path().canonicalize().unwrap().join(name);
        let home = root.join(".home");
        std::fs::create_dir_all(root.join("pipelines")).unwrap();
        std::fs::create_dir_all(root.join("fixtures")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(root.join("orchestra.yaml"), "search_paths: [\".\"]\n").unwrap();
        let pipeline = PIPELINE
            .replace("URL", url)
            .replace("LATENCY", &latency.to_string());
        std::fs::write(root.join("pipelines/remote-edit.yaml"), pipeline).unwrap();
        std::fs::write(
            root.join("fixtures/remote-edit.responses.yaml"),
            responses(),
        )
        .unwrap();
        Machine {
            root,
            home,
            db: self.db.clone(),
            password: self.password.clone(),
            env: Vec::new(),
            db_in_yaml: false,
        }
    }

    /// `git ARGS` in the bare repository.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        git(&self.url, args)
    }

    /// The remote's branches under `orchestra/`.
    pub(crate) fn session_branches(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/orchestra/",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// The agents of the commits on `branch` since `main`, oldest first.
    pub(crate) fn agents(&self, branch: &str) -> Vec<String> {
        self.git(&[
            "log",
            "--reverse",
            "--format=%(trailers:key=Orchestra-Agent,valueonly,separator=)",
            &format!("main..{branch}"),
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
    }
}

/// One project directory sharing the remote and the database.
pub(crate) struct Machine {
    pub(crate) root: PathBuf,
    home: PathBuf,
    db: String,
    password: Option<String>,
    /// More environment of its commands.
    env: Vec<(String, String)>,
    /// Whether the database comes from `orchestra.yaml` rather than `ORCHESTRA_DATABASE`.
    db_in_yaml: bool,
}

impl Machine {
    /// Runs this machine's commands with `key=value` in their environment too.
    pub(crate) fn with_env(mut self, key: &str, value: &str) -> Machine {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        cmd.args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        if !self.db_in_yaml {
            cmd.env("ORCHESTRA_DATABASE", &self.db);
        }
        if let Some(pw) = &self.password {
            cmd.env("PGPASSWORD", pw);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `orchestra ARGS` in this machine's directory.
    pub(crate) fn orchestra(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `orchestra ARGS --json`, parsed; the exit code must be `code`.
    pub(crate) fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.orchestra(&all);
        assert_eq!(run.code, code, "{}", run.transcript());
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.transcript()))
    }

    /// Starts `orchestra ARGS` in the background.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Starts `orchestra ARGS` in the background, its stderr to `run.err` in the directory.
    pub(crate) fn spawn_logged(&self, args: &[&str]) -> Child {
        self.spawn_logged_to("run.err", args)
    }

    /// Replaces the keys of repository `app` in the pipeline (`{ KEYS, write: true }`).
    pub(crate) fn set_repo(&self, keys: &str) {
        let path = self.root.join("pipelines/remote-edit.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("app: {"))
            .unwrap()
            .to_owned();
        let text = text.replace(&line, &format!("    app: {{ {keys}, write: true }}"));
        std::fs::write(path, text).unwrap();
    }

    /// Names the shared database in this machine's `orchestra.yaml` (`database:`) instead of
    /// `ORCHESTRA_DATABASE` (a PostgreSQL password still comes from `PGPASSWORD`).
    pub(crate) fn database_in_yaml(mut self) -> Machine {
        let yaml = self.root.join("orchestra.yaml");
        let text = std::fs::read_to_string(&yaml).unwrap();
        std::fs::write(&yaml, format!("{text}database: \"{}\"\n", self.db)).unwrap();
        self.db_in_yaml = true;
        self
    }

    /// Starts `orchestra ARGS` in the background, its stderr to `NAME` in the directory.
    pub(crate) fn spawn_logged_to(&self, name: &str, args: &[&str]) -> Child {
        let err = std::fs::File::create(self.root.join(name)).unwrap();
        self.command(args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    }

    /// This machine's clone of the remote.
    pub(crate) fn clone_dir(&self) -> PathBuf {
        self.root.join(".orchestra/clones/app")
    }
}

/// The session branch of the only session whose branch is on the remote, once it is there.
pub(crate) fn wait_for_session_branch(remote: &Remote) -> String {
    wait_until("the session branch on the remote", || {
        remote
            .session_branches()
            .into_iter()
            .find(|b| !b.contains('+'))
    })
}

/// A's run is killed between writer-1's commit and writer-2's; B resumes, replays, cleans up.
fn two_machines(remote: &Remote) {
    let a = remote.machine("a", 600);
    let b = remote.machine("b", 0);
    let main = remote.git(&["rev-parse", "main"]);

    let mut run = a.spawn(&["run", "pipelines/remote-edit.yaml"]);
    let branch = wait_for_session_branch(remote);
    let id = branch.rsplit('/').next().unwrap().to_owned();
    // writer-1's commit is on the remote, and its task and checkpoint are stored: kill A then,
    // well before writer-2 (two answers of 600 ms) can commit.
    wait_until("writer-1's commit on the remote", || {
        (remote.agents(&branch) == ["writer-1"]).then_some(())
    });
    wait_until("checkpoint 1 stored", || {
        let s = a.json(&["status", &id], 0);
        let steps = s["checkpoints"].as_array().map_or(0, Vec::len);
        (steps >= 2).then_some(())
    });
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(remote.agents(&branch), ["writer-1"], "killed too late");
    let status = a.json(&["status", &id], 0);
    assert_ne!(status["status"], "completed", "{status}");

    // B has no clone yet: resume clones, fetches the session branch, goes on from writer-1's
    // pushed commit.
    assert!(!b.clone_dir().exists());
    let resumed = b.orchestra(&["resume", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    let pushed = format!(
        "branch {branch} holds the work on repository `app`, pushed to {}",
        remote.url.display()
    );
    assert!(
        resumed.transcript().contains(&pushed),
        "{}",
        resumed.transcript()
    );
    assert_eq!(
        remote.agents(&branch),
        ["writer-1", "writer-2", "writer-3"],
        "the remote session branch has every agent's commit, each once"
    );
    let files = remote.git(&["ls-tree", "-r", "--name-only", &branch]);
    for n in 1..=3 {
        assert!(files.contains(&format!("out/writer-{n}.txt")), "{files}");
    }
    remote.git(&["fsck", "--strict"]);
    // B's clone holds the same tip it pushed; B's status reads the session as completed.
    let tip = remote.git(&["rev-parse", &branch]);
    assert_eq!(git(&b.clone_dir(), &["rev-parse", &branch]), tip);
    assert_eq!(b.json(&["status", &id], 0)["status"], "completed");

    // Replay from checkpoint 1 on B: a new branch at writer-1's commit, pushed, run to the end.
    let cp1 = git(
        &b.clone_dir(),
        &["rev-list", "--max-count=1", "--grep=writer-1", &branch],
    );
    let replay = b.orchestra(&["replay", &id, "--checkpoint", "1"]);
    assert_eq!(replay.code, 0, "{}", replay.transcript());
    let forked: Vec<String> = remote
        .session_branches()
        .into_iter()
        .filter(|x| *x != branch && !x.contains('+'))
        .collect();
    assert_eq!(forked.len(), 1, "{forked:?}");
    assert_eq!(
        remote.agents(&forked[0]),
        ["writer-1", "writer-2", "writer-3"]
    );
    let fork_base = remote.git(&["rev-list", "--reverse", &format!("main..{}", forked[0])]);
    assert_eq!(
        fork_base.lines().next(),
        Some(cp1.trim()),
        "the fork starts at checkpoint 1's commit"
    );

    // Cleanup on B: --dry-run lists the remote branches and removes nothing; then they go.
    let dry = b.orchestra(&["cleanup", "--older-than", "0s", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.transcript());
    let url = remote.url.display().to_string();
    for br in [&branch, &forked[0]] {
        assert!(
            dry.stdout.contains(&format!("branch   {br} (at ")) && dry.stdout.contains(&url),
            "{}",
            dry.transcript()
        );
    }
    assert_eq!(remote.session_branches().len(), 2);
    let clean = b.orchestra(&["cleanup", "--older-than", "0s"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(
        remote.session_branches().is_empty(),
        "{:?}\n{}",
        remote.session_branches(),
        clean.transcript()
    );
    remote.git(&["fsck", "--strict"]);
    assert_eq!(
        remote.git(&["rev-parse", "main"]),
        main,
        "main is never touched"
    );

    // A third machine cannot replay a checkpoint whose commit is on no branch of the remote
    // any more: the error names the commit.
    let c = remote.machine("c", 0);
    let gone = c.orchestra(&["replay", &id, "--checkpoint", "2", "--no-run"]);
    assert_ne!(gone.code, 0, "{}", gone.transcript());
    assert!(
        gone.stderr.contains("it was never pushed") && gone.stderr.contains(&url),
        "{}",
        gone.transcript()
    );
}

#[test]
fn a_session_killed_on_one_machine_is_finished_on_another_through_the_remote() {
    two_machines(&Remote::new(None));
}

#[test]
fn the_same_on_postgresql() {
    let server = orchestra_store_postgres::testing::server().unwrap_or_else(|e| panic!("{e}"));
    let db = server.create_database().unwrap();
    let remote = Remote::new(Some((
        server.url_without_password(&db),
        server.password.clone(),
    )));
    two_machines(&remote);
}
