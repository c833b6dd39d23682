//! Child sessions (run by call nodes) in listings: sessions in tree order (each child right
//! after its parent, indented), and a session's children with the step that called them.

use std::collections::HashMap;

use orchestra_store::SessionSummary;

/// `sessions` (newest first) with each child after its parent, oldest call first; `(depth,
/// session)`. A child whose parent is not listed is shown at the top level.
pub(crate) fn tree(sessions: Vec<SessionSummary>) -> Vec<(usize, SessionSummary)> {
    let listed: std::collections::HashSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let parent_of = |s: &SessionSummary| {
        s.parent_node
            .as_ref()
            .and(s.parent_session.as_ref())
            .filter(|p| listed.contains(*p))
            .cloned()
    };
    let mut kids: HashMap<String, Vec<SessionSummary>> = HashMap::new();
    let mut roots = Vec::new();
    for s in sessions {
        match parent_of(&s) {
            Some(p) => kids.entry(p).or_default().push(s),
            None => roots.push(s),
        }
    }
    for v in kids.values_mut() {
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    }
    let mut out = Vec::new();
    let mut stack: Vec<(usize, SessionSummary)> = roots.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((depth, s)) = stack.pop() {
        if let Some(children) = kids.remove(&s.id) {
            stack.extend(children.into_iter().rev().map(|c| (depth + 1, c)));
        }
        out.push((depth, s));
    }
    out
}

/// The session id cell of a listing: children indented under their parent.
pub(crate) fn id_cell(depth: usize, id: &str) -> String {
    match depth {
        0 => id.to_owned(),
        d => format!("{}└ {id}", "  ".repeat(d - 1)),
    }
}

/// A child as a line: `design  step 1  20261203-...  tracked-phase  completed  809 tokens`.
pub(crate) fn child_line(step: u64, s: &SessionSummary) -> String {
    format!(
        "{}  step {step}  {}  {}  {}  {} tokens",
        s.parent_node.as_deref().unwrap_or("?"),
        s.id,
        s.pipeline,
        s.status.as_str(),
        s.tokens_in.saturating_add(s.tokens_out)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_store::{CostTally, SessionStatus};

    fn summary(id: &str, at: u64, parent: Option<(&str, &str)>) -> SessionSummary {
        SessionSummary {
            id: id.into(),
            name: None,
            pipeline: "p".into(),
            status: SessionStatus::Completed,
            created_at: at,
            updated_at: at,
            steps: 1,
            checkpoints: 2,
            tokens_in: 0,
            tokens_out: 0,
            cost: CostTally::default(),
            parent_session: parent.map(|p| p.0.to_owned()),
            parent_checkpoint: None,
            parent_node: parent.map(|p| p.1.to_owned()),
            error: None,
            lease_owner: None,
            queued: false,
        }
    }

    #[test]
    fn children_follow_their_parent_in_call_order() {
        // Newest first, as the store lists them.
        let listed = vec![
            summary("other", 9, None),
            summary("c2", 4, Some(("top", "plan"))),
            summary("g1", 3, Some(("c1", "inner"))),
            summary("c1", 2, Some(("top", "design"))),
            summary("top", 1, None),
            summary("orphan", 0, Some(("gone", "x"))),
        ];
        let shown: Vec<(usize, String)> =
            tree(listed).into_iter().map(|(d, s)| (d, s.id)).collect();
        let expected: Vec<(usize, String)> = [
            (0, "other"),
            (0, "top"),
            (1, "c1"),
            (2, "g1"),
            (1, "c2"),
            (0, "orphan"),
        ]
        .into_iter()
        .map(|(d, s)| (d, s.to_owned()))
        .collect();
        assert_eq!(shown, expected);
        assert_eq!(id_cell(0, "a"), "a");
        assert_eq!(id_cell(1, "a"), "└ a");
        assert_eq!(id_cell(2, "a"), "  └ a");
    }
}
