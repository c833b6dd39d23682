//! The bad-pipeline corpus (`tests/bad/`): every case fails with exit code 2 and its exact
//! diagnostics pinned by a snapshot; and the good cases (`tests/good/`), whose `compile`
//! output (with its warnings) is pinned the same way.

use super::common::{Corpus, check_all};

/// Case names: `bad/NAME.yaml`, or `bad/NAME/pipeline.yaml` for a case with its own files.
fn cases(dir: &str) -> Vec<String> {
    let root = super::common::tests_dir().join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().unwrap().is_dir();
            if is_dir && e.path().join("pipeline.yaml").is_file() {
                Some(format!("{name}/pipeline.yaml"))
            } else if !is_dir && name.ends_with(".yaml") {
                Some(name)
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}

fn snapshot_name(case: &str) -> String {
    case.trim_end_matches("/pipeline.yaml")
        .trim_end_matches(".yaml")
        .to_owned()
}

#[test]
fn every_bad_pipeline_fails_with_its_pinned_diagnostics() {
    let corpus = Corpus::new();
    let cases = cases("bad");
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    check_all(&cases, |case| {
        let path = format!("bad/{case}");
        let run = corpus.run(&["compile", &path]);
        assert_eq!(run.code, 2, "{case}: {}", run.transcript());
        assert!(run.stdout.is_empty(), "{case}: nothing on stdout");
        assert!(!run.stderr.contains("panicked"), "{case}: {}", run.stderr);
        corpus.settings("bad").bind(|| {
            insta::assert_snapshot!(snapshot_name(case), run.transcript());
        });
    });
}

#[test]
fn every_good_pipeline_compiles_with_its_pinned_output() {
    let corpus = Corpus::new();
    // `parallel-writers` has a writable repository, which must be a git repository.
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(corpus.root())
        .env("HOME", corpus.home())
        .status()
        .expect("git runs");
    assert!(git.success());
    let cases = cases("good");
    check_all(&cases, |case| {
        let path = format!("good/{case}");
        let run = corpus.run(&["compile", &path]);
        assert_eq!(run.code, 0, "{case}: {}", run.transcript());
        corpus.settings("good").bind(|| {
            insta::assert_snapshot!(snapshot_name(case), run.transcript());
        });
    });
}

#[test]
fn a_huge_pipeline_file_is_refused_before_parsing() {
    let corpus = Corpus::new();
    let big = corpus.root().join("big.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    std::fs::write(&big, line.repeat(5 * 1024 * 1024 / line.len() + 1)).unwrap();
    let run = corpus.run(&["compile", "big.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: cannot read `big.yaml`: the file is 5242"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_or_binary_pipeline_file_is_bad_input() {
    let corpus = Corpus::new();
    let run = corpus.run(&["compile", "nope.yaml"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: cannot read `nope.yaml`: no such file\n\nerror: `nope.yaml` is not a valid pipeline: 1 error\n"
    );
    std::fs::write(corpus.root().join("bin.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let run = corpus.run(&["compile", "bin.yaml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("it is not UTF-8 text"),
        "{}",
        run.stderr
    );
}
