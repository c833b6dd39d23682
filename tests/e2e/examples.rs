//! The shipped examples (`pipelines/examples/`) through `orchestra init`: every example the
//! binary lists is scaffolded into an empty directory and runs there offline, end to end;
//! `init` never overwrites a file; sdlc writes one file per task, and build-website completes
//! for one input and ends failed (exit 1, with the check's finding) for another.

use std::path::Path;

use super::common::{Run, orchestra, workspace_root};

/// `orchestra init ARGS` in a new empty directory; returns it with the run.
fn init(args: &[&str]) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    let run = in_dir(dir.path(), &all);
    (dir, run)
}

/// `orchestra ARGS` in `dir` (with `dir/home` as HOME and the caller's PATH, for python3).
fn in_dir(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(crate::binary::orchestra_bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir.join("home"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The examples `init --list` names.
fn listed() -> Vec<String> {
    let home = tempfile::tempdir().unwrap();
    let run = orchestra(home.path(), home.path(), &["init", "--list"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn init_lists_every_example_of_the_source_tree() {
    let mut in_tree: Vec<String> = std::fs::read_dir(workspace_root().join("pipelines/examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_owned))
        .filter(|n| !n.ends_with(".responses"))
        .collect();
    in_tree.sort();
    assert_eq!(listed(), in_tree);
}

#[test]
fn every_example_runs_offline_in_a_project_made_by_init() {
    let names = listed();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let (dir, made) = init(&["--example", name]);
        assert_eq!(made.code, 0, "{name}: {}", made.transcript());
        assert!(
            made.stdout.starts_with("wrote orchestra.yaml\n"),
            "{name}: {}",
            made.transcript()
        );
        assert!(dir.path().join(format!("{name}.yaml")).is_file());
        assert!(dir.path().join(format!("{name}.responses.yaml")).is_file());
        // The command it prints, with `...` for each required input.
        let command = made
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("orchestra run "))
            .unwrap_or_else(|| panic!("{name}: no command printed\n{}", made.transcript()));
        let mut args = vec!["run".to_owned()];
        args.extend(
            command
                .split_whitespace()
                .map(|a| a.replace("...", "checkout")),
        );
        args.push("--json".to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = in_dir(dir.path(), &args);
        assert_eq!(run.code, 0, "{name}: {}", run.transcript());
        let out: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(out["status"], "completed", "{name}");
        for file in out["outputs"].as_array().unwrap() {
            let path = file
                .as_str()
                .unwrap_or_else(|| file["path"].as_str().unwrap());
            assert!(dir.path().join(path).is_file(), "{name}: {path}");
        }
    }
}

#[test]
fn init_refuses_to_overwrite_and_names_the_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    std::fs::create_dir_all(dir.path().join("prompts/tasks")).unwrap();
    std::fs::write(
        dir.path().join("prompts/tasks/implement-feature.yaml"),
        "mine",
    )
    .unwrap();
    std::fs::write(dir.path().join("sdlc.yaml"), "mine too").unwrap();
    let run = in_dir(dir.path(), &["init", "--example", "sdlc"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(
        run.stderr,
        "error: `orchestra init` would overwrite prompts/tasks/implement-feature.yaml, sdlc.yaml; nothing was written (run it in an empty directory)\n"
    );
    assert!(
        !dir.path().join("orchestra.yaml").exists(),
        "nothing written"
    );
    assert!(
        !dir.path().join("prompts/roles").exists(),
        "nothing written"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sdlc.yaml")).unwrap(),
        "mine too"
    );
    let unknown = in_dir(dir.path(), &["init", "--example", "sdcl"]);
    assert_eq!(unknown.code, 2, "{}", unknown.transcript());
    assert!(
        unknown
            .stderr
            .starts_with("error: there is no example `sdcl`; did you mean `sdlc`?"),
        "{}",
        unknown.transcript()
    );
    // Without --example: the default one.
    let (fresh, made) = init(&[]);
    assert_eq!(made.code, 0, "{}", made.transcript());
    assert!(fresh.path().join("hello.yaml").is_file());
}

#[test]
fn sdlc_writes_a_file_per_task_about_the_goal() {
    let (dir, made) = init(&["--example", "sdlc"]);
    assert_eq!(made.code, 0, "{}", made.transcript());
    let missing = in_dir(dir.path(), &["run", "sdlc.yaml"]);
    assert_eq!(missing.code, 2, "{}", missing.transcript());
    assert!(
        missing.stderr.contains("missing input(s): goal"),
        "{}",
        missing.transcript()
    );
    let run = in_dir(
        dir.path(),
        &["run", "sdlc.yaml", "--input", "goal=password reset"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let wrote: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("wrote "))
        .collect();
    let names: Vec<&str> = wrote
        .iter()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "implement_feature.md",
            "configure_ci_pipeline.md",
            "create_test_plan.md"
        ]
    );
    for p in &wrote {
        assert!(p.starts_with("orchestra_workspaces/sdlc/"), "{p}");
        let text = std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert!(text.contains("password reset"), "{p}: {text}");
    }
}

#[test]
fn build_website_completes_for_one_title_and_fails_the_html_check_for_another() {
    let (dir, made) = init(&["--example", "build-website"]);
    assert_eq!(made.code, 0, "{}", made.transcript());
    let good = in_dir(
        dir.path(),
        &["run", "build-website.yaml", "--input", "title=Acme Bakery"],
    );
    assert_eq!(good.code, 0, "{}", good.transcript());
    let page = good
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .unwrap();
    let html = std::fs::read_to_string(dir.path().join(page)).unwrap();
    assert!(html.contains("<h1>Acme Bakery</h1>"), "{html}");
    assert!(
        good.stderr
            .contains("check-html -> state.check.exit_code == 0 -> reviewer"),
        "{}",
        good.transcript()
    );

    // Markup in the title breaks the page: the check fails it, the coder gets one more try
    // (the same page), the check fails it again and the session ends at FAIL with the finding.
    let bad = in_dir(
        dir.path(),
        &[
            "run",
            "build-website.yaml",
            "--input",
            "title=Fish <b>& Chips",
            "--json",
        ],
    );
    assert_eq!(bad.code, 1, "{}", bad.transcript());
    let out: serde_json::Value = serde_json::from_str(bad.stdout.trim()).unwrap();
    assert_eq!(out["status"], "failed");
    assert_eq!(
        out["error"],
        "`check-html` routed to FAIL: the page failed the HTML check twice: line 3: </title> closes <b> (and 11 more)"
    );
    assert_eq!(
        out["steps"], 5,
        "product-manager, coder, check, coder, check"
    );
    assert_eq!(out["state"]["check"]["exit_code"], 1);
}
