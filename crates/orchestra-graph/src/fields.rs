//! Checks of the declared state fields and inputs: no base channel redeclared, reducers that fit
//! the type, defaults and `enum` values of the declared type.

use orchestra_spec::{
    BASE_CHANNELS, Diagnostic, FieldType, PipelineSpec, Reducer, SourceFile, StateFieldSpec,
};
use serde_json::Value;

use crate::state::{shorten, type_matches, type_name};

fn reducer_name(r: Reducer) -> &'static str {
    match r {
        Reducer::Replace => "replace",
        Reducer::Append => "append",
        Reducer::Merge => "merge",
        Reducer::Sum => "sum",
    }
}

/// The types a reducer works on (besides `any`).
fn reducer_types(r: Reducer) -> &'static [FieldType] {
    match r {
        Reducer::Replace => &[
            FieldType::String,
            FieldType::Number,
            FieldType::Integer,
            FieldType::Boolean,
            FieldType::Array,
            FieldType::Object,
        ],
        Reducer::Append => &[FieldType::Array],
        Reducer::Merge => &[FieldType::Object],
        Reducer::Sum => &[FieldType::Number, FieldType::Integer],
    }
}

/// Whether `v` suits a field of this reducer and type as a whole value.
fn value_fits(field: &StateFieldSpec, v: &Value) -> bool {
    let shape = match field.reducer {
        Reducer::Append => v.is_array(),
        Reducer::Merge => v.is_object(),
        Reducer::Sum => v.is_number(),
        Reducer::Replace => true,
    };
    shape && type_matches(field.ty, v)
}

/// Checks every declared state field.
pub(crate) fn check_state(spec: &PipelineSpec, src: &SourceFile, diags: &mut Vec<Diagnostic>) {
    for (name, span, field) in spec.state.iter() {
        if BASE_CHANNELS.contains(&name) {
            diags.push(
                Diagnostic::error(format!(
                    "`{name}` is a base channel and cannot be redeclared"
                ))
                .at(src, span)
                .with_label("every pipeline already has it")
                .with_help(format!(
                    "base channels: {}; choose another name",
                    BASE_CHANNELS.join(", ")
                )),
            );
            continue;
        }
        if !is_template_ident(name) {
            diags.push(
                Diagnostic::warning(format!("state field `{name}` is not a plain identifier"))
                    .at(src, span)
                    .with_label(format!(
                        "templates must write `state[\"{name}\"]` instead of `state.{name}`"
                    )),
            );
        }
        let r = field.reducer;
        if field.ty != FieldType::Any && !reducer_types(r).contains(&field.ty) {
            let fits: Vec<&str> = reducer_types(r).iter().map(|t| type_word(*t)).collect();
            diags.push(
                Diagnostic::error(format!(
                    "reducer `{}` does not work on type `{}`",
                    reducer_name(r),
                    type_word(field.ty)
                ))
                .at(src, span)
                .with_label(format!("state field `{name}`"))
                .with_help(format!(
                    "`{}` works on: {} (or `any`)",
                    reducer_name(r),
                    fits.join(", ")
                )),
            );
            continue;
        }
        if let Some(d) = &field.default
            && !value_fits(field, d)
        {
            diags.push(
                Diagnostic::error(format!(
                    "the default of state field `{name}` has the wrong type"
                ))
                .at(src, span)
                .with_label(format!("`{}` is not {}", shorten(d), expected(field)))
                .with_help("give a default of the field's type, or leave it out"),
            );
        }
        if let Some(allowed) = &field.allowed {
            check_enum(name, field, allowed, src, span, diags);
        }
    }
}

fn check_enum(
    name: &str,
    field: &StateFieldSpec,
    allowed: &[Value],
    src: &SourceFile,
    span: orchestra_spec::Span,
    diags: &mut Vec<Diagnostic>,
) {
    match field.reducer {
        Reducer::Merge | Reducer::Sum => {
            diags.push(
                Diagnostic::error(format!("`enum` has no effect on state field `{name}`"))
                    .at(src, span)
                    .with_label(format!("its reducer is `{}`", reducer_name(field.reducer)))
                    .with_help(
                        "`enum` constrains the value (`replace`) or each appended item (`append`)",
                    ),
            );
            return;
        }
        Reducer::Replace => {
            for v in allowed {
                if !type_matches(field.ty, v) || v.is_null() && field.ty != FieldType::Any {
                    diags.push(
                        Diagnostic::error(format!(
                            "`enum` value `{}` of state field `{name}` is not {}",
                            shorten(v),
                            type_name(field.ty)
                        ))
                        .at(src, span)
                        .with_label(format!("the field's type is `{}`", type_word(field.ty))),
                    );
                }
            }
        }
        Reducer::Append => {}
    }
    if allowed.is_empty() {
        diags.push(
            Diagnostic::error(format!("`enum` of state field `{name}` is empty"))
                .at(src, span)
                .with_label("no value could ever be written"),
        );
    }
    if let (Some(d), Reducer::Replace) = (&field.default, field.reducer)
        && !d.is_null()
        && !allowed.contains(d)
    {
        diags.push(
            Diagnostic::error(format!(
                "the default of state field `{name}` is not one of its `enum` values"
            ))
            .at(src, span)
            .with_label(format!("`{}` is not allowed", shorten(d))),
        );
    }
    if let (Some(Value::Array(items)), Reducer::Append) = (&field.default, field.reducer)
        && let Some(bad) = items.iter().find(|i| !allowed.contains(i))
    {
        diags.push(
            Diagnostic::error(format!(
                "the default of state field `{name}` holds a value not in its `enum`"
            ))
            .at(src, span)
            .with_label(format!("`{}` is not allowed", shorten(bad))),
        );
    }
}

fn expected(field: &StateFieldSpec) -> String {
    match field.reducer {
        Reducer::Append => "a list".into(),
        Reducer::Merge => "a mapping".into(),
        Reducer::Sum => "a number".into(),
        Reducer::Replace => type_name(field.ty).into(),
    }
}

fn type_word(t: FieldType) -> &'static str {
    match t {
        FieldType::Any => "any",
        FieldType::String => "string",
        FieldType::Number => "number",
        FieldType::Integer => "integer",
        FieldType::Boolean => "boolean",
        FieldType::Array => "array",
        FieldType::Object => "object",
    }
}

/// Whether `name` can be written as `x.name` in a template.
pub(crate) fn is_template_ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_spec::parse_yaml;

    fn check(state: &str) -> Vec<String> {
        let text = format!("name: p\nagents: {{}}\ngraph: []\nstate:\n{state}");
        let src = SourceFile::new("p.yaml", text.as_str());
        let spec: PipelineSpec = parse_yaml(&src, "pipeline").unwrap();
        let mut diags = Vec::new();
        check_state(&spec, &src, &mut diags);
        diags.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn good_fields_pass() {
        assert!(check("  a: { type: array, reducer: append, enum: [x, y], default: [x] }\n  b: { type: string, enum: [approve, revise] }\n  c: { type: integer, reducer: sum, default: 3 }\n  d: { reducer: merge }\n").is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(
            check(
                "  messages: {}\n  n: { type: string, reducer: sum }\n  v: { type: string, enum: [a, 1], default: b }\n  l: { reducer: append, default: 3 }\n  m: { reducer: merge, enum: [1] }\n"
            ),
            [
                "`messages` is a base channel and cannot be redeclared",
                "reducer `sum` does not work on type `string`",
                "`enum` value `1` of state field `v` is not a string",
                "the default of state field `v` is not one of its `enum` values",
                "the default of state field `l` has the wrong type",
                "`enum` has no effect on state field `m`",
            ]
        );
    }
}
