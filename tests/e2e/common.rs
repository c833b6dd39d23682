//! Running the real binary with a cleared environment, and the corpus in a temp directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// How long anything a test waits for (a line, a file, a process state) may take. Only a bound
/// on a hang: tests wait for the event itself, never for a fixed time.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Checks `ready` every few milliseconds until it gives a value, for at most [`PATIENCE`]; fails
/// naming `what` it waited for. For events only visible by looking (a file, a session's status).
pub(crate) fn wait_until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waited {PATIENCE:?} for {what}, in vain"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The workspace root (where `pipelines/` and `orchestra.yaml` live).
pub(crate) fn workspace_root() -> PathBuf {
    tests_dir().join("..")
}

/// The top-level `tests/` directory: this crate, its corpus (`bad/`, `good/`, `support/`,
/// `runtime/`), its snapshots and its fixtures.
pub(crate) fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The output of one run of the binary.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr in one text, for snapshots.
    pub(crate) fn transcript(&self) -> String {
        let mut s = format!("exit code: {}\n", self.code);
        if !self.stdout.is_empty() {
            s.push_str("--- stdout\n");
            s.push_str(&self.stdout);
        }
        if !self.stderr.is_empty() {
            s.push_str("--- stderr\n");
            s.push_str(&self.stderr);
        }
        s
    }
}

/// Runs `orchestra ARGS` in `cwd` with only `HOME` set (to `home`).
pub(crate) fn orchestra(cwd: &Path, home: &Path, args: &[&str]) -> Run {
    let out = Command::new(crate::binary::orchestra_bin())
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("HOME", home)
        .output()
        .expect("the orchestra binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies `from` into `to` recursively, keeping file modes (executable conditions).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A temp directory holding the corpus: `support/` at its root (orchestra.yaml, prompts,
/// conditions, fixtures, home/), with `bad/` and `good/` beside it.
pub(crate) struct Corpus {
    pub(crate) dir: tempfile::TempDir,
}

impl Corpus {
    pub(crate) fn new() -> Corpus {
        let tests = tests_dir();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&tests.join("support"), dir.path());
        copy_dir(&tests.join("bad"), &dir.path().join("bad"));
        copy_dir(&tests.join("good"), &dir.path().join("good"));
        Corpus { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// Runs `orchestra ARGS` at the corpus root.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        orchestra(self.root(), &self.home(), args)
    }

    /// insta settings that hide the temp directory.
    pub(crate) fn settings(&self, snapshot_dir: &str) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path(tests_dir().join("snapshots").join(snapshot_dir));
        s.set_prepend_module_to_snapshot(false);
        s.set_omit_expression(true);
        let root = self.root().to_string_lossy().into_owned();
        s.add_filter(&regex_escape(&root), "[TMP]");
        if let Ok(canon) = std::fs::canonicalize(self.root()) {
            s.add_filter(&regex_escape(&canon.to_string_lossy()), "[TMP]");
        }
        s
    }
}

/// Escapes regex metacharacters (insta filters are regexes).
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Runs `check` for every item, then fails listing every item whose check panicked (so one
/// changed snapshot does not hide the others).
pub(crate) fn check_all<T: std::fmt::Display>(items: &[T], check: impl Fn(&T)) {
    let failed: Vec<String> = items
        .iter()
        .filter(|item| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(item))).is_err()
        })
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "failing cases: {}", failed.join(", "));
}
