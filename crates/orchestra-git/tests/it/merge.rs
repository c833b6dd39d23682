//! Parallel writers: forks and merging them back, clean and conflicting, per `on_conflict`.

use std::fs;

use orchestra_git::{
    AgentWorktree, CommitInfo, ConflictMode, GitError, MergeKind, MergeOutcome, SessionRepo,
    abort_merge, commit_all, fork_worktree, head_sha, merge_back, start_session,
};

use crate::support::{TestRepo, canon, git, git_raw, read, write};

/// A session with a first commit, and two forks made at step 2.
fn setup(repo: &TestRepo) -> (SessionRepo, AgentWorktree, AgentWorktree) {
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&s.worktree, "plan.txt", "plan\n");
    commit_all(&s.worktree, &info("planner", 1), &repo.settings)
        .unwrap()
        .unwrap();
    let a = fork_worktree(&s, "writer-a", 2, &repo.settings).unwrap();
    let b = fork_worktree(&s, "writer-b", 2, &repo.settings).unwrap();
    (s, a, b)
}

fn info(agent: &str, step: u64) -> CommitInfo<'_> {
    CommitInfo {
        agent,
        session: "s1",
        pipeline: "p",
        step,
    }
}

fn edit(repo: &TestRepo, fork: &AgentWorktree, file: &str, text: &str) {
    write(&fork.path, file, text);
    commit_all(&fork.path, &info(&fork.agent, fork.step), &repo.settings)
        .unwrap()
        .unwrap();
}

#[test]
fn forks_are_branched_from_the_session_tip_into_their_own_worktrees() {
    let repo = TestRepo::new();
    let (s, a, b) = setup(&repo);
    assert_eq!(a.branch, "orchestra/p/s1+writer-a-2");
    assert_eq!(a.base_sha, head_sha(&s.worktree).unwrap());
    assert_eq!(
        canon(&a.path),
        repo.path.join(".orchestra/worktrees/s1/app+writer-a-2")
    );
    assert_eq!(read(&a.path, "plan.txt"), "plan\n");
    let listed: Vec<String> = repo.worktrees().into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        listed,
        [s.branch.clone(), a.branch.clone(), b.branch.clone()]
    );
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn clean_merges_fast_forward_then_merge_and_remove_the_forks() {
    let repo = TestRepo::new();
    let (s, a, b) = setup(&repo);
    edit(&repo, &a, "src/a.txt", "from a\n");
    edit(&repo, &b, "src/b.txt", "from b\n");

    let outcome = merge_back(
        &s,
        &[a.clone(), b.clone()],
        ConflictMode::Pause,
        &repo.settings,
    )
    .unwrap();

    let MergeOutcome::Merged {
        sha,
        merged,
        conflicts,
    } = outcome
    else {
        panic!("expected a clean merge, got {outcome:?}");
    };
    assert!(conflicts.is_empty());
    let kinds: Vec<_> = merged.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MergeKind::FastForward, MergeKind::Merged]);
    assert_eq!(sha, head_sha(&s.worktree).unwrap());
    assert_eq!(read(&s.worktree, "src/a.txt"), "from a\n");
    assert_eq!(read(&s.worktree, "src/b.txt"), "from b\n");
    // A real merge commit: two parents, a's side first, with the trailers.
    let parents = git(&s.worktree, &["log", "-1", "--format=%P"]);
    assert_eq!(parents.split_whitespace().count(), 2);
    let trailers = git(
        &s.worktree,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Orchestra-Merge,valueonly)",
        ],
    );
    assert_eq!(trailers.trim(), b.branch);
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    // The forks are gone: worktrees, records and branches.
    assert!(!a.path.exists() && !b.path.exists());
    assert_eq!(repo.worktrees(), [(canon(&s.worktree), s.branch.clone())]);
    assert_eq!(repo.branches(), ["main", "orchestra/p/s1"]);
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn a_fork_without_commits_is_up_to_date() {
    let repo = TestRepo::new();
    let (s, a, b) = setup(&repo);
    edit(&repo, &b, "src/b.txt", "from b\n");
    let outcome = merge_back(&s, &[a, b], ConflictMode::Fail, &repo.settings).unwrap();
    let MergeOutcome::Merged { merged, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let kinds: Vec<_> = merged.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MergeKind::UpToDate, MergeKind::FastForward]);
}

/// Both forks change the same line of `src/shared.txt`.
fn conflicting(repo: &TestRepo) -> (SessionRepo, AgentWorktree, AgentWorktree) {
    let (s, a, b) = setup(repo);
    edit(repo, &a, "src/shared.txt", "line 1\nline 2 by a\nline 3\n");
    edit(repo, &b, "src/shared.txt", "line 1\nline 2 by b\nline 3\n");
    (s, a, b)
}

#[test]
fn on_conflict_agent_commits_the_markers_and_reports_both_sides() {
    let repo = TestRepo::new();
    let (s, a, b) = conflicting(&repo);

    let outcome = merge_back(&s, &[a, b.clone()], ConflictMode::Agent, &repo.settings).unwrap();

    let MergeOutcome::Merged {
        merged, conflicts, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(merged[1].kind, MergeKind::Conflicted);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].agent, "writer-b");
    let [file] = conflicts[0].files.as_slice() else {
        panic!("{conflicts:?}")
    };
    assert_eq!(file.path, "src/shared.txt");
    assert_eq!(file.base.as_deref(), Some("line 1\nline 2\nline 3\n"));
    assert_eq!(file.ours.as_deref(), Some("line 1\nline 2 by a\nline 3\n"));
    assert_eq!(
        file.theirs.as_deref(),
        Some("line 1\nline 2 by b\nline 3\n")
    );
    let marked = file.with_markers.as_deref().unwrap();
    assert!(
        marked.contains("<<<<<<< orchestra/p/s1\nline 2 by a\n=======\nline 2 by b\n>>>>>>> "),
        "{marked}"
    );
    // Committed as it is, so the next agent finds the markers in the session worktree.
    assert_eq!(read(&s.worktree, "src/shared.txt"), marked);
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    let trailers = git(
        &s.worktree,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Orchestra-Conflict,valueonly)",
        ],
    );
    assert_eq!(trailers.trim(), "src/shared.txt");
    assert!(!b.path.exists());
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn on_conflict_pause_leaves_the_merge_for_a_human_and_continues_after() {
    let repo = TestRepo::new();
    let (s, a, b) = conflicting(&repo);
    let c = fork_worktree(&s, "writer-c", 2, &repo.settings).unwrap();
    edit(&repo, &c, "src/c.txt", "from c\n");

    let outcome = merge_back(
        &s,
        &[a, b.clone(), c.clone()],
        ConflictMode::Pause,
        &repo.settings,
    )
    .unwrap();

    let MergeOutcome::Stopped {
        merged,
        conflict,
        remaining,
        sha,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(merged.len(), 1);
    assert_eq!(conflict.paths(), ["src/shared.txt"]);
    assert_eq!(remaining, [b.clone(), c.clone()]);
    assert_eq!(sha, head_sha(&s.worktree).unwrap());
    // Mid-merge, as `git merge` would leave it.
    assert_eq!(
        git(&s.worktree, &["status", "--porcelain"]),
        "UU src/shared.txt\n"
    );
    assert!(
        git_raw(&s.worktree, &["rev-parse", "-q", "--verify", "MERGE_HEAD"])
            .status
            .success()
    );
    assert!(
        b.path.exists() && c.path.exists(),
        "unmerged forks are kept"
    );

    // Not resolved yet: refused, nothing lost.
    let err = merge_back(&s, &remaining, ConflictMode::Pause, &repo.settings).unwrap_err();
    assert!(
        matches!(err, GitError::UnresolvedConflicts { ref files, .. } if files == &["src/shared.txt"]),
        "{err}"
    );

    // The human resolves (without `git add`), then the session resumes.
    write(
        &s.worktree,
        "src/shared.txt",
        "line 1\nline 2 by a and b\nline 3\n",
    );
    let outcome = merge_back(&s, &remaining, ConflictMode::Pause, &repo.settings).unwrap();
    let MergeOutcome::Merged { merged, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let kinds: Vec<_> = merged.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MergeKind::Resolved, MergeKind::Merged]);
    assert_eq!(
        read(&s.worktree, "src/shared.txt"),
        "line 1\nline 2 by a and b\nline 3\n"
    );
    assert_eq!(read(&s.worktree, "src/c.txt"), "from c\n");
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    assert!(
        !git_raw(&s.worktree, &["rev-parse", "-q", "--verify", "MERGE_HEAD"])
            .status
            .success()
    );
    let resolved = git(&s.worktree, &["log", "-1", "--format=%s%n%P", "HEAD^"]);
    assert!(
        resolved.starts_with("merge writer-b (step 2) into session s1, conflicts resolved by hand"),
        "{resolved}"
    );
    assert_eq!(
        resolved.lines().nth(1).unwrap().split_whitespace().count(),
        2
    );
    assert_eq!(repo.worktrees(), [(canon(&s.worktree), s.branch.clone())]);
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn a_human_may_commit_the_resolution_with_git_itself() {
    let repo = TestRepo::new();
    let (s, a, b) = conflicting(&repo);
    let outcome = merge_back(&s, &[a, b], ConflictMode::Pause, &repo.settings).unwrap();
    let MergeOutcome::Stopped { remaining, .. } = outcome else {
        panic!("{outcome:?}")
    };
    write(&s.worktree, "src/shared.txt", "resolved\n");
    git(&s.worktree, &["add", "src/shared.txt"]);
    git(
        &s.worktree,
        &[
            "-c",
            "user.name=Human",
            "-c",
            "user.email=h@example.com",
            "commit",
            "-q",
            "--no-edit",
        ],
    );

    let outcome = merge_back(&s, &remaining, ConflictMode::Pause, &repo.settings).unwrap();
    let MergeOutcome::Merged { merged, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(merged[0].kind, MergeKind::UpToDate);
    assert_eq!(read(&s.worktree, "src/shared.txt"), "resolved\n");
    assert_eq!(repo.worktrees().len(), 1);
    repo.assert_fsck_clean();
}

#[test]
fn abort_merge_puts_a_paused_merge_back() {
    let repo = TestRepo::new();
    let (s, a, b) = conflicting(&repo);
    let outcome = merge_back(&s, &[a, b.clone()], ConflictMode::Pause, &repo.settings).unwrap();
    let MergeOutcome::Stopped { sha, .. } = outcome else {
        panic!("{outcome:?}")
    };
    abort_merge(&s, &repo.settings).unwrap();
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    assert_eq!(head_sha(&s.worktree).unwrap(), sha);
    assert_eq!(
        read(&s.worktree, "src/shared.txt"),
        "line 1\nline 2 by a\nline 3\n"
    );
    assert!(b.path.exists());
}

#[test]
fn on_conflict_fail_aborts_the_merge_and_keeps_the_fork() {
    let repo = TestRepo::new();
    let (s, a, b) = conflicting(&repo);

    let outcome = merge_back(&s, &[a, b.clone()], ConflictMode::Fail, &repo.settings).unwrap();

    let MergeOutcome::Stopped {
        conflict,
        sha,
        remaining,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        conflict.files[0].theirs.as_deref(),
        Some("line 1\nline 2 by b\nline 3\n")
    );
    assert_eq!(remaining, std::slice::from_ref(&b));
    assert_eq!(
        head_sha(&s.worktree).unwrap(),
        sha,
        "a's fast-forward stays, b's merge is gone"
    );
    assert_eq!(
        read(&s.worktree, "src/shared.txt"),
        "line 1\nline 2 by a\nline 3\n"
    );
    assert_eq!(git(&s.worktree, &["status", "--porcelain"]), "");
    assert!(
        !git_raw(&s.worktree, &["rev-parse", "-q", "--verify", "MERGE_HEAD"])
            .status
            .success()
    );
    // b's work is still on its branch: never silently dropped.
    assert_eq!(
        repo.git(&["show", &format!("{}:src/shared.txt", b.branch)]),
        "line 1\nline 2 by b\nline 3\n"
    );
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}

#[test]
fn uncommitted_work_in_a_fork_blocks_the_merge() {
    let repo = TestRepo::new();
    let (s, a, b) = setup(&repo);
    write(&a.path, "forgotten.txt", "not committed\n");
    let err = merge_back(&s, &[a.clone(), b], ConflictMode::Agent, &repo.settings).unwrap_err();
    assert!(
        matches!(err, GitError::DirtyWorktree { ref files, .. } if files == &["forgotten.txt"]),
        "{err}"
    );
    assert_eq!(read(&a.path, "forgotten.txt"), "not committed\n");
}

#[test]
fn forking_again_for_a_rerun_starts_fresh_from_the_session_tip() {
    let repo = TestRepo::new();
    let (s, a, _b) = setup(&repo);
    edit(&repo, &a, "half.txt", "interrupted attempt\n");
    write(&a.path, "junk.txt", "uncommitted\n");

    let again = fork_worktree(&s, "writer-a", 2, &repo.settings).unwrap();

    assert_eq!(again.path, a.path);
    assert_eq!(
        head_sha(&again.path).unwrap(),
        head_sha(&s.worktree).unwrap()
    );
    assert!(!again.path.join("half.txt").exists() && !again.path.join("junk.txt").exists());
    assert_eq!(repo.worktrees().len(), 3);
    assert!(fs::read_dir(&again.path).is_ok());
    repo.assert_fsck_clean();
}

#[test]
fn parallel_writers_commit_at_the_same_time_and_all_get_merged() {
    let repo = TestRepo::new();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    let forks: Vec<AgentWorktree> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (s, settings) = (&s, &repo.settings);
                scope.spawn(move || {
                    let agent = format!("writer-{i}");
                    let fork = fork_worktree(s, &agent, 1, settings).unwrap();
                    for n in 0..3 {
                        write(&fork.path, &format!("out/{agent}.txt"), &format!("{n}\n"));
                        commit_all(&fork.path, &info(&agent, 1), settings)
                            .unwrap()
                            .unwrap();
                    }
                    fork
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let outcome = merge_back(&s, &forks, ConflictMode::Fail, &repo.settings).unwrap();

    let MergeOutcome::Merged {
        merged, conflicts, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(conflicts.is_empty());
    assert_eq!(merged.len(), 4);
    for i in 0..4 {
        assert_eq!(read(&s.worktree, &format!("out/writer-{i}.txt")), "2\n");
    }
    assert_eq!(repo.worktrees().len(), 1);
    assert_eq!(repo.branches(), ["main", "orchestra/p/s1"]);
    repo.assert_fsck_clean();
    repo.assert_user_untouched();
}
