//! Compile-time checks of `for_each` edges (dynamic fan-out): the field is a state channel that
//! can hold a list, the edge has no condition and one agent target, and that target is entered
//! only through this edge (so every run of it is a fan-out over one list).

use orchestra_spec::{Diagnostic, EdgeSpec, FieldType, Mode, PipelineSpec, Reducer, SourceFile};

use crate::compiled::ResolvedAgent;

use crate::state::Channels;

/// Whether agent `name` is the target of a `for_each` edge (its task template sees `item` and
/// `item_index`).
pub(crate) fn is_target(spec: &PipelineSpec, name: &str) -> bool {
    spec.graph
        .iter()
        .any(|e| e.for_each.is_some() && e.to.items.iter().any(|t| t.value == name))
}

/// Checks every `for_each` edge; problems go to `diags`.
pub(crate) fn check(
    spec: &PipelineSpec,
    src: &SourceFile,
    channels: &Channels,
    agents: &[ResolvedAgent],
    diags: &mut Vec<Diagnostic>,
) {
    for (i, e) in spec.graph.iter().enumerate() {
        let Some(field) = &e.for_each else { continue };
        if let [t] = e.to.items.as_slice()
            && let Some(a) = agents.iter().find(|a| a.name == t.value)
        {
            let why = if a.mode == Mode::Interactive {
                Some("is interactive (one chat with a human per item is not supported)")
            } else if a.is_call() {
                Some("is a `call` node (one child session per item is not supported yet)")
            } else if !a.write_repos.is_empty() {
                Some(
                    "writes a repository (its instances would each need a worktree; not supported yet)",
                )
            } else {
                None
            };
            if let Some(why) = why {
                diags.push(
                    Diagnostic::error(format!("`{}` cannot be the target of a `for_each` edge: it {why}", t.value))
                        .at(src, t.span)
                        .with_label("fanned out here")
                        .with_help("fan out to an autonomous agent that reads repositories only, and let one agent after it write"),
                );
            }
        }
        match channels.get(&field.value) {
            None => {
                let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
                diags.push(
                    Diagnostic::error(format!(
                        "unknown state field `{}` in `for_each`",
                        field.value
                    ))
                    .at(src, field.span)
                    .with_label("not a state channel of this pipeline")
                    .with_suggestions(&field.value, names.iter().copied())
                    .with_help(format!("state channels: {}", names.join(", "))),
                );
            }
            Some(ch) => {
                let not_list = match (ch.ty, ch.reducer) {
                    (FieldType::Array, _)
                    | (FieldType::Any, Reducer::Append | Reducer::Replace) => None,
                    (FieldType::Any, Reducer::Sum) => Some("a number (`reducer: sum`)".to_owned()),
                    (FieldType::Any, Reducer::Merge) => {
                        Some("a mapping (`reducer: merge`)".to_owned())
                    }
                    (ty, _) => Some(crate::state::type_name(ty).to_owned()),
                };
                if let Some(what) = not_list {
                    diags.push(
                        Diagnostic::error(format!(
                            "`for_each: {}` needs a list, but state field `{}` holds {what}",
                            field.value, field.value
                        ))
                        .at(src, field.span)
                        .with_label("one task runs per item of this list")
                        .with_help("declare the field with `type: array` (or `reducer: append`)"),
                    );
                }
            }
        }
        if let Some(c) = &e.condition {
            diags.push(
                Diagnostic::error("`for_each` cannot be combined with `condition`")
                    .at(src, c.span)
                    .with_label("a fan-out runs its target once per item; it does not choose")
                    .with_help(
                        "route with the condition to an agent, and fan out from that agent's edge",
                    ),
            );
        }
        check_target(spec, src, i, e, diags);
    }
}

/// The target of `for_each` edge `i`: exactly one agent, entered through no other edge, no
/// `on_error` and no `on_max_loops`.
fn check_target(
    spec: &PipelineSpec,
    src: &SourceFile,
    i: usize,
    e: &EdgeSpec,
    diags: &mut Vec<Diagnostic>,
) {
    let [target] = e.to.items.as_slice() else {
        diags.push(
            Diagnostic::error(format!(
                "a `for_each` edge has one target, not {}",
                e.to.items.len()
            ))
            .at(src, e.to.span)
            .with_label("each item gets a task of one agent")
            .with_help("give each fanned-out agent its own `for_each` edge"),
        );
        return;
    };
    let name = target.value.as_str();
    if matches!(name, orchestra_spec::END | orchestra_spec::FAIL) {
        diags.push(
            Diagnostic::error(format!("`for_each` cannot lead to `{name}`"))
                .at(src, target.span)
                .with_label("a fan-out runs an agent once per item")
                .with_help("point the `for_each` edge at the agent that handles one item"),
        );
        return;
    }
    let again = "the target of a `for_each` edge runs only as its fan-out";
    let help = "fan out from an agent placed before it (loop back to that agent instead)";
    for (j, other) in spec.graph.iter().enumerate() {
        if j == i {
            continue;
        }
        if let Some(t) = other.to.items.iter().find(|t| t.value == name) {
            diags.push(
                Diagnostic::error(format!(
                    "`{name}` is the target of a `for_each` edge (line {}), so no other edge can lead to it",
                    e.from.span.line
                ))
                .at(src, t.span)
                .with_label(again)
                .with_help(help),
            );
        }
        if let Some(o) = other.on_max_loops.as_ref().filter(|o| o.value == name) {
            diags.push(
                Diagnostic::error(format!(
                    "`on_max_loops` cannot lead to `{name}`, the target of a `for_each` edge"
                ))
                .at(src, o.span)
                .with_label(again)
                .with_help(help),
            );
        }
    }
    if let Some(o) = e.on_max_loops.as_ref().filter(|o| o.value == name) {
        diags.push(
            Diagnostic::error(format!(
                "`on_max_loops` cannot lead to `{name}`, the target of a `for_each` edge"
            ))
            .at(src, o.span)
            .with_label(again)
            .with_help(help),
        );
    }
    for (agent, _, a) in spec.agents.iter() {
        if let Some(o) = a.on_error.as_ref().filter(|o| o.value == name) {
            diags.push(
                Diagnostic::error(format!(
                    "`on_error` of `{agent}` cannot lead to `{name}`, the target of a `for_each` edge"
                ))
                .at(src, o.span)
                .with_label(again)
                .with_help("route the failure to an agent that is not fanned out"),
            );
        }
    }
}

/// The items a `for_each` over state field `field` fans out to, read from `state` when the
/// edge fires. A value that is not a list (or was never written) is an error naming the field
/// and what it holds.
pub fn fan_out_items<'s>(
    state: &'s crate::state::State,
    field: &str,
) -> Result<&'s [serde_json::Value], String> {
    match state.get(field) {
        Some(serde_json::Value::Array(items)) => Ok(items),
        None | Some(serde_json::Value::Null) => Err(format!(
            "`for_each: {field}` needs a list, but state field `{field}` was never written (it is null)"
        )),
        Some(other) => Err(format!(
            "`for_each: {field}` needs a list, but state field `{field}` holds {}: {}",
            json_kind(other),
            crate::state::shorten(other)
        )),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_items_of_a_fan_out_are_a_list_or_a_clear_error() {
        let state: crate::state::State = serde_json::from_value(json!({
            "subtopics": ["a", "b"], "empty": [], "text": "abc", "unset": null
        }))
        .unwrap();
        assert_eq!(fan_out_items(&state, "subtopics").unwrap().len(), 2);
        assert!(fan_out_items(&state, "empty").unwrap().is_empty());
        let e = fan_out_items(&state, "text").unwrap_err();
        assert_eq!(
            e,
            "`for_each: text` needs a list, but state field `text` holds a string: \"abc\""
        );
        let e = fan_out_items(&state, "unset").unwrap_err();
        assert!(e.contains("never written"), "{e}");
    }
}
