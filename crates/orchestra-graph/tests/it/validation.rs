//! Whole-pipeline validation: diagnostics in file order across files, the graph checks on
//! shapes the corpus does not cover, and no panic on any mutation of a real pipeline.

use std::path::Path;

use orchestra_graph::{LoadOptions, load};
use orchestra_spec::Diagnostic;

const HEAD: &str = "name: p\nproviders: { cli: { kind: command, command: [cat], stdin: true } }\ndefaults: { provider: cli }\n";

fn compile(
    body: &str,
    files: &[(&str, &str)],
) -> Result<orchestra_graph::Compiled, Vec<Diagnostic>> {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(tmp.path().join("p.yaml"), format!("{HEAD}{body}")).unwrap();
    let opts = LoadOptions {
        cwd: tmp.path().to_path_buf(),
        ..LoadOptions::default()
    };
    load(Path::new("p.yaml"), &opts)
}

fn messages(r: Result<orchestra_graph::Compiled, Vec<Diagnostic>>) -> Vec<String> {
    match r {
        Ok(c) => c.warnings.iter().map(ToString::to_string).collect(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn diagnostics_come_in_file_order_pipeline_first() {
    let got = messages(compile(
        "agents:\n  b: { task: t, provider: nope }\n  a: { role: missing }\ngraph:\n  - { from: START, to: [a, b] }\n  - { from: [a, b], to: END }\n",
        &[(
            "prompts/tasks/t.yaml",
            "text: '{{ state.x }} {{ inputs.y }}'\n",
        )],
    ));
    assert_eq!(
        got,
        [
            "p.yaml:5:27: unknown provider `nope`",
            "p.yaml:6:14: unknown role `missing`",
            "prompts/tasks/t.yaml:1:11: unknown state field `x` in task template",
            "prompts/tasks/t.yaml:1:25: input `y` is not declared",
        ]
    );
}

#[test]
fn loops_need_a_bound_on_every_cycle() {
    // Two cycles through `hub`: one bounded (hub -> a -> hub), one not (hub -> b -> hub).
    let body = "agents:\n  hub: {}\n  a: {}\n  b: {}\ngraph:\n  - { from: START, to: hub }\n  - { from: hub, to: [a, b, END] }\n  - { from: a, to: hub, max_loops: 2, on_max_loops: END }\n  - { from: b, to: hub }\n";
    assert_eq!(
        messages(compile(body, &[])),
        ["p.yaml:12:13: loop without a bound: `hub` -> `b` -> `hub`"]
    );
    let fixed = body.replace(
        "  - { from: b, to: hub }",
        "  - { from: b, to: hub, max_loops: 1 }",
    );
    assert_eq!(messages(compile(&fixed, &[])), Vec::<String>::new());
    let self_loop =
        "agents:\n  a: {}\ngraph:\n  - { from: START, to: a }\n  - { from: a, to: [a, END] }\n";
    assert_eq!(
        messages(compile(self_loop, &[])),
        ["p.yaml:8:13: loop without a bound: `a` -> `a`"]
    );
}

#[test]
fn join_any_does_not_wait_for_a_missing_source() {
    let body = "agents:\n  a: {}\n  lost: {}\n  c: {}\ngraph:\n  - { from: START, to: a }\n  - { from: [a, lost], to: c, join: any }\n  - { from: c, to: END }\n";
    assert_eq!(
        messages(compile(body, &[])),
        ["p.yaml:6:3: agent `lost` is never run"]
    );
}

#[test]
fn parallel_writers_are_found_in_loops_but_not_in_chains() {
    let tmp_git = |body: &str| {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        std::fs::write(
            tmp.path().join("p.yaml"),
            format!("{HEAD}workspace: {{ repos: {{ app: {{ path: ., write: true }} }} }}\n{body}"),
        )
        .unwrap();
        let opts = LoadOptions {
            cwd: tmp.path().to_path_buf(),
            ..LoadOptions::default()
        };
        messages(load(Path::new("p.yaml"), &opts))
    };
    // Siblings of a loop run together each round.
    let looped = "agents:\n  p: { tools: [app:write-file] }\n  q: { tools: [app:write-file] }\n  judge: {}\ngraph:\n  - { from: START, to: [p, q] }\n  - { from: [p, q], to: judge }\n  - { from: judge, to: [p, q, END], max_loops: 2, on_max_loops: END }\n";
    let got = tmp_git(looped);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].ends_with("agents `p` and `q` can change repository `app` in the same step"),
        "{got:?}"
    );
    let chain = "agents:\n  p: { tools: [app:write-file] }\n  q: { tools: [app:write-file] }\ngraph:\n  - { from: START, to: p }\n  - { from: p, to: q }\n  - { from: q, to: END }\n";
    assert_eq!(tmp_git(chain), Vec::<String>::new());
}

#[test]
fn a_condition_shared_by_edges_is_checked_against_each() {
    let body = "state: { v: { type: string } }\nagents:\n  a: {}\n  b: {}\ngraph:\n  - { from: START, to: a }\n  - { from: a, condition: r, to: [b, END] }\n  - { from: b, condition: r, to: [END] }\n";
    let got = messages(compile(
        body,
        &[(
            "conditions/r.yaml",
            "rules:\n  - { when: state.v == 'x', to: b }\ndefault: END\n",
        )],
    ));
    assert_eq!(
        got,
        ["conditions/r.yaml:2:33: condition `r` can choose `b`, which is not a target of the edge"]
    );
}

/// Removing any one line, or cutting the file anywhere, gives a result or diagnostics: never a
/// panic.
#[test]
fn no_mutation_of_a_real_pipeline_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("pipelines/pr-review.yaml")).unwrap();
    // A project whose search path is the real project, so prompts and conditions resolve.
    let tmp = tempfile::tempdir().unwrap();
    let real = root.canonicalize().unwrap();
    std::fs::write(
        tmp.path().join("orchestra.yaml"),
        format!("search_paths: [{:?}]\n", real.display().to_string()),
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("pipelines")).unwrap();
    std::fs::create_dir(tmp.path().join("fixtures")).unwrap();
    std::fs::copy(
        real.join("fixtures/pr-review.responses.yaml"),
        tmp.path().join("fixtures/pr-review.responses.yaml"),
    )
    .unwrap();
    let file = tmp.path().join("pipelines/m.yaml");
    let opts = LoadOptions {
        cwd: tmp.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut variants: Vec<String> = (0..lines.len())
        .map(|i| {
            let mut l = lines.clone();
            l.remove(i);
            l.join("\n")
        })
        .collect();
    variants.extend(
        (0..text.len())
            .step_by(37)
            .filter(|i| text.is_char_boundary(*i))
            .map(|i| text[..i].to_owned()),
    );
    let mut failures = 0;
    let mut compiled = 0;
    for v in &variants {
        std::fs::write(&file, v).unwrap();
        let r = std::panic::catch_unwind(|| load(&file, &opts));
        match r {
            Ok(Err(d)) => assert!(d.iter().any(Diagnostic::is_error)),
            Ok(Ok(_)) => compiled += 1,
            Err(_) => failures += 1,
        }
    }
    assert_eq!(failures, 0, "the compiler panicked on {failures} variants");
    // Removing a comment or blank line keeps the pipeline valid: the harness really compiles.
    assert!(compiled > 0);
}
