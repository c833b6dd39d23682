//! Auto-commits after agent nodes.

use std::fs;

use orchestra_git::{CommitInfo, GitError, commit_all, head_sha, start_session};

use crate::support::{TestRepo, git, write};

fn info(agent: &str, step: u64) -> CommitInfo<'_> {
    CommitInfo {
        agent,
        session: "s1",
        pipeline: "p",
        step,
    }
}

#[test]
fn commit_all_commits_additions_modifications_and_deletions_with_trailers() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&s.worktree, "src/new.rs", "pub fn two() -> u32 { 2 }\n");
    write(
        &s.worktree,
        "src/lib.rs",
        "pub fn one() -> u32 {\n    11\n}\n",
    );
    fs::remove_file(s.worktree.join("src/shared.txt")).unwrap();
    write(&s.worktree, "target/build.log", "ignored by .gitignore\n");

    let sha = commit_all(&s.worktree, &info("coder", 3), &repo.settings)
        .unwrap()
        .unwrap();

    assert_eq!(git(&s.worktree, &["rev-parse", "HEAD"]).trim(), sha);
    assert_eq!(
        repo.git(&["rev-parse", "orchestra/p/s1"]).trim(),
        sha,
        "the session branch moved"
    );
    let changes = git(&s.worktree, &["show", "--name-status", "--format=", "HEAD"]);
    assert_eq!(changes, "M\tsrc/lib.rs\nA\tsrc/new.rs\nD\tsrc/shared.txt\n");
    let subject = git(&s.worktree, &["log", "-1", "--format=%s|%an <%ae>"]);
    assert_eq!(
        subject.trim(),
        "coder: step 3 of p|orchestra <orchestra@localhost>"
    );
    let trailers = git(&s.worktree, &["log", "-1", "--format=%(trailers)"]);
    assert_eq!(
        trailers.trim(),
        "Orchestra-Session: s1\nOrchestra-Agent: coder\nOrchestra-Step: 3"
    );
    // git agrees that the worktree is clean afterwards (the index libgit2 wrote is sound).
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn nothing_changed_means_no_commit() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    assert_eq!(
        commit_all(&s.worktree, &info("reader", 1), &repo.settings).unwrap(),
        None
    );
    // Touching a file without changing it is no change either.
    let lib = s.worktree.join("src/lib.rs");
    fs::write(&lib, fs::read(&lib).unwrap()).unwrap();
    assert_eq!(
        commit_all(&s.worktree, &info("reader", 2), &repo.settings).unwrap(),
        None
    );
    assert_eq!(head_sha(&s.worktree).unwrap(), s.base_sha);
}

#[test]
fn the_session_branch_holds_one_commit_per_writing_node() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let mut made = 0;
    for step in 1..=6u64 {
        // Every other node writes nothing.
        if step % 2 == 0 {
            write(&s.worktree, &format!("out/{step}.txt"), "x\n");
            made += 1;
        }
        commit_all(&s.worktree, &info("node", step), &repo.settings).unwrap();
    }
    let count = repo.git(&[
        "rev-list",
        "--count",
        &format!("{}..orchestra/p/s1", s.base_sha),
    ]);
    assert_eq!(count.trim(), made.to_string());
    let steps = repo.git(&[
        "log",
        "--format=%(trailers:key=Orchestra-Step,valueonly)",
        "orchestra/p/s1",
        "-3",
    ]);
    assert_eq!(
        steps.split_whitespace().collect::<Vec<_>>(),
        ["6", "4", "2"]
    );
    repo.assert_fsck_clean();
}

#[test]
fn commit_all_refuses_the_users_own_checkout() {
    let repo = TestRepo::new();
    let err = commit_all(&repo.path, &info("rogue", 1), &repo.settings).unwrap_err();
    assert!(matches!(err, GitError::NotSessionWorktree { .. }), "{err}");
    repo.assert_user_untouched();
}

#[test]
fn commit_all_refuses_a_worktree_on_a_foreign_branch() {
    let repo = TestRepo::new();
    let elsewhere = repo.path.parent().unwrap().join("elsewhere");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        elsewhere.to_str().unwrap(),
    ]);
    write(&elsewhere, "f.txt", "x\n");
    let err = commit_all(&elsewhere, &info("rogue", 1), &repo.settings).unwrap_err();
    assert!(
        err.to_string()
            .contains("not on a branch under `orchestra/`"),
        "{err}"
    );
    assert_eq!(git(&elsewhere, &["status", "--porcelain"]), "?? f.txt\n");
}

/// After a commit, git sees the worktree, the index and HEAD as one: nothing was missed and
/// the tree Orchestra wrote is the one git would write from the index.
fn assert_in_sync(worktree: &std::path::Path) {
    assert_eq!(
        git(
            worktree,
            &["status", "--porcelain", "--untracked-files=all"]
        ),
        ""
    );
    let from_index = git(worktree, &["write-tree"]);
    let head_tree = git(worktree, &["rev-parse", "HEAD^{tree}"]);
    assert_eq!(from_index, head_tree);
}

#[test]
fn successive_commits_track_every_kind_of_change() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let w = s.worktree.as_path();
    let mut step = 0;
    let mut commit = |what: &str| {
        step += 1;
        let sha = commit_all(w, &info("agent", step), &repo.settings).unwrap();
        assert!(sha.is_some(), "step {step} ({what}) made no commit");
        assert_in_sync(w);
    };

    write(w, "target/build.log", "ignored\n");
    write(w, "src/shared.txt", "LINE 1\nline 2\nline 3\n"); // same size, right after checkout
    commit("same-size edit");
    write(w, "src/shared.txt", "LINE 1\nLINE 2\nline 3\n"); // again, right after the last commit
    commit("same-size edit after a commit");
    write(w, "a/b/c.txt", "deep\n");
    commit("new nested directories");
    fs::remove_dir_all(w.join("src")).unwrap();
    commit("a directory deleted");
    fs::remove_file(w.join("README.md")).unwrap();
    write(w, "README.md/inner.txt", "a file became a directory\n");
    commit("file to directory");
    fs::remove_dir_all(w.join("a")).unwrap();
    write(w, "a", "a directory became a file\n");
    commit("directory to file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(w.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a", w.join("link")).unwrap();
        commit("mode change and symlink");
        assert_eq!(
            git(w, &["ls-files", "-s", "a", "link"])
                .split_whitespace()
                .step_by(4)
                .collect::<Vec<_>>(),
            ["100755", "120000"]
        );
    }
    write(w, ".gitignore", "");
    commit("ignore rule removed");
    assert_eq!(
        git(w, &["ls-files", "target"]),
        "target/build.log\n",
        "an unignored file is picked up"
    );

    // Past the clock granularity the directory cache is trusted: a new file still shows up
    // through its directory's mtime, and an in-place edit through the file's stat data.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    write(w, "README.md/second.txt", "new in an old directory\n");
    write(w, "target/build.log", "edited in place\n");
    commit("new file in an old directory, in-place edit");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    write(w, "target/build.log", "edited again\n");
    commit("in-place edit only");

    let count = repo.git(&[
        "rev-list",
        "--count",
        &format!("{}..{}", s.base_sha, s.branch),
    ]);
    assert_eq!(count.trim(), step.to_string());
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn changes_made_with_git_in_the_worktree_are_committed_too() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&s.worktree, "one.txt", "1\n");
    commit_all(&s.worktree, &info("a", 1), &repo.settings)
        .unwrap()
        .unwrap();
    // An agent's tool staged something with git itself (the index changed behind our back).
    write(&s.worktree, "two.txt", "2\n");
    git(&s.worktree, &["add", "two.txt"]);
    git(&s.worktree, &["rm", "-q", "one.txt"]);
    commit_all(&s.worktree, &info("a", 2), &repo.settings)
        .unwrap()
        .unwrap();
    assert_in_sync(&s.worktree);
    assert_eq!(
        git(&s.worktree, &["show", "--name-status", "--format=", "HEAD"]),
        "D\tone.txt\nA\ttwo.txt\n"
    );
}
