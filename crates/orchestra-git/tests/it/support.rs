//! Test fixtures: real repositories made with the `git` CLI in temp dirs, a git runner with the
//! machine's config kept out, and a byte-for-byte snapshot of the user's checkout.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use orchestra_git::GitSettings;
use tempfile::TempDir;

/// Runs `git` in `dir` with a private HOME and no system config; panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_raw(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `git` and returns the whole output, whatever the exit status.
pub fn git_raw(dir: &Path, args: &[&str]) -> std::process::Output {
    let home = std::env::temp_dir().join("orchestra-git-tests-home");
    fs::create_dir_all(&home).unwrap();
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_COMMON_DIR")
        .output()
        .unwrap()
}

/// A user's repository: one commit, then a dirty tree (a modified tracked file and an
/// untracked file) snapshotted for [`TestRepo::assert_user_untouched`].
pub struct TestRepo {
    _dir: TempDir,
    pub path: PathBuf,
    pub settings: GitSettings,
    before: Snapshot,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo").canonicalize_or_create();
        git(&path, &["init", "-q", "-b", "main"]);
        git(&path, &["config", "user.name", "Test User"]);
        git(&path, &["config", "user.email", "test@example.com"]);
        write(&path, "README.md", "hello\n");
        write(&path, "src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
        write(&path, "src/shared.txt", "line 1\nline 2\nline 3\n");
        write(&path, ".gitignore", "target/\n");
        git(&path, &["add", "-A"]);
        git(&path, &["commit", "-q", "-m", "initial"]);
        // The user's own work in progress, which nothing may touch.
        write(&path, "README.md", "hello\nuser edit not committed\n");
        write(&path, "notes.txt", "untracked user notes\n");
        let before = Snapshot::take(&path);
        assert!(before.status.contains(" M README.md"), "{}", before.status);
        assert!(before.status.contains("?? notes.txt"), "{}", before.status);
        TestRepo {
            _dir: dir,
            path,
            settings: GitSettings::default(),
            before,
        }
    }

    /// The user's checkout is byte-for-byte as it was when the fixture was made.
    pub fn assert_user_untouched(&self) {
        let now = Snapshot::take(&self.path);
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

    /// Takes the user's state again (after a test added branches of the user's own).
    pub fn resnapshot(&mut self) {
        self.before = Snapshot::take(&self.path);
    }

    /// What `git worktree prune --dry-run -v` would prune (it reports on stderr).
    pub fn prunable(&self) -> String {
        let out = git_raw(&self.path, &["worktree", "prune", "--dry-run", "-v"]);
        assert!(out.status.success());
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path, args)
    }

    /// `git fsck --strict` is clean.
    pub fn assert_fsck_clean(&self) {
        let out = git_raw(
            &self.path,
            &["fsck", "--strict", "--no-dangling", "--no-progress"],
        );
        assert!(
            out.status.success(),
            "fsck failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.trim().is_empty(), "fsck reported: {text}");
    }

    /// `git worktree list --porcelain` as (path, branch) pairs, the main checkout left out.
    pub fn worktrees(&self) -> Vec<(PathBuf, String)> {
        let text = self.git(&["worktree", "list", "--porcelain"]);
        let mut out = Vec::new();
        for block in text.split("\n\n").skip(1).filter(|b| !b.trim().is_empty()) {
            let mut path = PathBuf::new();
            let mut branch = String::new();
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = PathBuf::from(p);
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = b.to_owned();
                }
            }
            out.push((path, branch));
        }
        out.sort();
        out
    }

    /// Local branch names.
    pub fn branches(&self) -> Vec<String> {
        self.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"])
            .lines()
            .map(ToOwned::to_owned)
            .collect()
    }
}

/// Writes a file (creating directories).
pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

pub fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

/// `path` resolved (worktree paths from git are canonical).
pub fn canon(path: &Path) -> PathBuf {
    path.canonicalize().unwrap()
}

trait CanonicalizeOrCreate {
    fn canonicalize_or_create(&self) -> PathBuf;
}

impl CanonicalizeOrCreate for PathBuf {
    fn canonicalize_or_create(&self) -> PathBuf {
        fs::create_dir_all(self).unwrap();
        self.canonicalize().unwrap()
    }
}

/// Where the tests' sessions put their branches (pipelines `p` and `pr-review`).
const SESSION_REFS: [&str; 2] = ["refs/heads/orchestra/p/", "refs/heads/orchestra/pr-review/"];

struct Snapshot {
    status: String,
    head: String,
    index: Vec<u8>,
    refs: String,
    files: BTreeMap<String, (Vec<u8>, SystemTime)>,
}

impl Snapshot {
    fn take(repo: &Path) -> Snapshot {
        let head = fs::read_to_string(repo.join(".git/HEAD")).unwrap();
        let index = fs::read(repo.join(".git/index")).unwrap();
        let mut files = BTreeMap::new();
        collect(repo, repo, &mut files);
        let refs = git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter(|l| !SESSION_REFS.iter().any(|p| l.starts_with(p)))
            .collect::<Vec<_>>()
            .join("\n");
        let status = git(repo, &["status", "--porcelain=v1", "--untracked-files=all"]);
        Snapshot {
            status,
            head,
            index,
            refs,
            files,
        }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, (Vec<u8>, SystemTime)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".git" || rel == ".orchestra/worktrees" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            collect(root, &path, files);
        } else {
            let meta = entry.metadata().unwrap();
            files.insert(rel, (fs::read(&path).unwrap(), meta.modified().unwrap()));
        }
    }
}
