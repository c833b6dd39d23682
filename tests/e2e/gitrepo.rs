//! A user's git repository in a temp dir, made with the real `git` CLI (no system or global
//! config), holding `pipelines/parallel-edit.yaml` and its fixture; the user's work in progress
//! (a modified tracked file, an untracked file) is snapshotted byte for byte so a test can check
//! that nothing of it changed. `orchestra` runs at the repository's top with the default
//! database (`.orchestra/orchestra.db`, inside the repository).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use serde_json::Value;

use super::common::{Run, workspace_root};

/// The user's repository.
pub(crate) struct GitProject {
    _dir: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    before: Snapshot,
}

impl GitProject {
    /// The repository with `pipelines/parallel-edit.yaml`, its fixture, `orchestra.yaml`, a few
    /// source files and `extra` files (path, text), all committed on `main`; then the user's
    /// uncommitted edits.
    pub(crate) fn new(extra: &[(&str, &str)]) -> GitProject {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let mut p = GitProject {
            _dir: dir,
            home,
            root,
            before: Snapshot::default(),
        };
        p.git(&["init", "-q", "-b", "main"]);
        p.git(&["config", "user.name", "Test User"]);
        p.git(&["config", "user.email", "user@example.com"]);
        let ws = workspace_root();
        for rel in [
            "orchestra.yaml",
            "pipelines/parallel-edit.yaml",
            "fixtures/parallel-edit.responses.yaml",
        ] {
            p.write(rel, &std::fs::read_to_string(ws.join(rel)).unwrap());
        }
        p.write("README.md", "# demo\n");
        p.write("src/shared.txt", "line 1\nline 2\nline 3\n");
        p.write(".gitignore", "target/\n");
        for (rel, text) in extra {
            p.write(rel, text);
        }
        p.git(&["add", "-A"]);
        p.git(&["commit", "-q", "-m", "initial"]);
        // The user's work in progress, which nothing may touch.
        p.write("README.md", "# demo\nan edit the user has not committed\n");
        p.write("notes.txt", "untracked notes of the user\n");
        p.before = Snapshot::take(&p);
        assert!(
            p.before.status.contains(" M README.md"),
            "{}",
            p.before.status
        );
        assert!(
            p.before.status.contains("?? notes.txt"),
            "{}",
            p.before.status
        );
        p
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn env(&self, cmd: &mut Command) {
        cmd.current_dir(&self.root)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_OPTIONAL_LOCKS", "0");
    }

    /// `git ARGS` in `dir`; panics with its stderr when it fails.
    pub(crate) fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        let out = cmd.current_dir(dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `git ARGS` at the repository's top.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.root.clone(), args)
    }

    /// Whether `git ARGS` succeeds.
    pub(crate) fn git_ok(&self, args: &[&str]) -> bool {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd.args(args).output().unwrap().status.success()
    }

    /// The commit a revision points at.
    pub(crate) fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }

    /// `orchestra ARGS` at the repository's top.
    pub(crate) fn orchestra(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        self.env(&mut cmd);
        let out = cmd.args(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `orchestra ARGS` with `input` on its stdin (not a terminal).
    pub(crate) fn orchestra_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        self.env(&mut cmd);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
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

    /// Starts `orchestra ARGS` in the background (stdout and stderr discarded).
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = Command::new(crate::binary::orchestra_bin());
        self.env(&mut cmd);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `status ID --json`.
    pub(crate) fn status(&self, id: &str) -> Value {
        self.json(&["status", id], 0)
    }

    /// The session branch and worktree of repo `app` recorded for a session.
    pub(crate) fn branch_and_worktree(&self, id: &str) -> (String, PathBuf) {
        let s = self.status(id);
        let app = &s["meta"]["git"]["app"];
        (
            app["branch"].as_str().unwrap().to_owned(),
            PathBuf::from(app["worktree"].as_str().unwrap()),
        )
    }

    /// `git worktree list --porcelain` as (path, branch) pairs, the main checkout first.
    pub(crate) fn worktrees(&self) -> Vec<(PathBuf, Option<String>)> {
        let text = self.git(&["worktree", "list", "--porcelain"]);
        let mut out = Vec::new();
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let path = block
                .lines()
                .find_map(|l| l.strip_prefix("worktree "))
                .unwrap();
            let branch = block
                .lines()
                .find_map(|l| l.strip_prefix("branch refs/heads/"))
                .map(str::to_owned);
            assert!(
                !block.lines().any(|l| l.starts_with("prunable")),
                "a stale worktree record: {block}"
            );
            out.push((PathBuf::from(path), branch));
        }
        out
    }

    /// `git fsck` finds nothing wrong (dangling objects are not errors).
    pub(crate) fn assert_fsck_clean(&self) {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        let out = cmd.args(["fsck", "--full", "--strict"]).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "git fsck failed:\n{text}");
        for line in text.lines() {
            assert!(
                line.starts_with("dangling ") || line.starts_with("Checking") || line.is_empty(),
                "git fsck: {line}"
            );
        }
    }

    /// Takes the user's state again (after a test made changes of the user's own).
    pub(crate) fn resnapshot(&mut self) {
        self.before = Snapshot::take(self);
    }

    /// The user's checkout is byte for byte as it was before the first `orchestra` command:
    /// status, HEAD, index, the user's own refs, and every file's bytes and mtime.
    pub(crate) fn assert_user_untouched(&self) {
        let now = Snapshot::take(self);
        assert_eq!(
            now.status, self.before.status,
            "git status of the user's checkout changed"
        );
        assert_eq!(now.head, self.before.head, "the user's HEAD changed");
        assert!(now.index == self.before.index, "the user's index changed");
        assert_eq!(now.refs, self.before.refs, "the user's own refs changed");
        assert_eq!(
            now.files.keys().collect::<Vec<_>>(),
            self.before.files.keys().collect::<Vec<_>>(),
            "files were added to or removed from the user's tree"
        );
        for (path, (bytes, mtime)) in &self.before.files {
            let (now_bytes, now_mtime) = &now.files[path];
            assert!(bytes == now_bytes, "{path} changed");
            assert_eq!(mtime, now_mtime, "{path} was rewritten");
        }
    }
}

/// What the user can see of their checkout.
#[derive(Default)]
struct Snapshot {
    status: String,
    head: String,
    index: Vec<u8>,
    refs: String,
    files: BTreeMap<String, (Vec<u8>, SystemTime)>,
}

impl Snapshot {
    fn take(p: &GitProject) -> Snapshot {
        let refs = p
            .git(&["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter(|l| !l.starts_with("refs/heads/orchestra/"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut files = BTreeMap::new();
        walk(&p.root, &p.root, &mut files);
        Snapshot {
            status: p.git(&["status", "--porcelain=v1", "--untracked-files=all"]),
            head: format!(
                "{} {}",
                p.git(&["symbolic-ref", "HEAD"]).trim(),
                p.git(&["rev-parse", "HEAD"]).trim()
            ),
            index: std::fs::read(p.root.join(".git/index")).unwrap(),
            refs,
            files,
        }
    }
}

/// Every file under `dir` except `.git/` and Orchestra's own `.orchestra/`.
fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, SystemTime)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".git" || rel == ".orchestra" {
            continue;
        }
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
            );
        }
    }
}
