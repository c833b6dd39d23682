//! Escape attempts against the file tools: `..`, absolute paths and symbolic links out of the
//! repository, on real files, for reading, listing, searching and writing.

use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::json;
use tempfile::TempDir;

use crate::common::{builtins, dir_with, fails, ok};

/// A repository `repo/` next to an `outside/` directory holding a secret, with links out.
fn setup() -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let base = dir_with(&[
        ("outside/secret.txt", "TOP SECRET\n"),
        ("repo/src/main.rs", "fn main() {}\n"),
        ("repo/docs/guide.md", "read me\n"),
    ]);
    let repo = base.path().join("repo");
    let outside = base.path().join("outside");
    symlink(&outside, repo.join("out")).unwrap();
    symlink(outside.join("secret.txt"), repo.join("secret-link")).unwrap();
    symlink(outside.join("not-yet.txt"), repo.join("dangling")).unwrap();
    symlink("../docs", repo.join("src/docs-link")).unwrap();
    (base, repo, outside)
}

fn outside_untouched(outside: &Path) {
    let names: Vec<String> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "TOP SECRET\n"
    );
}

#[tokio::test]
async fn dot_dot_is_refused_everywhere() {
    let (_base, repo, outside) = setup();
    let r = builtins(&repo, true);
    for (tool, args) in [
        ("app:read-file", json!({"path": "../../etc/passwd"})),
        ("app:read-file", json!({"path": "../outside/secret.txt"})),
        (
            "app:read-file",
            json!({"path": "src/../../outside/secret.txt"}),
        ),
        ("app:list-files", json!({"path": ".."})),
        (
            "app:search-code",
            json!({"pattern": "SECRET", "path": "../outside"}),
        ),
        (
            "app:write-file",
            json!({"path": "../outside/new.txt", "content": "x"}),
        ),
        ("app:get-git-diff", json!({"path": "../outside"})),
    ] {
        let e = fails(&r, tool, args.clone()).await;
        assert!(e.contains("leaves repository `app`"), "{tool} {args}: {e}");
        assert!(!e.contains("TOP SECRET"));
    }
    outside_untouched(&outside);
}

#[tokio::test]
async fn absolute_paths_are_refused() {
    let (_base, repo, outside) = setup();
    let r = builtins(&repo, true);
    let secret = outside.join("secret.txt").display().to_string();
    for (tool, args) in [
        ("app:read-file", json!({"path": "/etc/passwd"})),
        ("app:read-file", json!({"path": secret})),
        ("app:list-files", json!({"path": "/"})),
        (
            "app:search-code",
            json!({"pattern": "root", "path": "/etc"}),
        ),
        (
            "app:write-file",
            json!({"path": outside.join("new.txt").display().to_string(), "content": "x"}),
        ),
    ] {
        let e = fails(&r, tool, args.clone()).await;
        assert!(e.contains("is an absolute path"), "{tool} {args}: {e}");
    }
    outside_untouched(&outside);
}

#[tokio::test]
async fn symlinks_out_are_refused_for_reads() {
    let (_base, repo, _outside) = setup();
    let r = builtins(&repo, false);
    for (tool, args) in [
        ("app:read-file", json!({"path": "out/secret.txt"})),
        ("app:read-file", json!({"path": "secret-link"})),
        ("app:list-files", json!({"path": "out"})),
        ("app:list-files", json!({"path": "out", "recursive": true})),
        (
            "app:search-code",
            json!({"pattern": "SECRET", "path": "out"}),
        ),
        (
            "app:search-code",
            json!({"pattern": "SECRET", "path": "secret-link"}),
        ),
    ] {
        let e = fails(&r, tool, args.clone()).await;
        assert!(
            e.contains("resolves outside repository `app` through a symbolic link"),
            "{tool} {args}: {e}"
        );
        assert!(!e.contains("TOP SECRET"));
    }
    // A missing file behind a link out is refused as an escape, not reported as missing.
    let e = fails(&r, "app:read-file", json!({"path": "out/nothing.txt"})).await;
    assert!(e.contains("through a symbolic link"), "{e}");
}

#[tokio::test]
async fn walks_do_not_follow_symlinks() {
    let (_base, repo, _outside) = setup();
    let r = builtins(&repo, false);
    let listing = ok(&r, "app:list-files", json!({"recursive": true})).await;
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert!(
        listing.contains("secret-link") && listing.contains("src/main.rs"),
        "{listing}"
    );
    let found = ok(&r, "app:search-code", json!({"pattern": "SECRET"})).await;
    assert!(found.starts_with("no matches"), "{found}");
}

#[tokio::test]
async fn symlinks_inside_the_repository_work() {
    let (_base, repo, _outside) = setup();
    let r = builtins(&repo, true);
    assert_eq!(
        ok(
            &r,
            "app:read-file",
            json!({"path": "src/docs-link/guide.md"})
        )
        .await,
        "read me\n"
    );
    ok(
        &r,
        "app:write-file",
        json!({"path": "src/docs-link/new.md", "content": "hi"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(repo.join("docs/new.md")).unwrap(),
        "hi"
    );
}

#[tokio::test]
async fn symlinks_out_are_refused_for_writes() {
    let (_base, repo, outside) = setup();
    let r = builtins(&repo, true);
    for path in ["out/new.txt", "out/deeper/new.txt", "secret-link"] {
        let e = fails(
            &r,
            "app:write-file",
            json!({"path": path, "content": "pwned"}),
        )
        .await;
        assert!(e.contains("through a symbolic link"), "{path}: {e}");
    }
    let e = fails(
        &r,
        "app:write-file",
        json!({"path": "dangling", "content": "pwned"}),
    )
    .await;
    assert_eq!(
        e,
        "`dangling` is a symbolic link that points nowhere; refusing to write through it"
    );
    outside_untouched(&outside);
}

#[tokio::test]
async fn git_internals_are_never_written() {
    let (_base, repo, _outside) = setup();
    std::fs::create_dir_all(repo.join(".git/hooks")).unwrap();
    symlink(repo.join(".git/hooks"), repo.join("hooks")).unwrap();
    let r = builtins(&repo, true);
    for path in [
        ".git/hooks/pre-commit",
        "src/../.git/config",
        "hooks/pre-commit",
        ".GIT/x",
    ] {
        let e = fails(
            &r,
            "app:write-file",
            json!({"path": path, "content": "#!/bin/sh\n"}),
        )
        .await;
        assert!(e.contains("inside `.git`"), "{path}: {e}");
    }
    assert!(!repo.join(".git/hooks/pre-commit").exists());
}
