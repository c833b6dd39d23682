//! get-git-diff against real repositories made with the git CLI, compared with `git diff`.

use orchestra_tools::{Registry, RepoRoot, ToolLimits};
use serde_json::json;

use crate::common::{builtins, dir_with, fails, git, git_repo, ok, write};

fn lines(n: usize, tag: &str) -> String {
    (1..=n).map(|i| format!("{tag} line {i}\n")).collect()
}

#[tokio::test]
async fn working_tree_against_head_matches_git() {
    let dir = git_repo(&[
        ("a.txt", &lines(10, "a")),
        ("gone.txt", "bye\n"),
        ("sub/keep.txt", "keep\n"),
    ]);
    let root = dir.path();
    write(
        root,
        "a.txt",
        &lines(10, "a").replace("a line 5\n", "changed\n"),
    );
    std::fs::remove_file(root.join("gone.txt")).unwrap();
    write(root, "sub/new.txt", "brand new\n");
    let r = builtins(root, false);
    let ours = ok(&r, "app:get-git-diff", json!({})).await;
    // The tool shows new untracked files too; `git add -N` makes git show them the same way.
    git(root, &["add", "-N", "sub/new.txt"]);
    let theirs = git(root, &["diff", "HEAD"]);
    assert_eq!(ours, theirs);
    assert!(ours.contains("+brand new") && ours.contains("-a line 5\n+changed"));
}

#[tokio::test]
async fn between_revisions_matches_git_and_finds_renames() {
    let dir = git_repo(&[("old_name.rs", &lines(20, "code")), ("b.txt", "one\n")]);
    let root = dir.path();
    git(root, &["mv", "old_name.rs", "new_name.rs"]);
    write(root, "b.txt", "one\ntwo\n");
    std::fs::write(root.join("img.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "second"]);
    let r = builtins(root, false);
    let ours = ok(
        &r,
        "app:get-git-diff",
        json!({"base": "HEAD~1", "head": "HEAD"}),
    )
    .await;
    let theirs = git(root, &["diff", "-M", "HEAD~1", "HEAD"]);
    assert_eq!(ours, theirs);
    assert!(
        ours.contains("rename from old_name.rs\nrename to new_name.rs"),
        "{ours}"
    );
    assert!(
        ours.contains("Binary files /dev/null and b/img.bin differ"),
        "{ours}"
    );
    // Base only: from the revision to the working tree.
    write(root, "b.txt", "one\ntwo\nthree\n");
    let from_base = ok(
        &r,
        "app:get-git-diff",
        json!({"base": "HEAD~1", "path": "b.txt"}),
    )
    .await;
    assert_eq!(from_base, git(root, &["diff", "HEAD~1", "--", "b.txt"]));
}

#[tokio::test]
async fn no_changes_bad_revisions_and_missing_base() {
    let dir = git_repo(&[("a.txt", "a\n")]);
    let r = builtins(dir.path(), false);
    assert_eq!(
        ok(&r, "app:get-git-diff", json!({})).await,
        "no changes between HEAD and the working tree"
    );
    let e = fails(&r, "app:get-git-diff", json!({"base": "no-such-branch"})).await;
    assert!(e.starts_with("unknown revision `no-such-branch`"), "{e}");
    let e = fails(&r, "app:get-git-diff", json!({"head": "HEAD"})).await;
    assert!(e.starts_with("`head` needs a `base`"), "{e}");
}

#[tokio::test]
async fn a_repository_without_commits_shows_everything_as_new() {
    let dir = dir_with(&[("first.txt", "hello\n")]);
    git(dir.path(), &["init", "-q"]);
    let r = builtins(dir.path(), false);
    let diff = ok(&r, "app:get-git-diff", json!({})).await;
    assert!(
        diff.contains("new file mode 100644") && diff.contains("+hello"),
        "{diff}"
    );
}

#[tokio::test]
async fn a_subdirectory_root_sees_only_its_own_changes() {
    let dir = git_repo(&[("app/a.txt", "a\n"), ("other/b.txt", "b\n")]);
    write(dir.path(), "app/a.txt", "a2\n");
    write(dir.path(), "other/b.txt", "b2\n");
    let r = builtins(&dir.path().join("app"), false);
    let diff = ok(&r, "app:get-git-diff", json!({})).await;
    assert!(
        diff.contains("app/a.txt") && !diff.contains("other/b.txt"),
        "{diff}"
    );
}

#[tokio::test]
async fn big_diffs_are_truncated_with_a_summary() {
    let dir = git_repo(&[("big.txt", &lines(2000, "old"))]);
    write(dir.path(), "big.txt", &lines(2000, "new"));
    let mut r = Registry::new().with_limits(ToolLimits {
        max_output: 4096,
        ..ToolLimits::default()
    });
    r.add_repo_builtins(&RepoRoot::new("app", dir.path(), false))
        .unwrap();
    let diff = ok(&r, "app:get-git-diff", json!({})).await;
    assert!(diff.len() <= 4096, "{}", diff.len());
    assert!(
        diff.ends_with(
            "; the whole diff touches 1 files (+2000 -2000); give `path` to see one file or directory]"
        ),
        "{diff}"
    );
}

#[tokio::test]
async fn a_plain_directory_is_not_a_git_repository() {
    // Temporary directories are not inside a git checkout.
    let dir = dir_with(&[("a.txt", "a\n")]);
    let r = builtins(dir.path(), false);
    let e = fails(&r, "app:get-git-diff", json!({})).await;
    assert!(
        e.starts_with("repository `app` is not a git repository"),
        "{e}"
    );
}
