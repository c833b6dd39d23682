//! Unit tests of shell tool specs and argument binding (no processes; see the integration tests).

use super::*;
use serde_json::json;

fn spec(yaml: &str) -> ShellToolSpec {
    let source = orchestra_spec::SourceFile::new("tool.yaml", yaml);
    orchestra_spec::parse_yaml(&source, "tool").unwrap()
}

fn tool(yaml: &str) -> ShellTool {
    ShellTool::from_spec(&spec(yaml), PathBuf::from(".")).unwrap()
}

fn refused(yaml: &str) -> String {
    ShellTool::from_spec(&spec(yaml), PathBuf::from("."))
        .unwrap_err()
        .to_string()
}

#[test]
fn names_are_scoped_by_repo() {
    assert_eq!(
        tool("{name: t, repo: app, command: [true]}").name(),
        "app:t"
    );
    assert_eq!(tool("{name: t, command: [true]}").name(), "t");
}

#[test]
fn bad_specs_are_refused() {
    assert!(refused("{name: t, command: []}").contains("`command` is empty"));
    assert!(refused("{name: t, command: ['{{x}}'], args: {x: {}}}").contains("fixed text"));
    let e = refused("{name: t, command: [echo, '{{fil}}'], args: {file: {}}}");
    assert!(
        e.contains("names no argument") && e.contains("did you mean `file`"),
        "{e}"
    );
    let e = refused("{name: t, command: [echo, '--x={{file}}'], args: {file: {}}}");
    assert!(e.contains("whole element"), "{e}");
    let e = refused("{name: t, command: [echo], args: {file: {}}}");
    assert!(e.contains("used neither"), "{e}");
    let e = refused("{name: t, command: [echo, '{{n}}'], args: {n: {type: integer, default: x}}}");
    assert!(e.contains("must be an integer"), "{e}");
}

#[test]
fn other_braces_are_literal() {
    let t = tool("{name: t, command: [docker, inspect, '--format={{.Name}}']}");
    assert_eq!(
        t.bind(json!({})).unwrap().argv,
        ["inspect", "--format={{.Name}}"]
    );
}

#[test]
fn values_become_single_entries_and_env() {
    let t = tool(
        "{name: t, command: [grep, -n, '{{ pattern }}', '{{files}}'],
          args: {pattern: {}, files: {type: array, default: [a.txt]},
                 mode: {env: MODE, required: false}}}",
    );
    let b = t
        .bind(json!({"pattern": "x; rm -rf ~", "files": ["a b", "$(c)"], "mode": "fast"}))
        .unwrap();
    assert_eq!(b.argv, ["-n", "x; rm -rf ~", "a b", "$(c)"]);
    assert_eq!(b.env, [("MODE".to_owned(), "fast".to_owned())]);
    let b = t.bind(json!({"pattern": "y"})).unwrap();
    assert_eq!(b.argv, ["-n", "y", "a.txt"]);
    assert!(b.env.is_empty());
}

#[test]
fn optional_arguments_without_values_drop_out() {
    let t = tool("{name: t, command: [ls, '{{dir}}'], args: {dir: {required: false}}}");
    assert!(t.bind(json!({})).unwrap().argv.is_empty());
    assert!(t.bind(json!({"dir": null})).unwrap().argv.is_empty());
}

#[test]
fn bad_arguments_are_tool_errors() {
    let t = tool(
        "{name: t, command: [head, -n, '{{count}}', '{{file}}'],
          args: {count: {type: integer}, file: {}}}",
    );
    let e = t.bind(json!({"count": "3", "file": "x"})).unwrap_err();
    assert_eq!(
        e.0,
        "argument `count` must be an integer, got a string `\"3\"`"
    );
    let e = t.bind(json!({"count": 3})).unwrap_err();
    assert_eq!(e.0, "missing required argument `file`");
    let e = t
        .bind(json!({"count": 3, "file": "x", "fiel": 1}))
        .unwrap_err();
    assert!(
        e.0.starts_with("unknown argument `fiel`; did you mean `file`?"),
        "{}",
        e.0
    );
    let e = t.bind(json!("x")).unwrap_err();
    assert!(e.0.contains("expected a JSON object"));
    let e = t.bind(json!({"count": 3, "file": "a\u{0}b"})).unwrap_err();
    assert!(e.0.contains("NUL"));
    assert_eq!(
        t.bind(json!({"count": -3, "file": "x"})).unwrap().argv,
        ["-n", "-3", "x"]
    );
}

#[test]
fn option_like_values_need_a_double_dash() {
    let t = tool("{name: t, command: [git, log, '{{rev}}'], args: {rev: {}}}");
    let e = t.bind(json!({"rev": "--output=/tmp/x"})).unwrap_err();
    assert!(e.0.contains("starts with `-`"), "{}", e.0);
    let t = tool("{name: t, command: [git, log, --, '{{rev}}'], args: {rev: {}}}");
    assert_eq!(
        t.bind(json!({"rev": "-x"})).unwrap().argv,
        ["log", "--", "-x"]
    );
}

#[test]
fn parameters_schema() {
    let t = tool(
        "{name: t, command: [x, '{{a}}', '{{b}}'],
          args: {a: {description: first}, b: {type: array, default: []}}}",
    );
    assert_eq!(
        t.parameters(),
        json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "description": "first"},
                "b": {"type": "array", "items": {"type": "string"}, "default": []}
            },
            "required": ["a"],
            "additionalProperties": false
        })
    );
}
