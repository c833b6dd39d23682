//! The pipeline's inputs: checked at compile time (names, types of defaults and `enum` values)
//! and, before a session starts, the `--input KEY=VALUE` values read per type, with what is
//! missing, unknown or invalid.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use orchestra_spec::{Diagnostic, InputSpec, InputType, PipelineSpec, SourceFile};

use crate::compiled::Compiled;
use crate::fields::is_template_ident;

/// A pipeline input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedInput {
    /// Its name (`inputs.NAME`).
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Its default (of its type).
    pub default: Option<Value>,
    /// Its type.
    #[serde(default, rename = "type", skip_serializing_if = "is_string")]
    pub ty: InputType,
    /// `required:` as written (see [`ResolvedInput::is_required`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The allowed values (`enum:`).
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

fn is_string(t: &InputType) -> bool {
    *t == InputType::String
}

impl ResolvedInput {
    /// Whether a run must give it: `required:` if written, else when it has no default.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

/// Input values for a run, with what is wrong with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputValues {
    /// `name -> value` (typed) for every input that has one.
    pub values: Map<String, Value>,
    /// Required inputs that were not given.
    pub missing: Vec<String>,
    /// Given names that are not inputs of the pipeline.
    pub unknown: Vec<String>,
    /// Given values that do not fit their input: `(name, why)`.
    pub invalid: Vec<(String, String)>,
}

impl Compiled {
    /// The inputs: `given` values (later entries win) read per type, defaults for the others.
    pub fn inputs_with(&self, given: &[(String, String)]) -> InputValues {
        input_values(&self.inputs, given)
    }
}

/// `given` values (later entries win) of `inputs` read per type, defaults for the others.
fn input_values(inputs: &[ResolvedInput], given: &[(String, String)]) -> InputValues {
    {
        let mut out = InputValues::default();
        for input in inputs {
            let text = given.iter().rev().find(|(k, _)| *k == input.name);
            let value = match text {
                Some((_, text)) => match input.ty.parse(text) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        out.invalid.push((input.name.clone(), why));
                        continue;
                    }
                },
                None => input.default.clone(),
            };
            match value {
                Some(v) => {
                    if let Some(allowed) = &input.allowed
                        && !allowed.contains(&v)
                    {
                        out.invalid.push((
                            input.name.clone(),
                            format!("{} is not one of {}", show(&v), list(allowed)),
                        ));
                        continue;
                    }
                    out.values.insert(input.name.clone(), v);
                }
                None if input.is_required() => out.missing.push(input.name.clone()),
                None => {}
            }
        }
        for (k, _) in given {
            if !inputs.iter().any(|i| i.name == *k) && !out.unknown.contains(k) {
                out.unknown.push(k.clone());
            }
        }
        out
    }
}

fn show(v: &Value) -> String {
    format!("`{v}`")
}

fn list(values: &[Value]) -> String {
    values.iter().map(show).collect::<Vec<_>>().join(", ")
}

/// Checks the inputs (names, defaults and `enum` values of the input's type) and resolves them.
pub(crate) fn resolve(
    spec: &PipelineSpec,
    src: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Vec<ResolvedInput> {
    spec.inputs
        .iter()
        .map(|(name, span, i)| {
            if !is_template_ident(name) {
                diags.push(
                    Diagnostic::error(format!("invalid input name `{name}`"))
                        .at(src, span)
                        .with_label("templates refer to it as `inputs.NAME`: use letters, digits and `_`, not starting with a digit"),
                );
            }
            resolve_one(name, i, src, diags)
        })
        .collect()
}

fn resolve_one(
    name: &str,
    i: &InputSpec,
    src: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> ResolvedInput {
    let ty = i.ty.as_ref().map(|t| t.value).unwrap_or_default();
    let allowed = i.allowed.as_ref().map(|a| {
        for v in a {
            if !ty.matches(v) {
                diags.push(
                    Diagnostic::error(format!(
                        "`enum` value {} of input `{name}` is not {}",
                        show(v),
                        ty.article()
                    ))
                    .at(src, v.span)
                    .with_label(format!("the input's type is `{}`", ty.name())),
                );
            }
        }
        a.iter().map(|v| v.value.clone()).collect::<Vec<_>>()
    });
    let default = i.default.as_ref().map(|d| {
        // Before inputs had types, a default was a string: `default: 3` meant "3".
        let v = match (&i.ty, &d.value) {
            (None, Value::Number(n)) => Value::String(n.to_string()),
            (None, Value::Bool(b)) => Value::String(b.to_string()),
            (_, v) => v.clone(),
        };
        if !ty.matches(&v) {
            diags.push(
                Diagnostic::error(format!(
                    "the default of input `{name}` is not {}",
                    ty.article()
                ))
                .at(src, d.span)
                .with_label(format!("the input's type is `{}`", ty.name()))
                .with_help(format!(
                    "give a default of type `{}`, or change `type:`",
                    ty.name()
                )),
            );
        } else if let Some(allowed) = &allowed
            && !allowed.contains(&v)
        {
            diags.push(
                Diagnostic::error(format!(
                    "the default of input `{name}` is not one of its `enum` values"
                ))
                .at(src, d.span)
                .with_label(format!("allowed: {}", list(allowed))),
            );
        }
        v
    });
    if let (Some(r), Some(_)) = (&i.required, &default)
        && r.value
    {
        diags.push(
            Diagnostic::warning(format!("input `{name}` is required but has a default"))
                .at(src, r.span)
                .with_label("the default is used when it is not given, so it is never missing")
                .with_help("leave out `required: true`, or the default"),
        );
    }
    ResolvedInput {
        name: name.to_owned(),
        description: i.description.clone(),
        default,
        ty,
        required: i.required.as_ref().map(|r| r.value),
        allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_spec::parse_yaml;
    use serde_json::json;

    fn resolve_text(inputs: &str) -> (Vec<ResolvedInput>, Vec<String>) {
        let text = format!("name: p\nagents: {{}}\ngraph: []\ninputs:\n{inputs}");
        let src = SourceFile::new("p.yaml", text.as_str());
        let spec: PipelineSpec = parse_yaml(&src, "pipeline").unwrap();
        let mut diags = Vec::new();
        let r = resolve(&spec, &src, &mut diags);
        let msgs = diags
            .iter()
            .map(|d| format!("{} @{}", d.message, d.location().unwrap_or_default()))
            .collect();
        (r, msgs)
    }

    #[test]
    fn todays_untyped_inputs_keep_working() {
        let (r, diags) =
            resolve_text("  base: { default: main }\n  n: { default: 3 }\n  topic: {}\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(r[0].default, Some(json!("main")));
        assert_eq!(
            r[1].default,
            Some(json!("3")),
            "an untyped default is a string"
        );
        assert!(r[2].is_required() && !r[0].is_required());
    }

    #[test]
    fn bad_defaults_and_enums_are_pointed_at() {
        let (_, diags) = resolve_text(
            "  rounds: { type: integer, default: two }\n  mode: { enum: [fast, 1], default: slow }\n  ok: { type: boolean, required: true, default: false }\n",
        );
        assert_eq!(
            diags,
            [
                "the default of input `rounds` is not an integer @p.yaml:5:37",
                "`enum` value `1` of input `mode` is not a string @p.yaml:6:24",
                "the default of input `mode` is not one of its `enum` values @p.yaml:6:37",
                "input `ok` is required but has a default @p.yaml:7:34",
            ]
        );
    }

    #[test]
    fn given_values_are_typed_checked_and_defaulted() {
        let (inputs, _) = resolve_text(
            "  goal: { type: string, required: true }\n  rounds: { type: integer, default: 2 }\n  mode: { enum: [fast, slow], required: false }\n  tags: { type: array, default: [] }\n",
        );
        let c = |given: &[(&str, &str)]| {
            let given: Vec<(String, String)> = given
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            input_values(&inputs, &given)
        };
        let ok = c(&[("goal", "ship"), ("rounds", "3"), ("tags", "[\"a\"]")]);
        assert_eq!(
            Value::Object(ok.values),
            json!({"goal": "ship", "rounds": 3, "tags": ["a"]})
        );
        let defaults = c(&[("goal", "x")]);
        assert_eq!(defaults.values.get("rounds"), Some(&json!(2)));
        assert!(
            !defaults.values.contains_key("mode"),
            "optional without default"
        );
        let bad = c(&[("rounds", "many"), ("mode", "medium"), ("goel", "x")]);
        assert_eq!(bad.missing, ["goal"]);
        assert_eq!(bad.unknown, ["goel"]);
        assert_eq!(
            bad.invalid,
            [
                (
                    "rounds".to_owned(),
                    "expected an integer, got `many`".to_owned()
                ),
                (
                    "mode".to_owned(),
                    "`\"medium\"` is not one of `\"fast\"`, `\"slow\"`".to_owned()
                ),
            ]
        );
    }
}
