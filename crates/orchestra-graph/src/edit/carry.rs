//! Carrying a checkpoint (scheduler state, run counts, state) from the pipeline that made it
//! to an edited one, and checking state edits.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use orchestra_spec::Reducer;

use super::EditError;
use super::diff::{channel_kind, match_edges};
use crate::compiled::Compiled;
use crate::scheduler::SchedState;
use crate::state::{Channel, Channels, State, shorten, type_matches, type_name};
use crate::topology::{Node, Topology};

/// A checkpoint as the edited pipeline sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Carried {
    /// The scheduler state, with the edited pipeline's agent and edge indices.
    pub sched: SchedState,
    /// Completed runs per agent of the edited pipeline.
    pub runs: Vec<u32>,
    /// The state: the fields the edited pipeline declares (new ones at their initial value).
    pub state: State,
}

/// Carries checkpoint `step` of a session (its scheduler state `sched`, run counts `runs` and
/// state, all of pipeline `old`) over to pipeline `new`, or says every reason it cannot go on
/// under it: an agent that ran or is due to run was removed, a state field's value no longer
/// fits its edited type or reducer, a required input is new.
pub fn carry(
    old: &Compiled,
    new: &Compiled,
    step: u64,
    sched: &SchedState,
    runs: &[u32],
    mut state: State,
    inputs: &Map<String, Value>,
) -> Result<Carried, Vec<EditError>> {
    let (ot, nt) = (&old.topology, &new.topology);
    let mut errors = Vec::new();
    let agent_map: Vec<Option<usize>> = ot
        .agents
        .iter()
        .map(|a| nt.agents.iter().position(|n| n == a))
        .collect();
    for (i, name) in ot.agents.iter().enumerate() {
        if agent_map[i].is_some() {
            continue;
        }
        let ran = runs.get(i).copied().unwrap_or(0);
        let why = if sched.ready.contains(&i) {
            Some("it is due to run next".to_owned())
        } else if ran > 0 {
            Some(format!(
                "it ran {ran} time{}",
                if ran == 1 { "" } else { "s" }
            ))
        } else {
            None
        };
        if let Some(why) = why {
            errors.push(EditError::RemovedAgent {
                agent: name.clone(),
                why,
                step,
            });
        }
    }
    for c in new.channels.iter() {
        let (Some(o), Some(v)) = (old.channels.get(&c.name), state.get(&c.name)) else {
            continue;
        };
        if let Err(problem) = fits(c, v) {
            errors.push(EditError::FieldChanged {
                field: c.name.clone(),
                from: channel_kind(o),
                to: channel_kind(c),
                step,
                value: shorten(v),
                problem,
            });
        }
    }
    for i in &new.inputs {
        if i.is_required() && !inputs.contains_key(&i.name) {
            errors.push(EditError::MissingInput {
                input: i.name.clone(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let node = |n: Node| match n {
        Node::Agent(i) => agent_map.get(i).copied().flatten().map(Node::Agent),
        other => Some(other),
    };
    let edges = match_edges(ot, nt);
    let edge = |ei: &usize| edges.get(*ei).copied().flatten();
    let nodes = |set: &BTreeSet<Node>| set.iter().filter_map(|&n| node(n)).collect();
    let sets = |m: &BTreeMap<usize, BTreeSet<Node>>| -> BTreeMap<usize, BTreeSet<Node>> {
        m.iter()
            .filter_map(|(ei, s)| Some((edge(ei)?, nodes(s))))
            .collect()
    };
    let mut ready: Vec<usize> = sched
        .ready
        .iter()
        .filter_map(|&a| agent_map.get(a).copied().flatten())
        .collect();
    ready.sort_unstable();
    let carried = SchedState {
        step: sched.step,
        ready,
        arrived: sets(&sched.arrived),
        absorbing: sets(&sched.absorbing),
        loops: sched
            .loops
            .iter()
            .filter_map(|(ei, n)| Some((edge(ei)?, *n)))
            .collect(),
        reached_end: sched.reached_end,
        failed: sched
            .failed
            .and_then(|ei| edge(&ei))
            .filter(|&ni| leads_to_fail(nt, ni)),
        // A pending fan-out stays one when its agent and edge are still there and the edge
        // still has `for_each`; otherwise the agent runs once, like any ready agent.
        for_each: sched
            .for_each
            .iter()
            .filter_map(|(&a, ei)| {
                let a = agent_map.get(a).copied().flatten()?;
                let ei = edge(ei)?;
                nt.edges.get(ei)?.for_each.as_ref()?;
                Some((a, ei))
            })
            .collect(),
    };
    let mut new_runs = vec![0; nt.agents.len()];
    for (i, r) in runs.iter().enumerate() {
        if let Some(ni) = agent_map.get(i).copied().flatten() {
            new_runs[ni] = *r;
        }
    }
    state.retain(|k, _| new.channels.get(k).is_some());
    for c in new.channels.iter() {
        state
            .entry(c.name.clone())
            .or_insert_with(|| c.initial.clone());
    }
    Ok(Carried {
        sched: carried,
        runs: new_runs,
        state,
    })
}

fn leads_to_fail(t: &Topology, ei: usize) -> bool {
    t.edges
        .get(ei)
        .is_some_and(|e| e.targets.contains(&Node::Fail))
}

/// Checks `--set field=value` against the pipeline's state fields.
pub fn check_set(channels: &Channels, field: &str, value: &Value) -> Result<(), EditError> {
    let Some(c) = channels.get(field) else {
        return Err(EditError::UnknownField {
            field: field.to_owned(),
            known: channels
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    fits(c, value).map_err(|problem| EditError::BadValue {
        field: field.to_owned(),
        value: shorten(value),
        problem: problem.replacen("is not", "expects", 1),
    })
}

/// Whether `v` can be the value of channel `c`: of its type, of the shape its reducer needs,
/// among its allowed values. The error reads `is not a list`.
fn fits(c: &Channel, v: &Value) -> Result<(), String> {
    if !type_matches(c.ty, v) {
        return Err(format!("is not {}", type_name(c.ty)));
    }
    let shape = match c.reducer {
        Reducer::Append if !(v.is_array() || v.is_null()) => Some("a list"),
        Reducer::Merge if !(v.is_object() || v.is_null()) => Some("a mapping"),
        Reducer::Sum if !(v.is_number() || v.is_null()) => Some("a number"),
        _ => None,
    };
    if let Some(shape) = shape {
        return Err(format!("is not {shape}"));
    }
    if let Some(allowed) = &c.allowed {
        let items: Vec<&Value> = match (c.reducer, v) {
            (Reducer::Append, Value::Array(items)) => items.iter().collect(),
            (_, Value::Null) => Vec::new(),
            _ => vec![v],
        };
        if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(format!(
                "is not one of {} ({} is not)",
                list.join(", "),
                shorten(bad)
            ));
        }
    }
    Ok(())
}
