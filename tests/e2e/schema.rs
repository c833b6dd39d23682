//! The committed JSON schemas (`schema/`) match what `orchestra schema` prints, and every
//! pipeline of `pipelines/` validates against the committed pipeline schema.

use super::common::{orchestra, workspace_root};

const SCHEMAS: [(&str, &[&str]); 4] = [
    ("pipeline.schema.json", &[]),
    ("project.schema.json", &["--project"]),
    ("condition.schema.json", &["--condition"]),
    ("layer.schema.json", &["--layer"]),
];

#[test]
fn committed_schemas_are_up_to_date() {
    let home = tempfile::tempdir().unwrap();
    for (file, flags) in SCHEMAS {
        let mut args = vec!["schema"];
        args.extend_from_slice(flags);
        let run = orchestra(&workspace_root(), home.path(), &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let committed =
            std::fs::read_to_string(workspace_root().join("schema").join(file)).unwrap_or_default();
        assert!(
            committed == run.stdout,
            "schema/{file} is out of date; regenerate it with\n    cargo run -q -p orchestra-cli -- {} > schema/{file}",
            args.join(" ")
        );
    }
}

fn yaml_to_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn every_pipeline_and_file_validates_against_the_committed_schemas() {
    let root = workspace_root();
    let load = |file: &str| -> jsonschema::Validator {
        let text = std::fs::read_to_string(root.join("schema").join(file)).unwrap();
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    };
    let check = |validator: &jsonschema::Validator, path: &std::path::Path| {
        let doc = yaml_to_json(path);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    };
    let pipeline = load("pipeline.schema.json");
    let mut count = 0;
    let examples = std::fs::read_dir(root.join("pipelines/examples")).unwrap();
    // The pipelines the examples call.
    let phases = std::fs::read_dir(root.join("pipelines/examples/phases")).unwrap();
    for e in std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .chain(examples)
        .chain(phases)
    {
        let p = e.unwrap().path();
        // `pipelines/examples/` keeps each example's responses file beside it.
        let responses = p.to_string_lossy().ends_with(".responses.yaml");
        if p.extension().is_some_and(|x| x == "yaml") && !responses {
            check(&pipeline, &p);
            count += 1;
        }
    }
    assert!(count >= 1);
    check(&load("project.schema.json"), &root.join("orchestra.yaml"));
    let condition = load("condition.schema.json");
    for e in std::fs::read_dir(root.join("conditions")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            check(&condition, &p);
        }
    }
    let layer = load("layer.schema.json");
    for kind in ["roles", "personas", "personalities", "tasks"] {
        for e in std::fs::read_dir(root.join("prompts").join(kind)).unwrap() {
            check(&layer, &e.unwrap().path());
        }
    }
}

#[test]
fn the_schema_rejects_what_the_compiler_rejects_at_parse_time() {
    let validator = {
        let text =
            std::fs::read_to_string(workspace_root().join("schema/pipeline.schema.json")).unwrap();
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    };
    let doc = serde_json::json!({
        "name": "x",
        "agents": { "a": { "rolee": "r" } },
        "graph": [{ "from": "START", "to": "a", "join": "every" }]
    });
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| e.instance_path().to_string())
        .collect();
    assert!(
        errors.iter().any(|p| p.starts_with("/agents/a")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|p| p.starts_with("/graph/0")),
        "{errors:?}"
    );
}
