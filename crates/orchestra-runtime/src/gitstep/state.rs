//! What the git side of a step puts into state: the conflicts of parallel writers
//! (`metadata.conflicts`), their texts cut to a size an agent's prompt can hold.

use orchestra_git::{Conflict, ConflictFile};
use orchestra_graph::state::State;
use serde_json::{Value, json};

/// Conflicted file texts put into state are cut at this many bytes (the agent can read the
/// whole file with its tools).
const MAX_TEXT_IN_STATE: usize = 16 * 1024;

/// Cuts a text put into state at [`MAX_TEXT_IN_STATE`] bytes (on a character boundary).
fn capped(text: Option<&String>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    if text.len() <= MAX_TEXT_IN_STATE {
        return json!(text);
    }
    let mut end = MAX_TEXT_IN_STATE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!(format!(
        "{}\n[... {} more bytes; read the file for the rest]",
        &text[..end],
        text.len() - end
    ))
}

/// A conflict as `metadata.conflicts` holds it.
pub(super) fn conflict_json(repo: &str, c: &Conflict) -> Value {
    let files: Vec<Value> = c
        .files
        .iter()
        .map(|f: &ConflictFile| {
            json!({
                "path": f.path,
                "base": capped(f.base.as_ref()),
                "ours": capped(f.ours.as_ref()),
                "theirs": capped(f.theirs.as_ref()),
                "with_markers": capped(f.with_markers.as_ref()),
            })
        })
        .collect();
    json!({ "repo": repo, "agent": c.agent, "step": c.step, "branch": c.branch, "files": files })
}

/// Whether `state.metadata.conflicts` lists anything.
pub(super) fn has_conflicts(state: &State) -> bool {
    state
        .get("metadata")
        .and_then(|m| m.get("conflicts"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_a_char_boundary_with_a_note() {
        let short = "ok".to_owned();
        assert_eq!(capped(Some(&short)), json!("ok"));
        assert_eq!(capped(None), Value::Null);
        let long = "é".repeat(MAX_TEXT_IN_STATE);
        let cut = capped(Some(&long));
        let cut = cut.as_str().unwrap();
        assert!(cut.len() < long.len());
        assert!(
            cut.ends_with("more bytes; read the file for the rest]"),
            "{cut}"
        );
    }

    #[test]
    fn conflicts_in_state_are_detected() {
        let mut state = State::new();
        assert!(!has_conflicts(&state));
        state.insert("metadata".into(), json!({ "conflicts": [] }));
        assert!(!has_conflicts(&state));
        state.insert(
            "metadata".into(),
            json!({ "conflicts": [{ "repo": "app" }] }),
        );
        assert!(has_conflicts(&state));
    }
}
