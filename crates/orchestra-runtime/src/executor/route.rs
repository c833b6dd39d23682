//! Conditions on edges, as the executor sees them: the [`Router`] trait and where its work runs.

use serde_json::{Map, Value};

use orchestra_graph::scheduler::Fired;
use orchestra_graph::state::State;
use orchestra_graph::{Edge, Node};
use orchestra_store::{RouteRecord, TraceRecord};

use super::Executor;
use crate::events::Event;

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

    /// What `route` chooses, with a name for the decision when the condition has one (the
    /// label of the rule that matched); by default, no name.
    fn decide(
        &self,
        edge: &Edge,
        state: &State,
        inputs: &Map<String, Value>,
        loops: u32,
    ) -> Result<(Option<String>, Vec<String>), String> {
        self.route(edge, state, inputs, loops).map(|t| (None, t))
    }

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

impl Executor {
    /// Reports and records where the session went after `step`: one [`Event::Routed`] and one
    /// route record per edge that left a finished agent. `decisions` are those of the
    /// conditional edges among `fired`, in order.
    pub(super) fn routed(&self, step: u64, fired: Vec<Fired>, decisions: Vec<Option<String>>) {
        let mut decisions = decisions.into_iter();
        let mut records = Vec::with_capacity(fired.len());
        for f in fired {
            let Some(edge) = self.topo.edges.get(f.edge) else {
                continue;
            };
            let decision = if edge.condition.is_some() {
                decisions.next().flatten()
            } else {
                None
            };
            if f.from == Node::Start {
                continue;
            }
            let route = RouteRecord {
                session: self.session.clone(),
                step,
                from: self.topo.name(f.from).to_owned(),
                condition: edge.condition.clone(),
                decision,
                targets: f
                    .targets
                    .iter()
                    .map(|&t| self.topo.name(t).to_owned())
                    .collect(),
                loop_round: f.loop_round,
                loop_max: f.loop_max,
            };
            self.events.emit(Event::Routed {
                step,
                from: route.from.clone(),
                condition: route.condition.clone(),
                decision: route.decision.clone(),
                targets: route.targets.clone(),
                loop_round: route.loop_round,
                loop_max: route.loop_max,
            });
            records.push(TraceRecord::Route(route));
        }
        self.store.trace(records);
    }
}
