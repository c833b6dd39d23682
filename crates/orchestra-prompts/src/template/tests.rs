//! Tests of composing and rendering prompt templates.

use super::*;
use crate::LayerKind;
use serde_json::json;

fn layer(kind: LayerKind, text: &str, line: u32) -> ResolvedLayer {
    ResolvedLayer {
        kind,
        name: Some("t".into()),
        text: text.into(),
        description: None,
        path: PathBuf::from("prompts/tasks/t.yaml"),
        level: None,
        line,
    }
}

fn agent() -> AgentVars {
    AgentVars {
        name: "critic".into(),
        ..AgentVars::default()
    }
}

#[test]
fn text_without_template_syntax_renders_as_minijinja_would() {
    let (state, inputs, agent) = (json!({}), json!({}), agent());
    let ctx = PromptContext {
        state: &state,
        inputs: &inputs,
        agent: &agent,
        item: None,
    };
    for text in [
        "Work.",
        "Work.\n",
        "Work.\r\n",
        "Two lines\n\n",
        "  indented\n  { braces } and } { and {x}\n",
        "",
        "\n",
        "100% sure # not a comment",
    ] {
        let l = layer(LayerKind::Task, text, 1);
        assert!(!is_template(text), "{text:?}");
        assert_eq!(
            render_task(&l, &ctx).unwrap(),
            render_template(&l, &ctx).unwrap(),
            "{text:?}"
        );
    }
    for text in [
        "{{ agent.name }}",
        "{% if true %}x{% endif %}",
        "a{# note #}b",
    ] {
        assert!(is_template(text), "{text:?}");
    }
    let l = layer(LayerKind::Task, "a{# note #}b\n", 1);
    assert_eq!(render_task(&l, &ctx).unwrap(), "ab");
}

#[test]
fn composes_layers_in_order_and_renders_the_task() {
    let layers = vec![
        layer(
            LayerKind::Task,
            "Review {{ inputs.base }}..{{ inputs.head }} as {{ agent.name }}.\n{% for f in state.findings %}- {{ f }}\n{% endfor %}",
            2,
        ),
        layer(LayerKind::Role, "You are a reviewer.\n", 2),
        layer(LayerKind::Personality, "Be blunt.", 2),
    ];
    let state = json!({"findings": ["a", "b"]});
    let inputs = json!({"base": "HEAD~1", "head": "HEAD"});
    let a = agent();
    let out = compose(
        &layers,
        &PromptContext {
            state: &state,
            inputs: &inputs,
            agent: &a,
            item: None,
        },
    )
    .unwrap();
    assert_eq!(
        out,
        "You are a reviewer.\n\nBe blunt.\n\nReview HEAD~1..HEAD as critic.\n- a\n- b"
    );
}

#[test]
fn undefined_variable_names_the_variable_file_and_line() {
    let l = layer(LayerKind::Task, "Hello\n\nPlan: {{ state.plan }}\n", 3);
    let state = json!({});
    let inputs = json!({});
    let a = agent();
    let err = render_task(
        &l,
        &PromptContext {
            state: &state,
            inputs: &inputs,
            agent: &a,
            item: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "undefined variable `state.plan` in task template prompts/tasks/t.yaml:5"
    );
}

#[test]
fn paths_below_a_channel_are_data_not_errors() {
    let text = "text: |\n  {{ state.metadata.conflicts }} {{ state.metdata.x }}\n";
    let src = SourceFile::new("t.yaml", text);
    let l = layer(
        LayerKind::Task,
        "{{ state.metadata.conflicts }} {{ state.metdata.x }}\n",
        2,
    );
    let state = vec!["metadata".to_owned()];
    let diags = check_task(
        &l,
        &src,
        &TemplateScope {
            state: &state,
            inputs: &[],
            item: false,
        },
    );
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs, ["unknown state field `metdata` in task template"]);
}

#[test]
fn checks_variables_against_the_scope() {
    let text = "description: d\ntext: |\n  {{ state.findngs }}\n  {{ inputs.bse }} {{ agent.nme }}\n  {{ foo }} {{ range(3) }}\n";
    let src = SourceFile::new("t.yaml", text);
    let l = layer(
        LayerKind::Task,
        "{{ state.findngs }}\n{{ inputs.bse }} {{ agent.nme }}\n{{ foo }} {{ range(3) }}\n",
        3,
    );
    let state = vec!["messages".to_owned(), "findings".to_owned()];
    let inputs = vec!["base".to_owned()];
    let diags = check_task(
        &l,
        &src,
        &TemplateScope {
            state: &state,
            inputs: &inputs,
            item: false,
        },
    );
    let got: Vec<(String, Option<String>, bool)> = diags
        .iter()
        .map(|d| (d.message.clone(), d.location(), d.is_error()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "unknown agent field `nme` in task template".into(),
                Some("t.yaml:4:23".into()),
                true
            ),
            (
                "unknown variable `foo` in task template".into(),
                Some("t.yaml:5:6".into()),
                true
            ),
            (
                "input `bse` is not declared".into(),
                Some("t.yaml:4:6".into()),
                false
            ),
            (
                "unknown state field `findngs` in task template".into(),
                Some("t.yaml:3:6".into()),
                true
            ),
        ]
    );
    assert!(
        diags[3]
            .help
            .contains(&"did you mean `findings`?".to_owned())
    );
}

#[test]
fn syntax_errors_point_at_the_file_line() {
    let text = "text: |\n  ok\n  {{ state.x( }}\n";
    let src = SourceFile::new("t.yaml", text);
    let l = layer(LayerKind::Task, "ok\n{{ state.x( }}\n", 2);
    let diags = check_task(
        &l,
        &src,
        &TemplateScope {
            state: &[],
            inputs: &[],
            item: false,
        },
    );
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.starts_with("invalid task template: "));
    assert_eq!(diags[0].location().as_deref(), Some("t.yaml:3:15"));
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let l = layer(
        LayerKind::Task,
        "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
        1,
    );
    let (s, i, a) = (json!({}), json!({}), agent());
    let err = render_task(
        &l,
        &PromptContext {
            state: &s,
            inputs: &i,
            agent: &a,
            item: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, PromptError::Render { .. }), "{err}");
}
