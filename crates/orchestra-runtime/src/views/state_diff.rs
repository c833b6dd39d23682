//! The difference between two states (of two checkpoints): the fields added, removed and
//! changed, found by walking both JSON values — objects key by key, arrays item by item — down
//! to the leaves that differ.

use serde::Serialize;
use serde_json::Value;

/// What happened to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the later state.
    Added,
    /// Only in the earlier state.
    Removed,
    /// In both, with different values.
    Changed,
}

/// One field that differs between two states.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Where it is: keys and array indexes joined by `.` (`agent_outputs.critic.verdict`,
    /// `notes.2`); a key with a `.` in it is written in brackets (`files["a.txt"]`).
    pub path: String,
    pub kind: ChangeKind,
    /// The earlier value (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The later value (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The fields that differ from `before` to `after`, in document order (`before`'s keys first,
/// then the keys only `after` has). Equal states give none.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), before, after, &mut out);
    out
}

fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && !key.contains(['.', '[', ']', '"']);
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::from(key)),
    }
}

fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        _ if a == b => {}
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = child(&path, k);
                match y.get(k) {
                    Some(vb) => walk(p, va, vb, out),
                    None => out.push(Change {
                        path: p,
                        kind: ChangeKind::Removed,
                        before: Some(va.clone()),
                        after: None,
                    }),
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(Change {
                    path: child(&path, k),
                    kind: ChangeKind::Added,
                    before: None,
                    after: Some(vb.clone()),
                });
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = child(&path, &i.to_string());
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(p, va, vb, out),
                    (Some(va), None) => out.push(Change {
                        path: p,
                        kind: ChangeKind::Removed,
                        before: Some(va.clone()),
                        after: None,
                    }),
                    (None, Some(vb)) => out.push(Change {
                        path: p,
                        kind: ChangeKind::Added,
                        before: None,
                        after: Some(vb.clone()),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ => out.push(Change {
            path,
            kind: ChangeKind::Changed,
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_added_removed_and_changed_are_found_at_their_paths() {
        let a = json!({"task": "x", "outputs": {"critic": {"verdict": "revise", "n": 1}},
            "notes": ["a", "b"], "gone": true, "files": {"a.txt": 1}});
        let b = json!({"task": "x", "outputs": {"critic": {"verdict": "approve", "n": 1}, "synth": "ok"},
            "notes": ["a", "c", "d"], "files": {"a.txt": 2}});
        let d = diff(&a, &b);
        let seen: Vec<(&str, ChangeKind)> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            seen,
            [
                ("outputs.critic.verdict", ChangeKind::Changed),
                ("outputs.synth", ChangeKind::Added),
                ("notes.1", ChangeKind::Changed),
                ("notes.2", ChangeKind::Added),
                ("gone", ChangeKind::Removed),
                ("files[\"a.txt\"]", ChangeKind::Changed),
            ]
        );
        assert_eq!(d[0].before, Some(json!("revise")));
        assert_eq!(d[0].after, Some(json!("approve")));
        assert_eq!(d[4].after, None);
        assert!(diff(&a, &a).is_empty());
        // A value of another type is changed whole.
        let t = diff(&json!({"x": [1]}), &json!({"x": {"0": 1}}));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].path, "x");
        assert_eq!(t[0].kind, ChangeKind::Changed);
        // Whole states that are not objects.
        assert_eq!(diff(&json!(1), &json!(2))[0].path, "");
    }
}
