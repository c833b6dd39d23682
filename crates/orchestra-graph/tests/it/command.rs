//! Command nodes at compile time: what they resolve to, and every way one can be wrong, with
//! its position.

use std::path::Path;

use orchestra_graph::{LoadOptions, load};
use orchestra_spec::Diagnostic;

/// Compiles `text` as `p.yaml` in a directory holding a read-only repo `docs` and a writable
/// repo `app` (a git repository).
fn compile(text: &str) -> Result<orchestra_graph::Compiled, Vec<Diagnostic>> {
    let tmp = tempfile::tempdir().unwrap();
    for repo in ["app", "docs"] {
        std::fs::create_dir_all(tmp.path().join(repo)).unwrap();
    }
    let git = std::process::Command::new("git")
        .args(["init", "-q", "app"])
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(git.success());
    std::fs::write(tmp.path().join("p.yaml"), text).unwrap();
    let opts = LoadOptions {
        cwd: tmp.path().to_path_buf(),
        ..LoadOptions::default()
    };
    load(Path::new("p.yaml"), &opts)
}

const HEAD: &str = "name: p\nworkspace: { repos: { app: { path: app, write: true }, docs: { path: docs } } }\nstate: { tests: {}, code: { type: integer }, out: { type: string } }\ninputs: { file: { default: a.txt } }\n";

fn errors(body: &str) -> Vec<String> {
    match compile(&format!("{HEAD}{body}")) {
        Ok(_) => panic!("compiled: {body}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_command_node_compiles_without_any_provider() {
    let body = "agents:\n  check: { command: [sh, -c, 'test -f {{ inputs.file }}'], repo: app, env: { A: '1' }, timeout: 30s, writes: { tests: '', code: /exit_code, out: /stdout } }\n  look: { command: [ls], repo: docs }\n  here: { command: [pwd] }\ngraph:\n  - { from: START, to: check }\n  - { from: check, to: look }\n  - { from: look, to: here }\n  - { from: here, to: END }\n";
    let c = compile(&format!("{HEAD}{body}")).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let check = c.agent("check").unwrap();
    let node = check.command.as_deref().unwrap();
    assert_eq!(node.argv, ["sh", "-c", "test -f {{ inputs.file }}"]);
    assert_eq!(node.repo.as_deref(), Some("app"));
    assert_eq!(node.env, [("A".to_owned(), "1".to_owned())]);
    assert_eq!(check.timeout.0, std::time::Duration::from_secs(30));
    // Its changes to the writable repository are committed like a writing agent's.
    assert_eq!(check.write_repos, ["app"]);
    let w: Vec<(&str, &str)> = check
        .writes
        .iter()
        .map(|w| (w.field.as_str(), w.pointer.as_str()))
        .collect();
    assert_eq!(
        w,
        [("tests", ""), ("code", "/exit_code"), ("out", "/stdout")]
    );
    // A read-only repository is not written; without `repo` nothing is.
    assert!(c.agent("look").unwrap().write_repos.is_empty());
    assert!(
        c.agent("here")
            .unwrap()
            .command
            .as_deref()
            .unwrap()
            .repo
            .is_none()
    );
    assert!(c.agent("here").unwrap().layers.is_empty());
    // It survives the round trip through the stored JSON.
    let stored = serde_json::to_string(&c).unwrap();
    let back: orchestra_graph::Compiled = serde_json::from_str(&stored).unwrap();
    assert_eq!(back.agent("check").unwrap().command, check.command);
}

#[test]
fn model_keys_next_to_command_are_errors_at_their_key() {
    let got = errors(
        "agents:\n  check:\n    command: [make]\n    task: { text: hi }\n    model: smart\n    tools: [app:read-file]\n    mode: interactive\ngraph:\n  - { from: START, to: check }\n  - { from: check, to: END }\n",
    );
    assert_eq!(
        got,
        [
            "p.yaml:8:5: `task` cannot be given with `command`",
            "p.yaml:9:5: `model` cannot be given with `command`",
            "p.yaml:10:5: `tools` cannot be given with `command`",
            "p.yaml:11:5: `mode` cannot be given with `command`",
        ]
    );
}

#[test]
fn argv_repo_templates_and_writes_are_checked() {
    let got = errors(
        "agents:\n  a: { command: [], writes: { tests: /status } }\n  b: { command: [make, '{{ state.test }}', '{{ inputs.fiel }}'], repo: ap }\n  c: { task: { text: hi }, provider: x, repo: app }\ngraph:\n  - { from: START, to: [a, b, c] }\n  - { from: [a, b, c], to: END }\n",
    );
    assert_eq!(
        got,
        [
            "p.yaml:6:17: `command` of `a` is empty",
            "p.yaml:6:38: the output schema has no property `status`",
            "p.yaml:7:24: unknown state field `test` in `command`",
            "p.yaml:7:44: unknown input `fiel` in `command`",
            "p.yaml:7:72: unknown repository `ap`",
            "p.yaml:8:38: unknown provider `x`",
            "p.yaml:8:47: `repo` is only for command nodes",
        ]
    );
}
