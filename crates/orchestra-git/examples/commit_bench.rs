//! Benchmark of the per-node auto-commit: the median cost of `commit_all` after a small change,
//! on repositories of 1,000 and 10,000 files, next to `git commit -a` and `git add -A && git
//! commit` on the same repository shape.
//!
//! Run with `cargo run --release -p orchestra-git --example commit_bench [-- COMMITS [FILES...]]`
//! (default: 20 commits; 1000 and 10000 files). Needs the `git` CLI.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use orchestra_git::{CommitInfo, GitSettings, commit_all, start_session};

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let commits: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let mut sizes: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if commits == 0 {
        return Err("COMMITS must be at least 1".into());
    }
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000];
    }
    println!("median (p90) per commit of a one-file change, {commits} commits each");
    println!(
        "{:>7}  {:>22}  {:>22}  {:>26}",
        "files", "orchestra commit_all", "git commit -a", "git add -A && git commit"
    );
    for files in sizes {
        let tmp = tempfile::tempdir()?;
        let repo = tmp.path().join("repo");
        make_repo(&repo, files, tmp.path())?;
        let settings = GitSettings::default();
        let ours = start_session(&repo, "app", "bench", "ours", &settings)?;
        let theirs = start_session(&repo, "app", "bench", "git-cli", &settings)?;
        let home = tmp.path();

        // The three are interleaved round by round, so load from elsewhere hits them alike.
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..=commits {
            if round == 1 {
                // Let the files written by the checkouts age past the index's timestamp, as they
                // do while an agent runs, so racy-git rechecks do not dominate.
                std::thread::sleep(Duration::from_millis(1_100));
            }
            touch(&ours.worktree, round)?;
            let info = CommitInfo {
                agent: "bench",
                session: "ours",
                pipeline: "bench",
                step: round as u64,
            };
            let start = Instant::now();
            let sha = commit_all(&ours.worktree, &info, &settings)?;
            let t_ours = start.elapsed();
            if sha.is_none() {
                return Err("commit_all saw no change".into());
            }

            touch(&theirs.worktree, 2 * round)?;
            let start = Instant::now();
            git(
                &theirs.worktree,
                home,
                &["commit", "-q", "-a", "-m", "bench"],
            )?;
            let t_commit_a = start.elapsed();

            touch(&theirs.worktree, 2 * round + 1)?;
            let start = Instant::now();
            git(&theirs.worktree, home, &["add", "-A"])?;
            git(&theirs.worktree, home, &["commit", "-q", "-m", "bench"])?;
            let t_add_commit = start.elapsed();

            if round > 0 {
                times[0].push(t_ours);
                times[1].push(t_commit_a);
                times[2].push(t_add_commit);
            }
        }
        for t in &mut times {
            t.sort();
        }
        let [orchestra, commit_a, add_commit] = times;
        println!(
            "{files:>7}  {:>22}  {:>22}  {:>26}",
            show(&orchestra),
            show(&commit_a),
            show(&add_commit)
        );
    }
    Ok(())
}

/// A repository of `files` small files in directories of 100, committed with the git CLI.
fn make_repo(repo: &Path, files: usize, home: &Path) -> Res<()> {
    fs::create_dir_all(repo)?;
    for i in 0..files {
        let dir = repo.join(format!("dir{:03}", i / 100));
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join(format!("file{i:05}.txt")),
            format!("file {i}\n{}\n", "x".repeat(200)),
        )?;
    }
    git(repo, home, &["init", "-q", "-b", "main"])?;
    git(repo, home, &["add", "-A"])?;
    git(
        repo,
        home,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "-m",
            "initial",
        ],
    )?;
    Ok(())
}

/// The small change an agent makes: one line appended to one file.
fn touch(worktree: &Path, i: usize) -> Res<()> {
    let file: PathBuf = worktree.join("dir000").join("file00000.txt");
    let mut text = fs::read_to_string(&file)?;
    text.push_str(&format!("change {i}\n"));
    fs::write(file, text)?;
    Ok(())
}

fn show(times: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
    format!("{:.2} ms ({:.2})", ms(median), ms(p90))
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> Res<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}
