//! Tests of rule evaluation and condition resolution.

use super::*;
use orchestra_spec::{Discovery, SourceFile, Span, Spanned};
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn rules(when: &[(&str, &[&str])], default: &[&str]) -> RuleSet {
    RuleSet {
        path: PathBuf::from("conditions/c.yaml"),
        level: Level::Pipeline,
        description: None,
        rules: when
            .iter()
            .enumerate()
            .map(|(i, (w, to))| Rule {
                when: (*w).to_owned(),
                to: to.iter().map(|s| (*s).to_owned()).collect(),
                line: u32::try_from(i).unwrap() + 2,
            })
            .collect(),
        default: default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn first_matching_rule_routes_else_default() {
    let r = rules(
        &[
            ("state.verdict == \"revise\" and loops < 2", &["a", "b"]),
            ("state.findings | length > 3", &["c"]),
        ],
        &["END"],
    );
    let inputs = Map::new();
    let s = obj(json!({"verdict": "revise", "findings": []}));
    assert_eq!(r.evaluate(&s, &inputs, 0).unwrap(), ["a", "b"]);
    assert_eq!(r.evaluate(&s, &inputs, 2).unwrap(), ["END"]);
    let s = obj(json!({"verdict": "approve", "findings": [1, 2, 3, 4]}));
    assert_eq!(r.evaluate(&s, &inputs, 0).unwrap(), ["c"]);
    let s = obj(json!({"verdict": null, "findings": []}));
    assert_eq!(r.evaluate(&s, &inputs, 0).unwrap(), ["END"]);
}

#[test]
fn decisions_are_named_by_the_rule_that_matched() {
    let r = rules(
        &[
            ("state.verdict == \"revise\"", &["a", "b"]),
            ("'split' == state.mode", &["c"]),
            ("state.findings | length > 3", &["c"]),
        ],
        &["END"],
    );
    let inputs = Map::new();
    let s = obj(json!({"verdict": "revise", "mode": "x", "findings": []}));
    assert_eq!(
        r.decide(&s, &inputs, 0).unwrap(),
        ("revise".to_owned(), vec!["a".to_owned(), "b".to_owned()])
    );
    let s = obj(json!({"verdict": "ok", "mode": "split", "findings": []}));
    assert_eq!(r.decide(&s, &inputs, 0).unwrap().0, "split");
    let s = obj(json!({"verdict": "ok", "mode": "x", "findings": [1, 2, 3, 4]}));
    assert_eq!(
        r.decide(&s, &inputs, 0).unwrap().0,
        "state.findings | length > 3"
    );
    let s = obj(json!({"verdict": "ok", "mode": "x", "findings": []}));
    assert_eq!(
        r.decide(&s, &inputs, 0).unwrap(),
        (DEFAULT_RULE.to_owned(), vec!["END".to_owned()])
    );
    assert_eq!(r.labels_for("c"), ["split", "state.findings | length > 3"]);
    assert_eq!(r.labels_for("END"), [DEFAULT_RULE]);
    assert!(r.labels_for("zzz").is_empty());
    // A comparison with more than a literal on one side is named by its expression.
    let and = rules(&[("state.v == \"x\" and loops < 2", &["a"])], &[]);
    assert_eq!(and.rules[0].label(), "state.v == \"x\" and loops < 2");
}

#[test]
fn inputs_are_visible() {
    let r = rules(&[("inputs.mode == \"fast\"", &["quick"])], &["slow"]);
    let state = Map::new();
    assert_eq!(
        r.evaluate(&state, &obj(json!({"mode": "fast"})), 0)
            .unwrap(),
        ["quick"]
    );
}

#[test]
fn runtime_errors_name_file_and_line() {
    let r = rules(
        &[("state.n > 5", &["a"]), ("state.n + \"x\" == 1", &["a"])],
        &["b"],
    );
    let msg = r
        .evaluate(&obj(json!({"n": 1})), &Map::new(), 0)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "condition expression `state.n + \"x\" == 1` at conditions/c.yaml:3 failed: tried to use + operator on unsupported types number and string"
    );
}

#[test]
fn rules_see_the_channels_they_name_and_the_whole_state_when_they_use_it() {
    let state = obj(json!({
        "verdict": "revise",
        "metadata": {"round": 2},
        "messages": [{"content": "a"}, {"content": "b"}],
    }));
    let inputs = obj(json!({"mode": "fast"}));
    let route = |when: &str| {
        rules(&[(when, &["yes"])], &["no"])
            .evaluate(&state, &inputs, 1)
            .map(|t| t[0].clone())
    };
    assert_eq!(route("state.metadata.round == 2").unwrap(), "yes");
    assert_eq!(route("state.messages | length == 2").unwrap(), "yes");
    assert_eq!(route("state[\"verdict\"] == \"revise\"").unwrap(), "yes");
    assert_eq!(route("state | length == 3").unwrap(), "yes");
    assert_eq!(route("inputs.mode ~ loops == \"fast1\"").unwrap(), "yes");
    assert_eq!(route("state.missing is defined").unwrap(), "no");
    assert_eq!(
        route("state.verdict is defined and state.missing is not defined").unwrap(),
        "yes"
    );
    // A channel the state lacks is undefined, and using it is an error, as before.
    let err = route("state.missing == 1").unwrap_err().to_string();
    assert!(err.contains("undefined"), "{err}");
}

fn resolver_env(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("conditions")).unwrap();
    for (name, text) in files {
        std::fs::write(tmp.path().join("conditions").join(name), text).unwrap();
    }
    tmp
}

fn spanned(name: &str) -> Spanned<String> {
    Spanned::new(
        name.to_owned(),
        Span {
            line: 1,
            col: 12,
            offset: 11,
            len: name.len(),
        },
    )
}

#[test]
fn resolves_rule_files_executables_and_registered() {
    let tmp = resolver_env(&[
        (
            "route.yaml",
            "rules:\n  - when: state.verdict == \"revise\"\n    to: a\ndefault: b\n",
        ),
        ("script.sh", "#!/bin/sh\necho a\n"),
        ("plain.py", "print('a')\n"),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = tmp.path().join("conditions/script.sh");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let d = Discovery::new(tmp.path(), None, None);
    let registered = vec!["in_rust".to_owned()];
    let mut r = ConditionResolver::new(&d, tmp.path(), &registered);
    let pipe = SourceFile::new("p.yaml", "condition: xxxxxxxxxxxx\n");
    let state = vec!["verdict".to_owned()];
    let scope = ExprScope {
        state: &state,
        inputs: &[],
    };
    let mut diags = Vec::new();
    let c = r
        .resolve(&spanned("route"), &pipe, scope, &mut diags)
        .unwrap();
    match c.source {
        ConditionSource::Rules(set) => {
            assert_eq!(set.rules[0].line, 2);
            assert_eq!(set.default, ["b"]);
        }
        other => panic!("{other:?}"),
    }
    let c = r
        .resolve(&spanned("script"), &pipe, scope, &mut diags)
        .unwrap();
    assert!(matches!(c.source, ConditionSource::Executable { .. }));
    let c = r
        .resolve(&spanned("in_rust"), &pipe, scope, &mut diags)
        .unwrap();
    assert_eq!(c.source, ConditionSource::Registered);
    assert!(diags.is_empty(), "{diags:?}");

    assert!(
        r.resolve(&spanned("plain"), &pipe, scope, &mut diags)
            .is_none()
    );
    assert_eq!(diags[0].message, "condition `plain` is not executable");
    assert!(
        r.resolve(&spanned("rout"), &pipe, scope, &mut diags)
            .is_none()
    );
    assert!(
        r.resolve(&spanned("rout"), &pipe, scope, &mut diags)
            .is_none()
    );
    assert_eq!(
        diags.len(),
        3,
        "every reference to a missing condition is reported"
    );
    assert_eq!(diags[1].message, "unknown condition `rout`");
    assert!(
        diags[1].help.contains(&"did you mean `route`?".to_owned()),
        "{:?}",
        diags[1].help
    );
}

#[test]
fn rule_files_are_checked() {
    let tmp = resolver_env(&[(
        "bad.yaml",
        "rules:\n  - when: state.verdikt == \"x\"\n    to: a\n  - when: \"state.x ==\"\n    to: b\n  - when: loops > 1 and foo\n    to: []\ndefault: []\n",
    )]);
    let d = Discovery::new(tmp.path(), None, None);
    let mut r = ConditionResolver::new(&d, tmp.path(), &[]);
    let pipe = SourceFile::new("p.yaml", "condition: bad\n");
    let state = vec!["verdict".to_owned(), "x".to_owned()];
    let mut diags = Vec::new();
    let scope = ExprScope {
        state: &state,
        inputs: &[],
    };
    assert!(
        r.resolve(&spanned("bad"), &pipe, scope, &mut diags)
            .is_none()
    );
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "conditions/bad.yaml:8:10: `default` of a condition cannot be empty",
            "conditions/bad.yaml:2:11: unknown state field `verdikt` in condition",
            "conditions/bad.yaml:4:20: invalid condition expression: unexpected end of input, expected expression",
            "conditions/bad.yaml:7:9: a rule needs at least one target",
            "conditions/bad.yaml:6:25: unknown variable `foo` in condition",
        ]
    );
    // Reported once, not per reference.
    assert!(
        r.resolve(&spanned("bad"), &pipe, scope, &mut diags)
            .is_none()
    );
    assert_eq!(diags.len(), 5);
}

#[test]
fn rules_on_a_field_inside_a_channel_check_the_channel() {
    let tmp = resolver_env(&[(
        "nested.yaml",
        "rules:
  - when: state.tests.exit_code != 0
    to: a
  - when: state.test.stdout
    to: b
default: END
",
    )]);
    let d = Discovery::new(tmp.path(), None, None);
    let mut r = ConditionResolver::new(&d, tmp.path(), &[]);
    let pipe = SourceFile::new("p.yaml", "condition: nested\n");
    let state = vec!["tests".to_owned()];
    let mut diags = Vec::new();
    let scope = ExprScope {
        state: &state,
        inputs: &[],
    };
    assert!(
        r.resolve(&spanned("nested"), &pipe, scope, &mut diags)
            .is_none()
    );
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        ["conditions/nested.yaml:4:11: unknown state field `test` in condition"]
    );
}
