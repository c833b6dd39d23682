//! Conditions on edges, as the executor sees them: the [`Router`] trait and where its work runs.

use serde_json::{Map, Value};

use orchestra_graph::Edge;
use orchestra_graph::state::State;

/// Evaluates conditions of conditional edges.
pub trait Router: Send + Sync {
    /// The target names `edge`'s condition chooses, given the state after the step.
    fn route(
        &self,
        edge: &Edge,
        state: &State,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<Vec<String>, String>;

    /// Whether `route` may block for long (it runs a subprocess): it is then called on a
    /// blocking thread, not on the runtime's (which also serves Ctrl-C and `attach`).
    fn may_block(&self) -> bool {
        false
    }
}

/// Runs `f` (scheduling work that calls a [`Router`]) on a blocking thread when the router
/// `may_block`, else right here.
pub(crate) async fn routing<T: Send + 'static>(
    may_block: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    if may_block {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| format!("evaluating the conditions failed: {e}"))
    } else {
        Ok(f())
    }
}
