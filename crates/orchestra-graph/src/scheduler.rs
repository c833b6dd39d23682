//! The pure scheduler: given the nodes that finished in a super-step, decide which run in the
//! next one — fan-out, `join: all|any|N` barriers, conditions (evaluated by the caller), loop
//! bounds, `on_error` routes, `FAIL` and which agents run one task per item (`for_each`).
//! No I/O and no clock: every decision is a plain function of its inputs, so it is unit-tested
//! here and its state is stored in each checkpoint.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use orchestra_spec::Join;

use crate::topology::{AgentIdx, Edge, Node, Topology};

/// What the scheduler remembers between steps (stored with every checkpoint, so it stays small:
/// how often each agent ran is counted by the runtime from the stored tasks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedState {
    /// Completed super-steps.
    pub step: u64,
    /// Agents to run in the next step, in declaration order.
    pub ready: Vec<AgentIdx>,
    /// `join: all` and `join: N` edges: sources that arrived since the edge last fired.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arrived: BTreeMap<usize, BTreeSet<Node>>,
    /// `join: any` edges that fired: sources whose arrival is still to be absorbed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub absorbing: BTreeMap<usize, BTreeSet<Node>>,
    /// Loops taken per edge.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loops: BTreeMap<usize, u32>,
    /// Whether `END` was reached.
    #[serde(default)]
    pub reached_end: bool,
    /// The edge into `FAIL` that ended the session as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<usize>,
    /// Agents of `ready` brought in by a `for_each` edge (agent -> edge): they run one task per
    /// item of the edge's list, read by the runtime from the state the edge fired in (the state
    /// of this checkpoint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub for_each: BTreeMap<AgentIdx, usize>,
}

/// Why the scheduler cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    /// A condition chose a target that is not in its edge's `to:` list.
    #[error(
        "condition `{condition}` chose `{target}`, which is not one of its edge's targets ({allowed})"
    )]
    UnknownTarget {
        /// The condition.
        condition: String,
        /// What it returned.
        target: String,
        /// The edge's targets.
        allowed: String,
    },
    /// A condition failed to evaluate.
    #[error("condition `{condition}` failed: {message}")]
    Condition {
        /// The condition.
        condition: String,
        /// Why.
        message: String,
    },
    /// A loop bound was reached on an edge without `on_max_loops`.
    #[error(
        "the loop from `{from}` reached its bound of {limit} (max_loops) and the edge has no `on_max_loops`"
    )]
    LoopLimit {
        /// The edge's source(s).
        from: String,
        /// The bound.
        limit: u32,
    },
    /// Nothing can run but a barrier is still waiting.
    #[error(
        "the join into {target} can never fire: {arrived} arrived, but {missing} can no longer run"
    )]
    UnsatisfiableJoin {
        /// The join's target(s).
        target: String,
        /// Sources that arrived.
        arrived: String,
        /// Sources still missing.
        missing: String,
    },
}

/// The result of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `state.ready` holds the next step's agents.
    Continue,
    /// Nothing is left to run. `warnings` report barriers that never fired although `END` was
    /// reached (the work behind them was skipped, and the user should know).
    Done {
        /// Human-readable warnings.
        warnings: Vec<String>,
    },
    /// An edge into `FAIL` fired: the session ends as failed (`state.failed` holds the edge).
    Failed {
        /// The index of the edge.
        edge: usize,
    },
}

/// An edge that fired after a step: which node it left, the targets it chose and its loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The edge's index.
    pub edge: usize,
    /// The finished node whose arrival fired it.
    pub from: Node,
    /// The targets chosen (after loop bounds).
    pub targets: Vec<Node>,
    /// When the condition chose a target the edge loops back to: the loop round this starts
    /// (1-based), or `None` when the bound was reached and `on_max_loops` was taken instead.
    pub loop_round: Option<u32>,
    /// The edge's bound, when the condition chose a loop target (else `None`).
    pub loop_max: Option<u32>,
}

/// What firing an edge chose: its targets, and the loop round and bound (see [`Fired`]).
type Chosen = (Vec<Node>, Option<u32>, Option<u32>);

/// Decides what runs next over one topology.
#[derive(Debug, Clone, Copy)]
pub struct Scheduler<'t> {
    topo: &'t Topology,
}

impl<'t> Scheduler<'t> {
    /// A scheduler for `topo`.
    pub fn new(topo: &'t Topology) -> Self {
        Scheduler { topo }
    }

    /// The state before step 1: the edges out of `START` have fired.
    pub fn start<F>(&self, route: F) -> Result<(SchedState, Outcome), SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        let mut state = SchedState::default();
        let outcome = self.advance_from(
            &mut state,
            &[Node::Start],
            &[],
            route,
            false,
            &mut Vec::new(),
        )?;
        Ok((state, outcome))
    }

    /// Records that the agents of `state.ready` finished (the caller ran them) and computes the
    /// next ready set. `route` evaluates a conditional edge's condition (given the edge's index
    /// and the edge) and returns target names. On error `state` is left unchanged.
    pub fn advance<F>(&self, state: &mut SchedState, route: F) -> Result<Outcome, SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        self.advance_after_errors(state, &[], route)
    }

    /// [`Scheduler::advance`] for a step in which the agents of `errored` failed and go on at
    /// their `on_error` agent instead of following their edges.
    pub fn advance_after_errors<F>(
        &self,
        state: &mut SchedState,
        errored: &[AgentIdx],
        route: F,
    ) -> Result<Outcome, SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        self.advance_traced(state, errored, route, &mut Vec::new())
    }

    /// [`advance_after_errors`](Scheduler::advance_after_errors), also listing in `trace` the
    /// edges that fired, in the order they fired (conditional ones in the order `route` was
    /// called for them).
    pub fn advance_traced<F>(
        &self,
        state: &mut SchedState,
        errored: &[AgentIdx],
        route: F,
        trace: &mut Vec<Fired>,
    ) -> Result<Outcome, SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        let finished: Vec<Node> = state.ready.iter().map(|&a| Node::Agent(a)).collect();
        self.advance_from(state, &finished, errored, route, true, trace)
    }

    fn advance_from<F>(
        &self,
        state: &mut SchedState,
        finished: &[Node],
        errored: &[AgentIdx],
        mut route: F,
        count_step: bool,
        trace: &mut Vec<Fired>,
    ) -> Result<Outcome, SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        let mut next = state.clone();
        if count_step {
            next.step += 1;
        }
        next.for_each.clear();
        let mut ready: BTreeSet<AgentIdx> = BTreeSet::new();
        // Quorum edges that fired in this step: the rest of the step's arrivals are absorbed
        // (they finished before the target ran).
        let mut fired: BTreeSet<usize> = BTreeSet::new();
        for &n in finished {
            if let Node::Agent(a) = n
                && errored.contains(&a)
            {
                if let Some(Node::Agent(h)) = self.topo.on_error_of(a) {
                    ready.insert(h);
                }
                continue;
            }
            for (ei, edge) in self.topo.outgoing(n) {
                if edge.sources.len() > 1 && !self.arrive(&mut next, ei, edge, n, &fired) {
                    continue;
                }
                fired.insert(ei);
                let (targets, loop_round, loop_max) = self.fire(&mut next, ei, edge, &mut route)?;
                for &t in &targets {
                    match t {
                        Node::Agent(a) => {
                            ready.insert(a);
                            if edge.for_each.is_some() {
                                next.for_each.insert(a, ei);
                            }
                        }
                        Node::End => next.reached_end = true,
                        Node::Fail => {
                            next.failed.get_or_insert(ei);
                        }
                        Node::Start => {}
                    }
                }
                trace.push(Fired {
                    edge: ei,
                    from: n,
                    targets,
                    loop_round,
                    loop_max,
                });
            }
        }
        if let Some(edge) = next.failed {
            next.ready = Vec::new();
            *state = next;
            return Ok(Outcome::Failed { edge });
        }
        next.ready = ready.into_iter().collect();
        let outcome = if next.ready.is_empty() {
            let stuck = self.stuck_joins(&next);
            if !next.reached_end
                && let Some((_, err)) = stuck.into_iter().next()
            {
                return Err(err);
            }
            // A quorum's late arrivals wait for its next firing: no warning once `END` is
            // reached.
            Outcome::Done {
                warnings: self
                    .stuck_joins(&next)
                    .into_iter()
                    .filter(|(ei, _)| {
                        self.topo
                            .edges
                            .get(*ei)
                            .is_none_or(|e| !matches!(e.join, Join::Count(_)))
                    })
                    .map(|(_, e)| e.to_string())
                    .collect(),
            }
        } else {
            Outcome::Continue
        };
        *state = next;
        Ok(outcome)
    }

    /// Registers `n`'s arrival at fan-in edge `ei`; true when the edge fires now. `fired` holds
    /// the edges that fired earlier in this step.
    fn arrive(
        &self,
        s: &mut SchedState,
        ei: usize,
        edge: &Edge,
        n: Node,
        fired: &BTreeSet<usize>,
    ) -> bool {
        let all = self.topo.distinct_sources(ei);
        let needed = match edge.join {
            Join::All => all,
            Join::Count(_) if fired.contains(&ei) => return false,
            Join::Count(k) => usize::try_from(k)
                .unwrap_or(usize::MAX)
                .clamp(1, all.max(1)),
            Join::Any => 0,
        };
        match edge.join {
            Join::All | Join::Count(_) => {
                let set = s.arrived.entry(ei).or_default();
                set.insert(n);
                // Only sources of the edge arrive here, so counting them is enough (a
                // member-by-member check made a fan-in of W agents cost W^2).
                if set.len() >= needed {
                    s.arrived.remove(&ei);
                    true
                } else {
                    false
                }
            }
            Join::Any => {
                if let Some(wave) = s.absorbing.get_mut(&ei)
                    && wave.remove(&n)
                {
                    if wave.is_empty() {
                        s.absorbing.remove(&ei);
                    }
                    return false;
                }
                let rest: BTreeSet<Node> =
                    edge.sources.iter().copied().filter(|x| *x != n).collect();
                if rest.is_empty() {
                    s.absorbing.remove(&ei);
                } else {
                    s.absorbing.insert(ei, rest);
                }
                true
            }
        }
    }

    /// Fires edge `ei`: its targets (chosen by the condition, if any), with loop bounds
    /// applied, and the loop's round and bound (see [`Fired`]).
    fn fire<F>(
        &self,
        s: &mut SchedState,
        ei: usize,
        edge: &Edge,
        route: &mut F,
    ) -> Result<Chosen, SchedError>
    where
        F: FnMut(usize, &Edge) -> Result<Vec<String>, String>,
    {
        let mut targets: Vec<Node> = match &edge.condition {
            None => edge.targets.clone(),
            Some(cond) => {
                let names = route(ei, edge).map_err(|message| SchedError::Condition {
                    condition: cond.clone(),
                    message,
                })?;
                let mut out = Vec::new();
                for name in names {
                    let node = self
                        .topo
                        .node(&name)
                        .filter(|n| edge.targets.contains(n))
                        .ok_or_else(|| SchedError::UnknownTarget {
                            condition: cond.clone(),
                            target: name.clone(),
                            allowed: self.names(&edge.targets),
                        })?;
                    if !out.contains(&node) {
                        out.push(node);
                    }
                }
                out
            }
        };
        let loops_now = targets.iter().any(|t| edge.loop_targets.contains(t));
        let (mut round, mut bound) = (None, None);
        if loops_now && let Some(limit) = edge.max_loops {
            bound = Some(limit);
            let taken = s.loops.entry(ei).or_insert(0);
            if *taken >= limit {
                let Some(instead) = edge.on_max_loops else {
                    return Err(SchedError::LoopLimit {
                        from: self.names(&edge.sources),
                        limit,
                    });
                };
                targets.retain(|t| !edge.loop_targets.contains(t));
                if !targets.contains(&instead) {
                    targets.push(instead);
                }
            } else {
                *taken += 1;
                round = Some(*taken);
            }
        }
        Ok((targets, round, bound))
    }

    /// Barriers (`join: all` or `N`) that got some but not enough of their sources, by edge.
    fn stuck_joins(&self, s: &SchedState) -> Vec<(usize, SchedError)> {
        s.arrived
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .filter_map(|(ei, set)| {
                let edge = self.topo.edges.get(*ei)?;
                let missing: Vec<Node> = edge
                    .sources
                    .iter()
                    .copied()
                    .filter(|x| !set.contains(x))
                    .collect();
                Some((
                    *ei,
                    SchedError::UnsatisfiableJoin {
                        target: self.names(&edge.targets),
                        arrived: self.names(&set.iter().copied().collect::<Vec<_>>()),
                        missing: self.names(&missing),
                    },
                ))
            })
            .collect()
    }

    fn names(&self, nodes: &[Node]) -> String {
        let v: Vec<String> = nodes
            .iter()
            .map(|n| format!("`{}`", self.topo.name(*n)))
            .collect();
        v.join(", ")
    }
}

#[cfg(test)]
mod tests;
