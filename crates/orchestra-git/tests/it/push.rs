//! Force-with-lease pushes and deletes through the `git` program, against a real bare
//! repository: several branches go together or not at all, and a branch another clone moved
//! is never overwritten or deleted.

use std::path::Path;

use orchestra_git::{GitError, delete_remote_branches, push_branch, sync_clone};

use crate::support::git;

/// A bare repository with one commit on `main`, and a clone of it made by orchestra.
fn remote_and_clone(top: &Path) -> (String, std::path::PathBuf) {
    git(top, &["init", "-q", "--bare", "-b", "main", "remote.git"]);
    let url = top.join("remote.git").display().to_string();
    git(top, &["clone", "-q", &url, "seed"]);
    let seed = top.join("seed");
    std::fs::write(seed.join("a.txt"), "a\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "a",
        ],
    );
    git(&seed, &["push", "-q", "origin", "HEAD:main"]);
    let clone = top.join("clones/app");
    sync_clone(&clone, &url).unwrap();
    (url, clone)
}

#[test]
fn a_moved_branch_is_neither_overwritten_nor_deleted_and_atomic_deletes_keep_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    let (url, clone) = remote_and_clone(&top);
    for b in ["s/one", "s/two"] {
        git(&clone, &["branch", b, "origin/main"]);
        push_branch(&clone, &url, b).unwrap();
    }
    let bare = top.join("remote.git");
    assert_eq!(
        git(
            &bare,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/s/"]
        ),
        "s/one\ns/two\n"
    );

    // Another clone moves s/two on the remote.
    let seed = top.join("seed");
    git(&seed, &["fetch", "-q", "origin"]);
    git(&seed, &["checkout", "-q", "-b", "two", "origin/s/two"]);
    std::fs::write(seed.join("theirs.txt"), "theirs\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "theirs",
        ],
    );
    git(&seed, &["push", "-q", "origin", "HEAD:s/two"]);
    let theirs = git(&seed, &["rev-parse", "HEAD"]).trim().to_owned();
    let seen = git(&clone, &["rev-parse", "origin/s/two"])
        .trim()
        .to_owned();

    // Deleting both is refused as a whole, naming the moved one with both commits.
    let both = vec!["s/one".to_owned(), "s/two".to_owned()];
    let err = delete_remote_branches(&clone, &url, &both).unwrap_err();
    match &err {
        GitError::PushRejected {
            branch,
            expected,
            found,
            ..
        } => {
            assert_eq!(branch, "s/two");
            assert_eq!(expected, &seen);
            assert_eq!(found, &theirs);
        }
        other => panic!("expected PushRejected, got {other}"),
    }
    assert_eq!(
        git(
            &bare,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/s/"]
        ),
        "s/one\ns/two\n",
        "all or nothing: s/one stays too"
    );
    assert_eq!(git(&bare, &["rev-parse", "s/two"]).trim(), theirs);

    // A new commit on s/two here is not pushed over theirs either.
    let mine = git(
        &clone,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit-tree",
            "origin/main^{tree}",
            "-p",
            "origin/s/two",
            "-m",
            "mine",
        ],
    );
    git(&clone, &["branch", "-f", "s/two", mine.trim()]);
    let err = push_branch(&clone, &url, "s/two").unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "not pushing s/two to {url}: the remote branch is at {theirs}"
        )),
        "{err}"
    );
    assert_eq!(git(&bare, &["rev-parse", "s/two"]).trim(), theirs);

    // Once fetched, the lease is theirs: both go at once.
    sync_clone(&clone, &url).unwrap();
    delete_remote_branches(&clone, &url, &both).unwrap();
    assert_eq!(
        git(
            &bare,
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/s/"]
        ),
        ""
    );
}

#[test]
fn a_branch_made_elsewhere_under_the_same_name_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().canonicalize().unwrap();
    let (url, clone) = remote_and_clone(&top);
    // The remote gets s/new from elsewhere after this clone's last fetch.
    let seed = top.join("seed");
    std::fs::write(seed.join("b.txt"), "b\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(
        &seed,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "b",
        ],
    );
    git(&seed, &["push", "-q", "origin", "HEAD:s/new"]);
    let theirs = git(&seed, &["rev-parse", "HEAD"]).trim().to_owned();
    git(&clone, &["branch", "s/new", "origin/main"]);
    let err = push_branch(&clone, &url, "s/new").unwrap_err();
    assert!(
        matches!(&err, GitError::PushRejected { expected, found, .. }
            if expected == "nowhere" && *found == theirs),
        "{err}"
    );
    assert_eq!(
        git(&top.join("remote.git"), &["rev-parse", "s/new"]).trim(),
        theirs
    );
}
