//! Listing and removing sessions: only Orchestra's branches, never a protected session's, and
//! a dry run removes nothing.

use std::fs;
use std::time::{Duration, SystemTime};

use orchestra_git::{
    CleanupOptions, CommitInfo, Removed, cleanup, commit_all, fork_worktree, list_session_branches,
    remove_session, start_session,
};

use crate::support::{TestRepo, canon, git, write};

/// Sessions `old` (with a fork) and `live`, plus branches that are not Orchestra's.
fn populated() -> TestRepo {
    let mut repo = TestRepo::new();
    let old = start_session(&repo.path, "app", "p", "old", &repo.settings).unwrap();
    write(&old.worktree, "a.txt", "a\n");
    let info = CommitInfo {
        agent: "w",
        session: "old",
        pipeline: "p",
        step: 1,
    };
    commit_all(&old.worktree, &info, &repo.settings)
        .unwrap()
        .unwrap();
    fork_worktree(&old, "w", 2, &repo.settings).unwrap();
    start_session(&repo.path, "app", "p", "live", &repo.settings).unwrap();
    repo.git(&["branch", "feature/x"]);
    repo.git(&["branch", "orchestra-notes"]);
    repo.git(&["branch", "orchestra/not/a/session"]);
    repo.resnapshot();
    repo
}

fn keep_live(session: &str) -> bool {
    session == "live"
}

#[test]
fn branches_are_listed_with_their_sessions_and_worktrees() {
    let repo = populated();
    let list = list_session_branches(&repo.path, &repo.settings).unwrap();
    let names: Vec<_> = list.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        ["orchestra/p/live", "orchestra/p/old", "orchestra/p/old+w-2"]
    );
    let fork = &list[2];
    assert_eq!(fork.session, "old");
    assert_eq!(fork.pipeline, "p");
    assert_eq!(fork.fork, Some(("w".to_owned(), 2)));
    assert_eq!(
        fork.worktree.as_deref().map(canon),
        Some(repo.path.join(".orchestra/worktrees/old/app+w-2"))
    );
    let age = SystemTime::now()
        .duration_since(fork.last_activity)
        .unwrap();
    assert!(age < Duration::from_secs(60), "{age:?}");
}

#[test]
fn dry_run_lists_what_would_go_and_removes_nothing() {
    let repo = populated();
    let branches = repo.branches();
    let worktrees = repo.worktrees();
    let options = CleanupOptions {
        older_than: None,
        keep: &keep_live,
        dry_run: true,
        now: SystemTime::now(),
    };

    let removed = cleanup(&repo.path, &repo.settings, &options).unwrap();

    let branches_listed: Vec<_> = removed
        .iter()
        .filter_map(|r| match r {
            Removed::Branch { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(branches_listed, ["orchestra/p/old", "orchestra/p/old+w-2"]);
    assert_eq!(
        removed
            .iter()
            .filter(|r| matches!(r, Removed::Worktree { .. }))
            .count(),
        2
    );
    assert_eq!(repo.branches(), branches);
    assert_eq!(repo.worktrees(), worktrees);
    repo.assert_user_untouched();
}

#[test]
fn cleanup_removes_finished_sessions_only_and_never_foreign_branches() {
    let repo = populated();
    let options = CleanupOptions {
        older_than: None,
        keep: &keep_live,
        dry_run: false,
        now: SystemTime::now(),
    };

    let removed = cleanup(&repo.path, &repo.settings, &options).unwrap();

    assert_eq!(removed.len(), 4, "{removed:?}");
    assert_eq!(
        repo.branches(),
        [
            "feature/x",
            "main",
            "orchestra-notes",
            "orchestra/not/a/session",
            "orchestra/p/live"
        ]
    );
    let live = repo.path.join(".orchestra/worktrees/live/app");
    assert_eq!(
        repo.worktrees(),
        [(canon(&live), "orchestra/p/live".to_owned())]
    );
    assert!(!repo.path.join(".orchestra/worktrees/old").exists());
    // git has nothing left to prune: the records went with the worktrees.
    assert_eq!(repo.prunable(), "");
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn the_age_threshold_keeps_recent_sessions() {
    let repo = populated();
    let keep_none = |_: &str| false;
    let recent = CleanupOptions {
        older_than: Some(Duration::from_secs(7 * 86_400)),
        keep: &keep_none,
        dry_run: false,
        now: SystemTime::now(),
    };
    assert_eq!(cleanup(&repo.path, &repo.settings, &recent).unwrap(), []);
    assert_eq!(repo.worktrees().len(), 3);

    let later = CleanupOptions {
        now: SystemTime::now() + Duration::from_secs(8 * 86_400),
        ..recent
    };
    let removed = cleanup(&repo.path, &repo.settings, &later).unwrap();
    assert_eq!(
        removed
            .iter()
            .filter(|r| matches!(r, Removed::Branch { .. }))
            .count(),
        3
    );
    assert_eq!(repo.worktrees(), []);
    assert_eq!(
        repo.branches(),
        [
            "feature/x",
            "main",
            "orchestra-notes",
            "orchestra/not/a/session"
        ]
    );
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn stale_worktree_records_are_pruned() {
    let repo = populated();
    // Someone deleted the live session's worktree by hand; git still has its record.
    fs::remove_dir_all(repo.path.join(".orchestra/worktrees/live")).unwrap();
    assert!(repo.prunable().contains("live"));

    let keep_all = |_: &str| true;
    let options = CleanupOptions {
        older_than: None,
        keep: &keep_all,
        dry_run: false,
        now: SystemTime::now(),
    };
    let removed = cleanup(&repo.path, &repo.settings, &options).unwrap();

    assert_eq!(
        removed,
        [Removed::StaleRecord {
            name: "orchestra-live+app".to_owned()
        }]
    );
    assert_eq!(repo.prunable(), "");
    assert!(
        repo.branches().contains(&"orchestra/p/live".to_owned()),
        "the kept session's branch stays"
    );
    repo.assert_fsck_clean();
}

#[test]
fn remove_session_leaves_a_worktree_outside_the_worktrees_dir_alone() {
    let repo = populated();
    let elsewhere = repo.path.parent().unwrap().join("elsewhere");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "orchestra/p/mine",
        elsewhere.to_str().unwrap(),
    ]);

    let removed = remove_session(&repo.path, "mine", &repo.settings, false).unwrap();

    assert_eq!(removed, []);
    assert!(elsewhere.join("README.md").is_file());
    assert!(repo.branches().contains(&"orchestra/p/mine".to_owned()));
    assert_eq!(git(&elsewhere, &["status", "--porcelain"]), "");

    let removed = remove_session(&repo.path, "old", &repo.settings, false).unwrap();
    assert_eq!(
        removed
            .iter()
            .filter(|r| matches!(r, Removed::Branch { .. }))
            .count(),
        2
    );
    assert_eq!(repo.worktrees().len(), 2);
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn remove_session_keeps_a_worktree_with_uncommitted_work() {
    let repo = populated();
    let list = list_session_branches(&repo.path, &repo.settings).unwrap();
    let main = list
        .iter()
        .find(|b| b.name == "orchestra/p/old")
        .and_then(|b| b.worktree.clone())
        .unwrap();
    write(&main, "notes.txt", "not committed\n");

    let removed = remove_session(&repo.path, "old", &repo.settings, false).unwrap();

    // The fork goes; the worktree with work in it and its branch stay, file and all.
    assert!(
        removed
            .iter()
            .all(|r| !matches!(r, Removed::Branch { name, .. } if name == "orchestra/p/old")),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|r| matches!(r, Removed::Branch { name, .. } if name == "orchestra/p/old+w-2"))
    );
    assert_eq!(
        fs::read_to_string(main.join("notes.txt")).unwrap(),
        "not committed\n"
    );
    assert!(repo.branches().contains(&"orchestra/p/old".to_owned()));
    assert_eq!(git(&main, &["status", "--porcelain"]), "?? notes.txt\n");
    repo.assert_fsck_clean();
}
