//! read-file, list-files, search-code and write-file on real files.

use orchestra_tools::{Registry, RepoRoot, ToolLimits};
use serde_json::json;

use crate::common::{builtins, dir_with, fails, git, git_repo, ok, write};

#[tokio::test]
async fn read_file_whole_and_by_lines() {
    let dir = dir_with(&[("src/lib.rs", "a\nb\nc\nd\ne\n")]);
    let r = builtins(dir.path(), false);
    assert_eq!(
        ok(&r, "app:read-file", json!({"path": "src/lib.rs"})).await,
        "a\nb\nc\nd\ne\n"
    );
    assert_eq!(
        ok(
            &r,
            "app:read-file",
            json!({"path": "src/lib.rs", "start_line": 2, "end_line": 3})
        )
        .await,
        "b\nc\n[showing lines 2-3 of 5]"
    );
    assert_eq!(
        ok(
            &r,
            "app:read-file",
            json!({"path": "./src/../src/lib.rs", "start_line": 5})
        )
        .await,
        "e\n[showing lines 5-5 of 5]"
    );
    let e = fails(
        &r,
        "app:read-file",
        json!({"path": "src/lib.rs", "start_line": 9}),
    )
    .await;
    assert_eq!(e, "start_line 9 is past the end of `src/lib.rs` (5 lines)");
    let e = fails(
        &r,
        "app:read-file",
        json!({"path": "src/lib.rs", "start_line": 3, "end_line": 2}),
    )
    .await;
    assert_eq!(e, "end_line (2) is before start_line (3)");
}

#[tokio::test]
async fn read_file_refuses_binary_directories_and_missing_files() {
    let dir = dir_with(&[("src/main.rs", "fn main() {}\n"), ("empty.txt", "")]);
    std::fs::write(
        dir.path().join("logo.png"),
        [0x89, b'P', b'N', b'G', 0, 0, 1],
    )
    .unwrap();
    let r = builtins(dir.path(), false);
    let e = fails(&r, "app:read-file", json!({"path": "logo.png"})).await;
    assert_eq!(
        e,
        "`logo.png` is a binary file (7 bytes); read-file only shows text"
    );
    let e = fails(&r, "app:read-file", json!({"path": "src"})).await;
    assert_eq!(
        e,
        "`src` is a directory; use `app:list-files` to see what it holds"
    );
    let e = fails(&r, "app:read-file", json!({"path": "src/mian.rs"})).await;
    assert_eq!(
        e,
        "no such file or directory `src/mian.rs` in repository `app`; did you mean `src/main.rs`?"
    );
    let e = fails(&r, "app:read-file", json!({"file": "src/main.rs"})).await;
    assert!(
        e.starts_with("invalid arguments: unknown field `file`"),
        "{e}"
    );
    assert_eq!(
        ok(&r, "app:read-file", json!({"path": "empty.txt"})).await,
        "[`empty.txt` is empty]"
    );
}

#[tokio::test]
async fn read_file_stops_at_the_output_cap_and_says_where_to_continue() {
    let text: String = (1..=200).map(|i| format!("line number {i:04}\n")).collect();
    let dir = dir_with(&[("big.txt", &text)]);
    let mut r = Registry::new().with_limits(ToolLimits {
        max_output: 1000,
        ..ToolLimits::default()
    });
    r.add_repo_builtins(&RepoRoot::new("app", dir.path(), false))
        .unwrap();
    let out = ok(&r, "app:read-file", json!({"path": "big.txt"})).await;
    assert!(out.len() <= 1000, "{} bytes", out.len());
    assert!(out.starts_with("line number 0001\n"));
    // 744 bytes of budget hold 43 lines of 17 bytes.
    assert!(
        out.ends_with(
            "line number 0043\n[showing lines 1-43 of 200: output limit reached; continue with start_line=44]"
        ),
        "{out}"
    );
    let next = ok(
        &r,
        "app:read-file",
        json!({"path": "big.txt", "start_line": 44}),
    )
    .await;
    assert!(next.starts_with("line number 0044\n"));
}

#[tokio::test]
async fn list_files_sorted_with_git_ignores() {
    let dir = git_repo(&[
        (".gitignore", "target/\n*.log\n"),
        ("src/main.rs", ""),
        ("src/util/mod.rs", ""),
        ("README.md", ""),
        ("b.txt", ""),
    ]);
    write(dir.path(), "target/debug/app", "bin");
    write(dir.path(), "debug.log", "x");
    write(dir.path(), "src/new.rs", "untracked but not ignored");
    let r = builtins(dir.path(), false);
    assert_eq!(
        ok(&r, "app:list-files", json!({})).await,
        ".gitignore\nREADME.md\nb.txt\nsrc/"
    );
    assert_eq!(
        ok(&r, "app:list-files", json!({"recursive": true})).await,
        ".gitignore\nREADME.md\nb.txt\nsrc/main.rs\nsrc/new.rs\nsrc/util/mod.rs"
    );
    assert_eq!(
        ok(&r, "app:list-files", json!({"path": "src"})).await,
        "src/main.rs\nsrc/new.rs\nsrc/util/"
    );
    assert_eq!(
        ok(&r, "app:list-files", json!({"path": "src/main.rs"})).await,
        "src/main.rs"
    );
    let limited = ok(&r, "app:list-files", json!({"recursive": true, "max": 2})).await;
    assert!(
        limited.starts_with(".gitignore\nREADME.md\n[2 entries shown; there are more"),
        "{limited}"
    );
}

#[tokio::test]
async fn list_files_outside_git_shows_everything_but_dot_git() {
    let dir = dir_with(&[("a.txt", ""), (".git/config", ""), ("z/y.txt", "")]);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let r = builtins(dir.path(), false);
    assert_eq!(
        ok(&r, "app:list-files", json!({"recursive": true})).await,
        "a.txt\nz/y.txt"
    );
    assert_eq!(
        ok(&r, "app:list-files", json!({"path": "empty"})).await,
        "[`empty` is empty]"
    );
}

#[tokio::test]
async fn search_code_literal_regex_and_case() {
    let dir = git_repo(&[
        ("src/a.rs", "fn main() {\n    helper(1);\n}\n"),
        ("src/b.rs", "// Helper docs\nfn helper(x: u32) {}\n"),
        ("notes.md", "nothing here\n"),
        (".gitignore", "gen/\n"),
    ]);
    write(dir.path(), "gen/out.rs", "helper(\n");
    std::fs::write(dir.path().join("blob.bin"), b"helper(\0\0").unwrap();
    let r = builtins(dir.path(), false);
    // Literal: `(` is not a regex group.
    assert_eq!(
        ok(&r, "app:search-code", json!({"pattern": "helper("})).await,
        "src/a.rs:2: helper(1);\nsrc/b.rs:2: fn helper(x: u32) {}"
    );
    assert_eq!(
        ok(
            &r,
            "app:search-code",
            json!({"pattern": "HELPER", "ignore_case": true, "path": "src/b.rs"})
        )
        .await,
        "src/b.rs:1: // Helper docs\nsrc/b.rs:2: fn helper(x: u32) {}"
    );
    assert_eq!(
        ok(
            &r,
            "app:search-code",
            json!({"pattern": r"^fn \w+\(\)", "regex": true})
        )
        .await,
        "src/a.rs:1: fn main() {"
    );
    let none = ok(
        &r,
        "app:search-code",
        json!({"pattern": "absent", "path": "src"}),
    )
    .await;
    assert_eq!(none, "no matches for `absent` in `src` (2 files searched)");
    let limited = ok(
        &r,
        "app:search-code",
        json!({"pattern": "helper", "ignore_case": true, "max_results": 1}),
    )
    .await;
    assert!(
        limited.starts_with("src/a.rs:2: helper(1);\n[stopped after 1 matches"),
        "{limited}"
    );
    let e = fails(
        &r,
        "app:search-code",
        json!({"pattern": "(", "regex": true}),
    )
    .await;
    assert!(e.starts_with("invalid regular expression"), "{e}");
}

#[tokio::test]
async fn write_file_creates_and_replaces() {
    let dir = git_repo(&[("README.md", "old\n")]);
    let r = builtins(dir.path(), true);
    assert_eq!(
        ok(
            &r,
            "app:write-file",
            json!({"path": "src/deep/new.rs", "content": "fn x() {}\n"})
        )
        .await,
        "wrote 10 bytes to `src/deep/new.rs` (new file)"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("src/deep/new.rs")).unwrap(),
        "fn x() {}\n"
    );
    assert_eq!(
        ok(
            &r,
            "app:write-file",
            json!({"path": "README.md", "content": "new\n"})
        )
        .await,
        "wrote 4 bytes to `README.md` (replaced)"
    );
    assert_eq!(
        git(dir.path(), &["status", "--porcelain"]),
        " M README.md\n?? src/\n"
    );
    let e = fails(&r, "app:write-file", json!({"path": "src", "content": ""})).await;
    assert_eq!(e, "`src` is a directory");
    let e = fails(
        &r,
        "app:write-file",
        json!({"path": "README.md/x", "content": ""}),
    )
    .await;
    assert_eq!(e, "`README.md` is not a directory");
}

#[tokio::test]
async fn write_file_refuses_oversized_content() {
    let dir = dir_with(&[]);
    let mut r = Registry::new().with_limits(ToolLimits {
        max_write_bytes: 10,
        ..ToolLimits::default()
    });
    r.add_repo_builtins(&RepoRoot::new("app", dir.path(), true))
        .unwrap();
    let e = fails(
        &r,
        "app:write-file",
        json!({"path": "x", "content": "01234567890"}),
    )
    .await;
    assert_eq!(e, "content is 11 bytes; write-file accepts at most 10");
    assert!(!dir.path().join("x").exists());
}

#[tokio::test]
async fn read_only_repositories_have_no_write_file() {
    let dir = dir_with(&[("a.txt", "keep\n")]);
    let r = builtins(dir.path(), false);
    let names: Vec<&str> = r.names().collect();
    assert_eq!(
        names,
        [
            "app:read-file",
            "app:list-files",
            "app:search-code",
            "app:get-git-diff"
        ]
    );
    let e = fails(
        &r,
        "app:write-file",
        json!({"path": "a.txt", "content": "x"}),
    )
    .await;
    assert!(e.starts_with("unknown tool `app:write-file`"), "{e}");
    assert!(r.definitions(&["app:write-file"]).is_err());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "keep\n"
    );
}

#[tokio::test]
async fn read_file_shows_the_start_of_a_line_longer_than_the_cap() {
    let long = format!("{}\nsecond\n", "é".repeat(2000));
    let dir = dir_with(&[("min.js", &long)]);
    let mut r = Registry::new().with_limits(ToolLimits {
        max_output: 1000,
        ..ToolLimits::default()
    });
    r.add_repo_builtins(&RepoRoot::new("app", dir.path(), false))
        .unwrap();
    let out = ok(&r, "app:read-file", json!({"path": "min.js"})).await;
    assert!(out.len() <= 1000, "{}", out.len());
    assert_eq!(
        out,
        format!(
            "{}\n[line 1 is 4001 bytes long; only its first 744 bytes are shown]\n\
             [showing lines 1-1 of 2: output limit reached; continue with start_line=2]",
            "é".repeat(372)
        )
    );
}

#[cfg(unix)]
#[tokio::test]
async fn named_pipes_are_refused_instead_of_blocking() {
    let dir = dir_with(&[("src/lib.rs", "")]);
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    let r = builtins(dir.path(), true);
    // Opening a pipe nobody writes to would block the call until the registry's timeout.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        fails(&r, "app:read-file", json!({"path": "pipe"})),
    )
    .await
    .expect("read-file returned instead of blocking on the pipe");
    assert_eq!(
        read,
        "`pipe` is not a regular file (a named pipe, socket or device); read-file only reads files"
    );
    let write = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        fails(
            &r,
            "app:write-file",
            json!({"path": "pipe", "content": "x"}),
        ),
    )
    .await
    .expect("write-file returned instead of blocking on the pipe");
    assert!(write.starts_with("`pipe` is not a regular file"), "{write}");
}
