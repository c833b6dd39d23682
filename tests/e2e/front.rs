//! The front door, as a new user meets it in a git repository of their own: the offline
//! pr-review reviews the range given with `--input` and writes a complete review file; a run of
//! writers warns about the uncommitted changes its agents will not see and says how to merge
//! its branch; session ids are found by their random tail; a `--max-steps` stop blames the
//! flag; `status` says why a session stopped; a fork's tokens agree everywhere.

use std::path::Path;

use super::common::{Run, workspace_root};
use super::gitrepo::GitProject;

/// Every file under `dir` of the workspace, as (relative path, text).
fn files_of(dir: &str) -> Vec<(String, String)> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                walk(root, &rel, out);
            } else {
                let text = std::fs::read_to_string(root.join(&rel)).unwrap();
                out.push((rel.to_string_lossy().into_owned(), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace_root(), Path::new(dir), &mut out);
    out
}

/// A user's repository holding pr-review and everything it uses, then three commits that each
/// add one source file (`src/one.rs`, `src/two.rs`, `src/three.rs`).
fn review_project() -> GitProject {
    let mut files = files_of("prompts");
    files.extend(files_of("conditions"));
    for f in [
        "pipelines/pr-review.yaml",
        "fixtures/pr-review.responses.yaml",
    ] {
        files.push((
            f.to_owned(),
            std::fs::read_to_string(workspace_root().join(f)).unwrap(),
        ));
    }
    let extra: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let p = GitProject::new(&extra);
    for name in ["one", "two", "three"] {
        let rel = format!("src/{name}.rs");
        p.write(
            &rel,
            &format!("pub fn {name}(x: u32) -> u32 {{\n    x + 1\n}}\n"),
        );
        p.git(&["add", &rel]);
        p.git(&["commit", "-q", "-m", &format!("add {name}")]);
    }
    p
}

/// The id in the last `session ID` line.
fn session_of(run: &Run) -> String {
    run.stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("session "))
        .map(|s| s.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no session line:\n{}", run.transcript()))
}

/// The text of the file named by the `wrote PATH` line.
fn written(p: &GitProject, run: &Run) -> String {
    let rel = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .unwrap_or_else(|| panic!("nothing written:\n{}", run.transcript()));
    std::fs::read_to_string(p.root().join(rel)).unwrap()
}

#[test]
fn pr_review_reviews_the_range_given_as_input_and_writes_a_complete_review() {
    let p = review_project();
    let run = p.orchestra(&["run", "pipelines/pr-review.yaml", "--input", "base=HEAD~3"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run);
    let review = written(&p, &run);
    let head = format!(
        "# Review of HEAD~3..HEAD\n\n- Revisions: `HEAD~3..HEAD`\n- Verdict: approve (the critic's last word)\n- Session: `{id}` (see it with `orchestra status {id}`)\n\n## Summary\n\nThe changes between `HEAD~3` and `HEAD` touch 3 file(s)."
    );
    assert!(review.starts_with(&head), "{review}");
    for f in ["src/one.rs", "src/two.rs", "src/three.rs"] {
        assert!(
            review.contains(&format!("- `{f}`\n")),
            "{f} reviewed:\n{review}"
        );
    }
    // Every finding of the last round, with its detail and its suggestion.
    let details = review.split("## Findings in detail").nth(1).unwrap();
    let findings = details.matches("\n### ").count();
    assert_eq!(
        findings, 4,
        "one security finding, three architecture ones:\n{review}"
    );
    assert_eq!(
        details.matches("\nSuggestion: ").count(),
        findings,
        "{review}"
    );
    assert!(
        details.contains("### 1. [medium] Check the inputs of src/one.rs\n\n`src/one.rs`, reported by security-reviewer\n\nOn a second reading the risk in src/one.rs is lower"),
        "{review}"
    );
    assert!(
        details.contains("Suggestion: If src/three.rs keeps growing, split it."),
        "{review}"
    );

    // Without the input, the default range (the last commit) is reviewed.
    let run = p.orchestra(&["run", "pipelines/pr-review.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let review = written(&p, &run);
    assert!(review.starts_with("# Review of HEAD~1..HEAD\n"), "{review}");
    assert!(review.contains("touch 1 file(s)"), "{review}");
    assert!(!review.contains("src/one.rs"), "{review}");
    // The tool calls took the inputs: the stored node runs used the range.
    assert_eq!(p.status(&session_of(&run))["inputs"]["base"], "HEAD~1");
}

#[test]
fn compile_lists_the_outputs_a_run_writes() {
    let p = review_project();
    let run = p.orchestra(&["compile", "pipelines/pr-review.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "\noutputs (written when the session completes, relative to the project root):\n  review  .orchestra/reviews/{{ session }}.md  <- state `review`, rendered from its template\n"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_max_steps_stop_blames_the_flag_and_a_plain_resume_continues() {
    let p = review_project();
    let run = p.orchestra(&["run", "pipelines/pr-review.yaml", "--max-steps", "2"]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let id = session_of(&run);
    let note = "the session reached --max-steps (2), which held for that drive only: a plain `resume` continues";
    assert!(
        run.stdout
            .starts_with(&format!("stopped: {note} (2 steps, ")),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout
            .contains(&format!("(to go on: `orchestra resume {id}`)\n")),
        "{}",
        run.transcript()
    );
    assert!(!run.stdout.contains("limits.max_steps"), "{}", run.stdout);
    // `status` says why, in the list and for the session.
    let list = p.orchestra(&["status"]);
    let row = list.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains(" stopped ") && row.ends_with(note), "{row}");
    let one = p.orchestra(&["status", &id]);
    assert!(
        one.stdout
            .contains(&format!("\nstatus    stopped\nnote      {note}\n")),
        "{}",
        one.stdout
    );
    // The plain resume runs on with the pipeline's limits to the end.
    let resumed = p.orchestra(&["resume", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    assert!(
        resumed.stdout.starts_with("completed: 5 steps"),
        "{}",
        resumed.stdout
    );
}

#[test]
fn a_forks_tokens_are_its_own_in_its_summary_and_in_status() {
    let p = review_project();
    let stopped = p.orchestra(&["run", "pipelines/pr-review.yaml", "--max-steps", "2"]);
    let parent = session_of(&stopped);
    let inherited: u64 = p.status(&parent)["tokens"].as_u64().unwrap();
    assert!(inherited > 0);
    let fork = p.orchestra(&["replay", &parent, "--checkpoint", "2"]);
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    let id = session_of(&fork);
    let detail = p.status(&id);
    assert_eq!(detail["inherited_tokens"].as_u64(), Some(inherited));
    let own = detail["tokens"].as_u64().unwrap();
    let usage: u64 = detail["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["tokens_in"].as_u64().unwrap() + u["tokens_out"].as_u64().unwrap())
        .sum();
    assert_eq!(own, usage, "the fork's own node runs");
    let summary =
        format!(", {own} tokens of its own (+{inherited} spent by its parent before the fork), ");
    assert!(
        fork.stdout.starts_with("completed: 5 steps") && fork.stdout.contains(&summary),
        "{}",
        fork.transcript()
    );
    let list = p.orchestra(&["status"]);
    let row = list.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[8], own.to_string(), "TOKENS of {row}");
    let text = p.orchestra(&["status", &id]);
    assert!(
        text.stdout.contains(&format!(
            "\nspent     {own} tokens of its own (+{inherited} spent by its parent before the fork)\n"
        )),
        "{}",
        text.stdout
    );
}

#[test]
fn a_run_of_writers_warns_about_unseen_changes_and_says_how_to_merge_its_branch() {
    // The user has a modified README.md and an untracked notes.txt.
    let p = GitProject::new(&[]);
    let run = p.orchestra(&["run", "pipelines/parallel-edit.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run);
    let root = p.root().display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "warning: repository `app` ({root}) has 2 changed file(s) not committed (modified, staged or untracked): the agents start from its last commit and will not see them; commit them first if they should\n"
        )),
        "{}",
        run.transcript()
    );
    let branch = format!("orchestra/parallel-edit/{id}");
    let line = format!(
        "branch {branch} holds the work on repository `app`; merge it with `git merge {branch}`\n"
    );
    assert!(run.stdout.contains(&line), "{}", run.transcript());
    // The command it gives works, and brings the agents' work in.
    let before = p.rev("HEAD");
    p.git(&["merge", "-q", "--no-edit", &branch]);
    assert!(p.root().join("orchestra-demo/greet.sh").is_file());
    p.git(&["reset", "-q", "--keep", &before]);

    // Without uncommitted changes, no warning.
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "the user's work"]);
    let run = p.orchestra(&["run", "pipelines/parallel-edit.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        !run.stderr.contains("not committed"),
        "{}",
        run.transcript()
    );
}

#[test]
fn sessions_are_found_by_their_random_tail_and_ambiguity_lists_the_candidates() {
    let p = review_project();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let run = p.orchestra(&["run", "pipelines/pr-review.yaml"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        ids.push(session_of(&run));
    }
    let tail = ids[0].rsplit('-').next().unwrap();
    for query in [tail, &tail[..4]] {
        let run = p.orchestra(&["status", query, "--json"]);
        assert_eq!(run.code, 0, "`{query}`: {}", run.transcript());
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["id"], ids[0].as_str(), "`{query}`");
    }
    // The date both ids start with is ambiguous: exit 2, with the candidates.
    let date = &ids[0][..8];
    assert_eq!(&ids[1][..8], date);
    let run = p.orchestra(&["status", date]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        run.stderr,
        format!(
            "error: session `{date}` is ambiguous: it matches {}, {}; give more of the id\n",
            sorted[0], sorted[1]
        )
    );
    let run = p.orchestra(&["resume", "zzzzzz"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
}
