//! Call nodes at compile time: the called pipeline compiled with its caller, what the node
//! resolves to (and keeps through the stored JSON and a move of the project), and the errors of
//! calls that cannot work: cycles, a child's own errors in its own file.

use std::path::Path;

use orchestra_graph::{LoadOptions, load};
use orchestra_spec::Diagnostic;

const PHASE: &str = "name: phase\ninputs:\n  kind: { type: string, enum: [design, plan], required: true }\n  brief: { type: string, required: true }\nstate: { draft: { type: string } }\nagents:\n  author: { provider: s, task: { text: 'Write the {{ inputs.kind }}: {{ inputs.brief }}' }, writes: { draft: '' } }\nproviders: { s: { kind: scripted, responses: r.yaml }, other: { kind: scripted, responses: r.yaml } }\ngraph:\n  - { from: START, to: author }\n  - { from: author, to: END }\noutputs:\n  artifact: { from: draft }\n";

/// Compiles `main` as `p.yaml` beside `files` (relative path, text) in a temp project.
fn compile(
    main: &str,
    files: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Result<orchestra_graph::Compiled, Vec<Diagnostic>>,
) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("orchestra.yaml"), "search_paths: ['.']\n").unwrap();
    for dir in ["", "phases"] {
        std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        std::fs::write(tmp.path().join(dir).join("r.yaml"), "agents: {}\n").unwrap();
    }
    for (rel, text) in files {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::write(tmp.path().join("p.yaml"), main).unwrap();
    let opts = LoadOptions {
        cwd: tmp.path().to_path_buf(),
        ..LoadOptions::default()
    };
    let c = load(Path::new("p.yaml"), &opts);
    (tmp, c)
}

fn errors(main: &str, files: &[(&str, &str)]) -> Vec<String> {
    match compile(main, files).1 {
        Ok(_) => panic!("compiled: {main}"),
        Err(d) => d
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{} @ {}", d.message, d.location().unwrap_or_default()))
            .collect(),
    }
}

#[test]
fn a_call_node_holds_its_compiled_pipeline_and_keeps_it_through_storage() {
    let main = "name: main\nproviders: { s: { kind: scripted, responses: r.yaml }, other: { kind: scripted, responses: r.yaml } }\ndefaults: { provider: s }\ninputs: { goal: { default: ship } }\nstate: { doc: { type: string }, plan: { type: string } }\nagents:\n  design: { call: phases/phase.yaml, with: { kind: design, brief: '{{ inputs.goal }}' }, writes: { doc: /outputs/artifact } }\n  plan: { call: phases/phase.yaml, with: { kind: plan, brief: '{{ state.doc }}' }, writes: { plan: /draft } }\ngraph:\n  - { from: START, to: design }\n  - { from: design, to: plan }\n  - { from: plan, to: END }\n";
    let (tmp, c) = compile(main, &[("phases/phase.yaml", PHASE)]);
    let mut c = c.unwrap();
    let design = c.agent("design").unwrap();
    assert!(design.is_call() && !design.has_model());
    let call = design.call.as_deref().unwrap();
    assert_eq!(call.file, "phases/phase.yaml");
    assert_eq!(call.compiled.name, "phase");
    assert_eq!(
        call.compiled.pipeline_path,
        tmp.path().join("phases/phase.yaml")
    );
    assert_eq!(
        call.with,
        [
            ("kind".to_owned(), serde_json::json!("design")),
            ("brief".to_owned(), serde_json::json!("{{ inputs.goal }}"))
        ]
    );
    assert_eq!(design.writes[0].pointer, "/outputs/artifact");
    // The stored form (paths relative to the project) reads back, and moves with the project.
    c.relocate(Path::new(""));
    let stored = serde_json::to_string(&c).unwrap();
    let mut back: orchestra_graph::Compiled = serde_json::from_str(&stored).unwrap();
    let child = &back
        .agent("plan")
        .unwrap()
        .call
        .as_deref()
        .unwrap()
        .compiled;
    assert_eq!(child.pipeline_path, Path::new("phases/phase.yaml"));
    back.relocate(Path::new("/elsewhere"));
    let child = &back
        .agent("plan")
        .unwrap()
        .call
        .as_deref()
        .unwrap()
        .compiled;
    assert_eq!(
        child.pipeline_path,
        Path::new("/elsewhere/phases/phase.yaml")
    );
    // `--provider` applies to the called pipeline's agents too.
    back.use_provider("other").unwrap();
    let child = &back
        .agent("plan")
        .unwrap()
        .call
        .as_deref()
        .unwrap()
        .compiled;
    assert_eq!(child.agent("author").unwrap().model.provider, "other");
}

#[test]
fn a_call_cycle_is_an_error_naming_the_chain() {
    let a = "name: a\nagents:\n  x: { call: b.yaml }\ngraph:\n  - { from: START, to: x }\n  - { from: x, to: END }\n";
    let b = "name: b\nagents:\n  inner: { call: ../p.yaml }\ngraph:\n  - { from: START, to: inner }\n  - { from: inner, to: END }\n";
    let errs = errors(a, &[("sub/b.yaml", b)]);
    assert!(
        errs.iter().any(|e| e.starts_with("cannot read `b.yaml`")),
        "{errs:?}"
    );
    let main = "name: a\nagents:\n  x: { call: sub/b.yaml }\ngraph:\n  - { from: START, to: x }\n  - { from: x, to: END }\n";
    let errs = errors(main, &[("sub/b.yaml", b)]);
    assert!(
        errs.contains(&"call cycle: p.yaml -> sub/b.yaml -> p.yaml @ sub/b.yaml:3:18".to_owned()),
        "{errs:?}"
    );
    assert!(
        errs.contains(
            &"the pipeline `x` calls does not compile (1 error) @ p.yaml:3:14".to_owned()
        ),
        "{errs:?}"
    );
    let me = "name: me\nagents:\n  x: { call: p.yaml }\ngraph:\n  - { from: START, to: x }\n  - { from: x, to: END }\n";
    assert_eq!(
        errors(me, &[]),
        ["call cycle: p.yaml -> p.yaml @ p.yaml:3:14"]
    );
}

#[test]
fn a_called_pipelines_errors_are_reported_in_its_own_file() {
    let main = "name: main\nagents:\n  x: { call: phase.yaml, with: { kind: plan, brief: b } }\ngraph:\n  - { from: START, to: x }\n  - { from: x, to: END }\n";
    let broken = PHASE.replace("writes: { draft: '' }", "writes: { draught: '' }");
    let errs = errors(main, &[("phase.yaml", &broken)]);
    assert!(
        errs.contains(&"unknown state field `draught` @ phase.yaml:7:103".to_owned()),
        "{errs:?}"
    );
}
