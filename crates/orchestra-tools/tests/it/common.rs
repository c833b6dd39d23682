//! Test helpers: temporary repositories, git through its CLI, and tool calls.

use std::path::Path;
use std::process::Command;

use orchestra_tools::{Registry, RepoRoot};
use serde_json::Value;
use tempfile::TempDir;

/// A temporary directory holding `files` (path, content).
pub fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        write(dir.path(), path, content);
    }
    dir
}

/// Writes a file, creating its parent directories.
pub fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Runs `git` in `dir` with a fixed identity and no user or system configuration; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.autocrlf=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A git repository with `files` committed.
pub fn git_repo(files: &[(&str, &str)]) -> TempDir {
    let dir = dir_with(files);
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "initial"]);
    dir
}

/// A registry with the built-ins of `root` as repository `app`.
pub fn builtins(root: &Path, writable: bool) -> Registry {
    let mut r = Registry::new();
    r.add_repo_builtins(&RepoRoot::new("app", root, writable))
        .unwrap();
    r
}

/// Calls a tool that must succeed; returns its text.
pub async fn ok(r: &Registry, name: &str, args: Value) -> String {
    let out = r.call(name, args).await;
    assert!(!out.is_error, "{name} failed: {}", out.content);
    out.content
}

/// Calls a tool that must fail; returns its message.
pub async fn fails(r: &Registry, name: &str, args: Value) -> String {
    let out = r.call(name, args).await;
    assert!(out.is_error, "{name} should have failed: {}", out.content);
    out.content
}
