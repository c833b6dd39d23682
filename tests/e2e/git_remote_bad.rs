//! Bad input for repositories with `url:`: a remote that cannot be reached, a `path:` that is
//! not a clone of the `url:`, a session branch another machine advanced (the push is refused,
//! nothing is overwritten), and `url:` keys the compiler refuses.

use super::git_remote::{Remote, git};

#[test]
fn a_remote_that_cannot_be_reached_fails_the_run_naming_it() {
    let remote = Remote::new(None);
    let a = remote.machine("a", 0);
    let nowhere = a.root.join("../nowhere.git");
    a.set_repo(&format!("url: \"{}\"", nowhere.display()));
    let run = a.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(
        run.stderr
            .contains(&format!("cannot clone {}", nowhere.display())),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn a_path_that_is_not_a_clone_of_the_url_is_refused_and_left_alone() {
    let remote = Remote::new(None);
    let a = remote.machine("a", 0);
    let url = remote.url.display().to_string();

    // A clone of another remote.
    let other = a.root.join("other.git");
    git(&a.root, &["init", "-q", "--bare", "other.git"]);
    git(&a.root, &["clone", "-q", other.to_str().unwrap(), "work"]);
    a.set_repo(&format!("url: \"{url}\", path: work"));
    let run = a.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 5, "{}", run.transcript());
    let want = format!(
        "{} is not a clone of {url}: its origin is {}",
        a.root.join("work").display(),
        other.display()
    );
    assert!(run.stderr.contains(&want), "{}", run.transcript());

    // A directory with files that is no repository at all: nothing of it is touched.
    std::fs::create_dir_all(a.root.join("notes")).unwrap();
    std::fs::write(a.root.join("notes/todo.txt"), "mine\n").unwrap();
    a.set_repo(&format!("url: \"{url}\", path: notes"));
    let run = a.orchestra(&["run", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(
        run.stderr.contains("it exists and is not a git repository"),
        "{}",
        run.transcript()
    );
    assert_eq!(
        std::fs::read_to_string(a.root.join("notes/todo.txt")).unwrap(),
        "mine\n"
    );
    assert!(!a.root.join("notes/.git").exists());
}

#[test]
fn a_session_branch_another_machine_advanced_is_never_overwritten() {
    let remote = Remote::new(None);
    let a = remote.machine("a", 600);
    let mut run = a.spawn_logged(&["run", "pipelines/remote-edit.yaml"]);
    let branch = super::common::wait_until("the session branch on the remote", || {
        remote.session_branches().into_iter().next()
    });
    // Another machine pushes a commit onto the session branch before writer-1's commit.
    let top = remote.url.parent().unwrap().to_path_buf();
    git(
        &top,
        &[
            "clone",
            "-q",
            "-b",
            &branch,
            remote.url.to_str().unwrap(),
            "other",
        ],
    );
    let other = top.join("other");
    std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-q", "-m", "theirs"]);
    git(&other, &["push", "-q", "origin", &branch]);
    let theirs = git(&other, &["rev-parse", "HEAD"]);

    let status = run.wait().unwrap();
    let stderr = std::fs::read_to_string(a.root.join("run.err")).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("not pushing {branch} to {}", remote.url.display()))
            && stderr.contains("(another process moved it); nothing was overwritten"),
        "{stderr}"
    );
    assert_eq!(
        remote.git(&["rev-parse", &branch]),
        theirs,
        "the other machine's commit stays"
    );
    // writer-1's commit is kept in A's clone, on the session branch.
    let mine = git(&a.clone_dir(), &["log", "--format=%s", "-1", &branch]);
    assert!(mine.starts_with("writer-1: step 1"), "{mine}");
}

#[test]
fn url_keys_the_compiler_refuses() {
    let remote = Remote::new(None);
    let a = remote.machine("a", 0);
    let url = remote.url.display().to_string();

    a.set_repo(&format!("url: \"{url}\""));
    let pipeline = a.root.join("pipelines/remote-edit.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, text.replace(", write: true }", " }")).unwrap();
    let run = a.orchestra(&["compile", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("repository `app` has `url:` but not `write: true`")
            && run.stderr.contains("remote-edit.yaml:7:"),
        "{}",
        run.transcript()
    );

    a.set_repo("description: nothing");
    let run = a.orchestra(&["compile", "pipelines/remote-edit.yaml"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("repository `app` has neither `path:` nor `url:`"),
        "{}",
        run.transcript()
    );
}
