//! Starting, forking (replay) and reopening (resume) sessions.

use std::fs;

use orchestra_git::{
    CommitInfo, GitError, commit_all, head_sha, open_session, restore_fork, start_session,
    uncommitted_files,
};

use crate::support::{TestRepo, canon, git, read, write};

#[test]
fn start_session_branches_at_head_into_a_new_worktree() {
    let repo = TestRepo::new();
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();

    let s = start_session(&repo.path, "app", "pr-review", "s1", &repo.settings).unwrap();

    assert_eq!(s.branch, "orchestra/pr-review/s1");
    assert_eq!(s.base_sha, head);
    assert_eq!(
        canon(&s.worktree),
        repo.path.join(".orchestra/worktrees/s1/app")
    );
    assert_eq!(
        repo.git(&["rev-parse", "orchestra/pr-review/s1"]).trim(),
        head
    );
    // The worktree holds the committed tree, not the user's uncommitted edits.
    assert_eq!(read(&s.worktree, "README.md"), "hello\n");
    assert!(!s.worktree.join("notes.txt").exists());
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    assert_eq!(repo.worktrees(), [(canon(&s.worktree), s.branch.clone())]);
    let exclude = fs::read_to_string(repo.path.join(".git/info/exclude")).unwrap();
    assert!(
        exclude.lines().any(|l| l == "/.orchestra/worktrees/"),
        "{exclude}"
    );
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn uncommitted_files_counts_what_a_session_will_not_see() {
    let repo = TestRepo::new();
    // The fixture's user has a modified README.md and an untracked notes.txt.
    assert_eq!(uncommitted_files(&repo.path).unwrap(), 2);
    // Neither a session's worktree, nor ignored files, nor a staged change counted twice.
    start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&repo.path, "target/out.bin", "ignored\n");
    repo.git(&["add", "README.md"]);
    write(&repo.path, "src/new/deep.rs", "// new\n");
    assert_eq!(uncommitted_files(&repo.path).unwrap(), 3);
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "all of it"]);
    assert_eq!(uncommitted_files(&repo.path).unwrap(), 0);
    // From a subdirectory, the whole working tree counts.
    write(&repo.path, "README.md", "changed again\n");
    assert_eq!(uncommitted_files(&repo.path.join("src")).unwrap(), 1);
}

#[test]
fn the_exclude_entry_is_written_once() {
    let repo = TestRepo::new();
    start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    start_session(&repo.path, "app", "p", "s2", &repo.settings).unwrap();
    let exclude = fs::read_to_string(repo.path.join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude.matches("/.orchestra/worktrees/").count(),
        1,
        "{exclude}"
    );
    repo.assert_user_untouched();
}

#[test]
fn an_unborn_head_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let err = start_session(dir.path(), "app", "p", "s1", &Default::default()).unwrap_err();
    assert!(matches!(err, GitError::UnbornHead { .. }), "{err}");
    assert!(err.to_string().contains("no commits yet"), "{err}");
    assert!(!dir.path().join(".orchestra").exists());
}

#[test]
fn a_session_cannot_be_started_twice() {
    let repo = TestRepo::new();
    start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let err = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap_err();
    assert!(matches!(err, GitError::WorktreeExists { .. }), "{err}");
    // A branch left by someone else is not taken over either.
    repo.git(&["branch", "orchestra/p/s2"]);
    let err = start_session(&repo.path, "app", "p", "s2", &repo.settings).unwrap_err();
    assert!(matches!(err, GitError::BranchExists { .. }), "{err}");
    assert!(!repo.path.join(".orchestra/worktrees/s2").exists());
    repo.assert_fsck_clean();
}

#[test]
fn bad_session_ids_are_refused() {
    let repo = TestRepo::new();
    for bad in ["", "a/b", "a b", "..x", "x.lock"] {
        let err = start_session(&repo.path, "app", "p", bad, &repo.settings).unwrap_err();
        assert!(matches!(err, GitError::InvalidName { .. }), "{bad}: {err}");
    }
    assert_eq!(repo.branches(), ["main"]);
}

#[test]
fn a_repo_path_inside_the_repository_maps_to_the_same_place_in_the_worktree() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path.join("src"), "lib", "p", "s1", &repo.settings).unwrap();
    assert_eq!(s.subdir, std::path::Path::new("src"));
    assert!(s.work_dir().join("lib.rs").is_file());
    assert_eq!(canon(&s.repo_path), repo.path);
    repo.assert_user_untouched();
}

#[test]
fn restore_fork_puts_a_new_session_at_an_older_commit() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let mut shas = Vec::new();
    for step in 1..=3 {
        write(&s.worktree, "progress.txt", &format!("step {step}\n"));
        let info = CommitInfo {
            agent: "writer",
            session: "s1",
            pipeline: "p",
            step,
        };
        shas.push(
            commit_all(&s.worktree, &info, &repo.settings)
                .unwrap()
                .unwrap(),
        );
    }

    // Abbreviated ids work, as a user would type them.
    let fork = restore_fork(
        &repo.path,
        "app",
        "p",
        "s1-replay",
        &shas[0][..10],
        &repo.settings,
    )
    .unwrap();

    assert_eq!(fork.branch, "orchestra/p/s1-replay");
    assert_eq!(fork.base_sha, shas[0]);
    assert_eq!(head_sha(&fork.worktree).unwrap(), shas[0]);
    assert_eq!(read(&fork.worktree, "progress.txt"), "step 1\n");
    assert_eq!(git(&fork.worktree, &["status", "--porcelain"]), "");
    // The original session is where it was.
    assert_eq!(head_sha(&s.worktree).unwrap(), shas[2]);
    assert_eq!(read(&s.worktree, "progress.txt"), "step 3\n");
    assert_eq!(repo.worktrees().len(), 2);
    repo.assert_fsck_clean();
    repo.assert_user_untouched();

    let err = restore_fork(
        &repo.path,
        "app",
        "p",
        "s1-bad",
        "0123456789abcdef",
        &repo.settings,
    )
    .unwrap_err();
    assert!(matches!(err, GitError::CommitNotFound { .. }), "{err}");
}

#[test]
fn open_session_recreates_a_missing_worktree_from_the_branch() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&s.worktree, "work.txt", "done\n");
    let info = CommitInfo {
        agent: "a",
        session: "s1",
        pipeline: "p",
        step: 1,
    };
    let sha = commit_all(&s.worktree, &info, &repo.settings)
        .unwrap()
        .unwrap();

    // Still there: reopened as it is.
    let again = open_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    assert_eq!(again.worktree, s.worktree);
    assert_eq!(
        again.base_sha, s.base_sha,
        "the base comes from the branch's reflog"
    );

    // Deleted by hand: recreated at the branch tip.
    fs::remove_dir_all(&s.worktree).unwrap();
    let again = open_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    assert_eq!(head_sha(&again.worktree).unwrap(), sha);
    assert_eq!(read(&again.worktree, "work.txt"), "done\n");
    assert_eq!(
        repo.worktrees(),
        [(canon(&again.worktree), again.branch.clone())]
    );
    repo.assert_fsck_clean();
    repo.assert_user_untouched();

    let err = open_session(&repo.path, "app", "p", "nope", &repo.settings).unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err}");
}

#[test]
fn a_session_worktree_is_not_taken_for_the_users_repository() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let err = start_session(&s.worktree, "app", "p", "s2", &repo.settings).unwrap_err();
    assert!(matches!(err, GitError::NotSessionWorktree { .. }), "{err}");
    assert!(!s.worktree.join(".orchestra").exists());
    // A linked worktree of the user's own is a fine place to start from.
    let mine = repo.path.parent().unwrap().join("mine");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "feature",
        mine.to_str().unwrap(),
    ]);
    let from_mine = start_session(&mine, "app", "p", "s3", &repo.settings).unwrap();
    assert!(canon(&from_mine.worktree).starts_with(canon(&mine)));
    repo.assert_fsck_clean();
}
