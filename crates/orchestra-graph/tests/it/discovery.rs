//! Finding files: the project file upward from the pipeline, the three discovery levels, no
//! project at all, and names registered through the library.

use std::path::{Path, PathBuf};

use orchestra_graph::{Compiled, ConditionSource, LoadOptions, ToolKind, load};
use orchestra_spec::{Diagnostic, Level};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn opts(cwd: &Path, home: Option<PathBuf>) -> LoadOptions {
    LoadOptions {
        cwd: cwd.to_path_buf(),
        home,
        ..LoadOptions::default()
    }
}

fn ok(r: Result<Compiled, Vec<Diagnostic>>) -> Compiled {
    r.unwrap_or_else(|d| panic!("{}", d.iter().map(Diagnostic::render).collect::<String>()))
}

const PIPELINE: &str = "name: p
agents:
  a: { role: local, persona: shared, personality: home, task: { text: 'Go.' } }
graph:
  - { from: START, to: a }
  - { from: a, condition: pick, to: END }
";

#[test]
fn levels_are_searched_in_order_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("project");
    let home = tmp.path().join("home/.orchestra");
    write(
        &root,
        "orchestra.yaml",
        "search_paths: [shared]\ndefaults: { provider: cli }\nproviders:\n  cli: { kind: command, command: [cat], stdin: true }\n",
    );
    write(&root, "pipelines/p.yaml", PIPELINE);
    write(
        &root,
        "pipelines/prompts/roles/local.yaml",
        "text: local role\n",
    );
    write(&root, "shared/prompts/roles/local.yaml", "text: shadowed\n");
    write(
        &root,
        "shared/prompts/personas/shared.yaml",
        "text: shared persona\n",
    );
    write(
        &home,
        "prompts/personalities/home.yaml",
        "text: home personality\n",
    );
    write(&home, "conditions/pick.yaml", "default: END\n");
    // Compiled from an unrelated directory: the project is found from the pipeline upward.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let c = ok(load(
        &root.join("pipelines/p.yaml"),
        &opts(&elsewhere, Some(home.clone())),
    ));
    assert_eq!(c.project_root, root);
    let levels: Vec<Option<Level>> = c.agents[0].layers.iter().map(|l| l.level.clone()).collect();
    assert_eq!(
        levels,
        [
            Some(Level::Pipeline),
            Some(Level::SearchPath("shared".into())),
            Some(Level::Home),
            None
        ]
    );
    assert_eq!(c.agents[0].layers[0].text, "local role");
    match &c.conditions["pick"].source {
        ConditionSource::Rules(r) => {
            assert_eq!(r.level, Level::Home);
            assert!(r.rules.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let prompt = c
        .system_prompt(
            &c.agents[0],
            &serde_json::Value::Object(c.initial_state()),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(
        prompt,
        "local role\n\nshared persona\n\nhome personality\n\nGo."
    );
}

#[test]
fn without_a_project_file_the_current_directory_is_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.yaml",
        "name: p\nproviders: { cli: { kind: command, command: [cat, '{{prompt}}'] } }\ndefaults: { provider: cli }\nworkspace: { repos: { here: { path: . } } }\nagents:\n  a: { tools: [here:list-files] }\ngraph:\n  - { from: START, to: a }\n  - { from: a, to: END }\n",
    );
    let c = ok(load(Path::new("p.yaml"), &opts(tmp.path(), None)));
    assert!(c.project_file.is_none());
    assert_eq!(c.project_root, tmp.path());
    assert_eq!(c.repos[0].path, tmp.path().join("."));
    assert_eq!(c.project.search_paths, ["."]);
}

#[test]
fn registered_conditions_and_tools_count() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.yaml",
        "name: p\nproviders: { cli: { kind: command, command: [cat], stdin: true } }\ndefaults: { provider: cli }\nagents:\n  a: { tools: [lookup] }\ngraph:\n  - { from: START, to: a }\n  - { from: a, condition: in_rust, to: [a, END], max_loops: 1 }\n",
    );
    let err = load(Path::new("p.yaml"), &opts(tmp.path(), None)).unwrap_err();
    let msgs: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["unknown tool `lookup`", "unknown condition `in_rust`"]
    );

    let o = LoadOptions {
        registered_conditions: vec!["in_rust".into()],
        registered_tools: vec!["lookup".into()],
        ..opts(tmp.path(), None)
    };
    let c = ok(load(Path::new("p.yaml"), &o));
    assert!(matches!(c.agents[0].tools[0].kind, ToolKind::Registered));
    assert_eq!(c.conditions["in_rust"].source, ConditionSource::Registered);
}

#[cfg(unix)]
#[test]
fn executable_conditions_are_found_with_any_extension() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "p.yaml",
        "name: p\nproviders: { cli: { kind: command, command: [cat], stdin: true } }\ndefaults: { provider: cli }\nagents:\n  a: {}\ngraph:\n  - { from: START, to: a }\n  - { from: a, condition: route, to: [a, END], max_loops: 2 }\n",
    );
    write(
        tmp.path(),
        "conditions/route.py",
        "#!/usr/bin/env python3\nprint('END')\n",
    );
    let script = tmp.path().join("conditions/route.py");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = ok(load(Path::new("p.yaml"), &opts(tmp.path(), None)));
    match &c.conditions["route"].source {
        ConditionSource::Executable { path, level } => {
            assert_eq!(path, &script);
            assert_eq!(level, &Level::Pipeline);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mcp_servers_of_the_pipeline_replace_the_projects_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        "orchestra.yaml",
        "defaults: { provider: cli }\nproviders:\n  cli: { kind: command, command: [cat], stdin: true }\nmcp_servers:\n  fs: { command: project-fs }\n  time: { command: uvx, args: [mcp-server-time], env: { TZ: \"${TZ:-UTC}\" } }\n",
    );
    write(
        root,
        "pipelines/p.yaml",
        "name: p\nmcp_servers:\n  fs: { command: pipeline-fs, args: [docs] }\nagents:\n  a: { task: { text: 'Go.' }, tools: [fs:read_text_file, time:*] }\ngraph:\n  - { from: START, to: a }\n  - { from: a, to: END }\n",
    );
    let c = ok(load(Path::new("pipelines/p.yaml"), &opts(root, None)));
    let names: Vec<&str> = c.mcp_servers.keys().map(String::as_str).collect();
    assert_eq!(names, ["fs", "time"]);
    let fs = &c.mcp_servers["fs"];
    assert_eq!(fs.spec.command.as_ref().unwrap().value, "pipeline-fs");
    assert!(fs.declared_in.ends_with("pipelines/p.yaml"));
    let time = &c.mcp_servers["time"];
    assert!(time.declared_in.ends_with("orchestra.yaml"));
    assert_eq!(
        time.spec.env.get("TZ").map(String::as_str),
        Some("${TZ:-UTC}")
    );
    let kinds: Vec<(&str, &str)> = c.agents[0]
        .tools
        .iter()
        .map(|t| match &t.kind {
            ToolKind::Mcp { server } => (server.as_str(), t.tool.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [("fs", "read_text_file"), ("time", "*")]);
}
