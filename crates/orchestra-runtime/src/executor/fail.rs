//! How a session routed to `FAIL` ends: the edge's `reason:` rendered over the state and inputs.

use serde_json::Value;

use super::{Executor, Position};
use crate::outcome::Finish;

impl Executor {
    /// The finish of a session whose edge `edge` led to `FAIL` (on the run that took it, and on
    /// every resume after: the checkpoint keeps it).
    pub(super) fn fail_finish(&self, edge: usize, pos: &Position) -> Finish {
        let Some(e) = self.topo.edges.get(edge) else {
            return Finish::Failed {
                error: format!("the session ended at FAIL (edge {edge}, not in this pipeline)"),
            };
        };
        let from: Vec<String> = e
            .sources
            .iter()
            .map(|&s| format!("`{}`", self.topo.name(s)))
            .collect();
        let reason = e.reason.as_ref().map(|text| {
            // A copy of the state, once, at the session's end.
            let state = Value::Object(pos.state.clone());
            let inputs = Value::Object((*self.inputs).clone());
            orchestra_prompts::render_inline(text, &state, &inputs)
                .unwrap_or_else(|err| format!("(its `reason` could not be rendered: {err})"))
        });
        Finish::Fail {
            from: from.join(", "),
            reason,
        }
    }
}
