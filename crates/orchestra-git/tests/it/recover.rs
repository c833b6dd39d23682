//! Recovery after a killed run: each broken state a kill can leave is built for real, repaired by
//! `recover_session`, and checked with the `git` CLI; nothing outside the session is touched.

use std::fs;
use std::path::{Path, PathBuf};

use orchestra_git::{
    AgentWorktree, CommitInfo, ConflictMode, MergeOutcome, SessionRepo, commit_all, fork_worktree,
    head_sha, merge_back, open_session, recover_session, start_session,
};

use crate::support::{TestRepo, git, git_raw, write};

fn info(agent: &str, step: u64) -> CommitInfo<'_> {
    CommitInfo {
        agent,
        session: "s1",
        pipeline: "p",
        step,
    }
}

/// Session `s1` with a first commit (the last recorded one) and two forks of step 2, each with
/// its agent's commit; plus another session `s2` and a user branch that must stay as they are.
struct Fixture {
    repo: TestRepo,
    s: SessionRepo,
    a: AgentWorktree,
    b: AgentWorktree,
    last: String,
    others: String,
    /// The forks' tips (the agents' commits).
    tips: [String; 2],
}

fn setup() -> Fixture {
    let mut repo = TestRepo::new();
    repo.git(&["branch", "user-topic"]);
    let other = start_session(&repo.path, "app", "p", "s2", &repo.settings).unwrap();
    let s = start_session(&repo.path, "app", "p", "s1", &repo.settings).unwrap();
    write(&s.worktree, "plan.txt", "plan\n");
    commit_all(&s.worktree, &info("planner", 1), &repo.settings)
        .unwrap()
        .unwrap();
    let last = head_sha(&s.worktree).unwrap();
    let a = fork_worktree(&s, "writer-a", 2, &repo.settings).unwrap();
    let b = fork_worktree(&s, "writer-b", 2, &repo.settings).unwrap();
    write(&a.path, "src/a.txt", "from a\n");
    commit_all(&a.path, &info("writer-a", 2), &repo.settings)
        .unwrap()
        .unwrap();
    write(&b.path, "src/b.txt", "from b\n");
    commit_all(&b.path, &info("writer-b", 2), &repo.settings)
        .unwrap()
        .unwrap();
    repo.resnapshot();
    let tips = [a.branch.clone(), b.branch.clone()]
        .map(|b| repo.git(&["rev-parse", &b]).trim().to_owned());
    let others = outside_refs(&repo, &other);
    Fixture {
        repo,
        s,
        a,
        b,
        last,
        others,
        tips,
    }
}

/// Every ref but session s1's, with its target.
fn outside_refs(repo: &TestRepo, other: &SessionRepo) -> String {
    assert!(other.branch.ends_with("/s2"));
    repo.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .filter(|l| !l.starts_with("refs/heads/orchestra/p/s1"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Fixture {
    fn recover(&self, last: Option<&str>) -> orchestra_git::Recovery {
        recover_session(&self.repo.path, "app", "p", "s1", &self.repo.settings, last).unwrap()
    }

    fn record(&self, leaf: &str) -> PathBuf {
        self.repo
            .path
            .join(".git/worktrees")
            .join(format!("orchestra-s1+{leaf}"))
    }

    /// Merges both forks and checks the session branch has both agents' commits, git is clean
    /// and nothing outside the session changed.
    fn finish(&self) {
        let forks = [
            AgentWorktree::describe(&self.s, "writer-a", 2, &self.repo.settings),
            AgentWorktree::describe(&self.s, "writer-b", 2, &self.repo.settings),
        ];
        let outcome = merge_back(&self.s, &forks, ConflictMode::Pause, &self.repo.settings)
            .unwrap_or_else(|e| panic!("merge after recovery failed: {e:?}"));
        assert!(
            matches!(outcome, MergeOutcome::Merged { .. }),
            "{outcome:?}"
        );
        self.assert_has_commits(&[&self.tips[0], &self.tips[1]]);
    }

    fn assert_has_commits(&self, commits: &[&str]) {
        for c in commits {
            let out = git_raw(
                &self.repo.path,
                &["merge-base", "--is-ancestor", c, &self.s.branch],
            );
            assert!(out.status.success(), "{c} is not on the session branch");
        }
        assert_eq!(git(&self.s.worktree, &["status", "--porcelain"]), "");
        self.assert_clean_outside();
    }

    fn assert_clean_outside(&self) {
        self.repo.assert_fsck_clean();
        assert_eq!(self.repo.prunable(), "");
        let other = open_session(&self.repo.path, "app", "p", "s2", &self.repo.settings).unwrap();
        assert_eq!(outside_refs(&self.repo, &other), self.others);
        self.repo.assert_user_untouched();
    }
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "").unwrap();
}

#[test]
fn stale_locks_of_the_session_go_and_nobody_elses() {
    let f = setup();
    let git_dir = f.repo.path.join(".git");
    let mine = [
        git_dir.join("refs/heads/orchestra/p/s1.lock"),
        git_dir.join("refs/heads/orchestra/p/s1+writer-a-2.lock"),
        git_dir.join("logs/refs/heads/orchestra/p/s1.lock"),
        f.record("app").join("index.lock"),
        f.record("app").join("HEAD.lock"),
        f.record("app+writer-b-2").join("index.lock"),
    ];
    let theirs = [
        git_dir.join("refs/heads/orchestra/p/s2.lock"),
        git_dir.join("refs/heads/orchestra/p/s1x.lock"),
        git_dir.join("refs/heads/user-topic.lock"),
        git_dir.join("worktrees/orchestra-s2+app/index.lock"),
    ];
    for lock in mine.iter().chain(&theirs) {
        touch(lock);
    }
    // The merge fails on the locks after checking out the first fork: as a kill leaves it.
    let forks = [f.a.clone(), f.b.clone()];
    assert!(merge_back(&f.s, &forks, ConflictMode::Pause, &f.repo.settings).is_err());
    assert_ne!(git(&f.s.worktree, &["status", "--porcelain"]), "");

    let done = f.recover(Some(&f.last));
    let mut removed = done.locks.clone();
    removed.sort();
    let mut expected = mine.to_vec();
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(done.reset_to.as_deref(), Some(f.last.as_str()), "{done:?}");
    for lock in &theirs {
        assert!(lock.exists(), "{} was removed", lock.display());
        fs::remove_file(lock).unwrap();
    }
    f.finish();
}

#[test]
fn half_made_fork_records_are_pruned_and_made_again() {
    let f = setup();
    // writer-b's record was being written: no HEAD, no commondir yet.
    fs::remove_file(f.record("app+writer-b-2").join("HEAD")).unwrap();
    fs::remove_file(f.record("app+writer-b-2").join("commondir")).unwrap();
    // writer-c's worktree points at a branch that was never made (HEAD points at nothing).
    let c = fork_worktree(&f.s, "writer-c", 2, &f.repo.settings).unwrap();
    fs::remove_file(f.repo.path.join(".git/refs/heads").join(&c.branch)).unwrap();
    assert!(
        !git_raw(&f.repo.path, &["fsck", "--no-progress"])
            .status
            .success(),
        "the broken state must fail fsck"
    );

    let done = f.recover(Some(&f.last));
    assert_eq!(
        done.records,
        ["orchestra-s1+app+writer-b-2", "orchestra-s1+app+writer-c-2"]
    );
    assert_eq!(done.recreated, std::slice::from_ref(&f.b.path));
    assert!(!c.path.exists());
    let listed: Vec<String> = f
        .repo
        .worktrees()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.contains("/s1"))
        .collect();
    assert_eq!(
        listed,
        [f.s.branch.clone(), f.a.branch.clone(), f.b.branch.clone()]
    );
    assert_eq!(crate::support::read(&f.b.path, "src/b.txt"), "from b\n");
    // A re-run agent gets a fresh fork without trouble.
    fork_worktree(&f.s, "writer-c", 2, &f.repo.settings).unwrap();
    f.finish();
}

#[test]
fn a_fork_branch_without_its_worktree_gets_one_and_stray_directories_go() {
    let f = setup();
    git(
        &f.repo.path,
        &["worktree", "remove", "--force", f.a.path.to_str().unwrap()],
    );
    let stray = f.s.worktree.with_file_name("app+writer-d-2");
    write(&stray, "half.txt", "half a checkout\n");

    let done = f.recover(Some(&f.last));
    assert_eq!(done.recreated, std::slice::from_ref(&f.a.path));
    assert_eq!(done.directories, std::slice::from_ref(&stray));
    assert!(!stray.exists());
    assert_eq!(git(&f.a.path, &["status", "--porcelain"]), "");
    f.finish();
}

#[test]
fn an_interrupted_merge_is_reset_to_the_last_recorded_commit_and_redone() {
    let f = setup();
    // The first fork was fast-forwarded, the second's merge half written: merge state, a
    // 0-byte staged file, an index lock.
    git(&f.s.worktree, &["merge", "-q", "--ff-only", &f.a.branch]);
    let out = git_raw(
        &f.s.worktree,
        &["merge", "--no-commit", "--no-ff", &f.b.branch],
    );
    assert!(out.status.success());
    write(&f.s.worktree, "src/b.txt", "");
    git(&f.s.worktree, &["add", "src/b.txt"]);
    touch(&f.record("app").join("index.lock"));
    let forks = [f.a.clone(), f.b.clone()];
    assert!(merge_back(&f.s, &forks, ConflictMode::Pause, &f.repo.settings).is_err());

    let done = f.recover(Some(&f.last));
    assert_eq!(done.reset_to.as_deref(), Some(f.last.as_str()));
    assert_eq!(head_sha(&f.s.worktree).unwrap(), f.last);
    assert_eq!(git(&f.s.worktree, &["status", "--porcelain"]), "");
    assert!(!f.record("app").join("MERGE_HEAD").exists());
    f.finish();
}

#[test]
fn a_merge_interrupted_after_a_fork_was_removed_keeps_that_forks_commit() {
    let f = setup();
    let ta = f.tips[0].clone();
    let outcome = merge_back(
        &f.s,
        std::slice::from_ref(&f.a),
        ConflictMode::Pause,
        &f.repo.settings,
    )
    .unwrap();
    assert!(matches!(outcome, MergeOutcome::Merged { .. }));
    git(
        &f.s.worktree,
        &["merge", "-q", "--no-commit", "--no-ff", &f.b.branch],
    );
    write(&f.s.worktree, "src/b.txt", "");

    let done = f.recover(Some(&f.last));
    assert_eq!(done.reset_to.as_deref(), Some(ta.as_str()), "{done:?}");
    f.finish();
}

#[test]
fn a_corrupt_session_index_is_rebuilt() {
    let f = setup();
    fs::write(f.record("app").join("index"), b"DIRC\0\0").unwrap();
    let done = f.recover(Some(&f.last));
    assert_eq!(done.reset_to.as_deref(), Some(f.last.as_str()));
    f.finish();
}

#[test]
fn a_broken_session_record_is_left_for_open_session_to_make_again() {
    let f = setup();
    fs::remove_file(f.record("app").join("HEAD")).unwrap();
    let done = f.recover(Some(&f.last));
    assert_eq!(done.records, ["orchestra-s1+app"]);
    open_session(&f.repo.path, "app", "p", "s1", &f.repo.settings).unwrap();
    assert_eq!(head_sha(&f.s.worktree).unwrap(), f.last);
    f.finish();
}

#[test]
fn without_forks_uncommitted_work_in_the_session_worktree_is_kept() {
    let f = setup();
    f.finish();
    let tip = head_sha(&f.s.worktree).unwrap();
    // An interactive agent's writes, not committed yet: its tool calls are not run again.
    write(&f.s.worktree, "src/chat.txt", "written in a chat\n");
    let done = f.recover(Some(&f.last));
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(head_sha(&f.s.worktree).unwrap(), tip);
    assert_eq!(
        git(&f.s.worktree, &["status", "--porcelain"]),
        "?? src/chat.txt\n"
    );
    f.assert_clean_outside();
}

#[test]
fn a_session_checkout_cut_short_is_checked_out_again() {
    let f = setup();
    f.finish();
    let tip = head_sha(&f.s.worktree).unwrap();
    // Killed while the worktree was being checked out: some files and the index not written.
    fs::remove_file(f.record("app").join("index")).unwrap();
    fs::remove_file(f.s.worktree.join("src/lib.rs")).unwrap();
    let done = f.recover(None);
    assert_eq!(done.reset_to.as_deref(), Some(tip.as_str()));
    assert_eq!(
        crate::support::read(&f.s.worktree, "src/lib.rs"),
        "pub fn one() -> u32 {\n    1\n}\n"
    );
    assert_eq!(git(&f.s.worktree, &["status", "--porcelain"]), "");
    f.assert_clean_outside();
}
