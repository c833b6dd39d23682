//! Rebuilding a session's [`Position`] at a checkpoint: the nearest snapshot plus the task
//! writes after it, applied step by step in declaration order — exactly what the run did.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use orchestra_graph::Topology;
use orchestra_graph::scheduler::SchedState;
use orchestra_graph::state::{Channels, State};
use orchestra_store::{CostTally, Store, StoreError, TaskStatus};

use crate::executor::{Position, StepWrites, approx_bytes, declared_from_record};

/// Why a checkpoint could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such checkpoint.
    #[error("session `{session}` has no checkpoint {step}")]
    NoCheckpoint {
        /// Session.
        session: String,
        /// Step asked for.
        step: u64,
    },
    /// The stored data does not fit the pipeline (it was changed or the database damaged).
    #[error("checkpoint {step} of session `{session}` cannot be restored: {reason}")]
    Corrupt {
        /// Session.
        session: String,
        /// Step.
        step: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Restores the position of `session` after checkpoint `step`.
pub fn restore(
    store: &dyn Store,
    session: &str,
    step: u64,
    topo: &Topology,
    channels: &Channels,
) -> Result<Position, RestoreError> {
    let corrupt = |reason: String| RestoreError::Corrupt {
        session: session.to_owned(),
        step,
        reason,
    };
    let rp = store
        .restore_point(session, step)?
        .ok_or_else(|| RestoreError::NoCheckpoint {
            session: session.to_owned(),
            step,
        })?;
    let mut state: State = match rp.base.snapshot {
        Some(Value::Object(m)) => m,
        _ => {
            return Err(corrupt(format!(
                "snapshot at step {} is not a state object",
                rp.base.step
            )));
        }
    };
    let snapshot_bytes = approx_bytes(&Value::Object(state.clone()));
    let mut delta_bytes = 0;
    let mut by_step: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    // Runs per agent: one per step it ran in (a `for_each` target's instances are one run).
    let mut after_snapshot: BTreeSet<(u64, String)> = BTreeSet::new();
    for t in rp.tasks.into_iter().filter(|t| t.status == TaskStatus::Ok) {
        after_snapshot.insert((t.step, orchestra_spec::agent_of(&t.node).to_owned()));
        by_step.entry(t.step).or_default().push(t);
    }
    for (s, mut tasks) in by_step {
        tasks.sort_by_key(|t| t.task_idx);
        let mut writes = StepWrites::with_capacity(tasks.len());
        for t in tasks {
            let declared = declared_from_record(&t.writes);
            delta_bytes += approx_bytes(&t.output)
                + declared.iter().map(|(_, v)| approx_bytes(v)).sum::<u64>();
            writes.result(&t.node, t.output, declared, t.error.is_some());
        }
        channels
            .apply(&mut state, writes.into_writes())
            .map_err(|e| corrupt(format!("replaying step {s}: {e}")))?;
    }
    let sched: SchedState = serde_json::from_value(rp.target.scheduler)
        .map_err(|e| corrupt(format!("scheduler state: {e}")))?;
    // Run counts and tokens: those recorded with the snapshot, plus what came after it.
    let counts = &rp.base.scheduler;
    let mut runs: Vec<u32> = counts
        .get("runs")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    runs.resize(topo.agents.len(), 0);
    let mut tokens = counts.get("tokens").and_then(Value::as_u64).unwrap_or(0);
    // Snapshots taken before costs were kept have none: those runs' costs are unknown.
    let mut cost: CostTally = counts
        .get("cost")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for (_, node) in &after_snapshot {
        if let Some(i) = topo.agents.iter().position(|a| a == node) {
            runs[i] += 1;
        }
    }
    if step > rp.base.step {
        for r in store
            .node_runs(session)?
            .iter()
            .filter(|r| r.step > rp.base.step && r.step <= step)
        {
            tokens = tokens.saturating_add(r.tokens_in.saturating_add(r.tokens_out));
            cost.add(r.cost_usd);
        }
    }
    Ok(Position {
        state,
        sched,
        runs,
        tokens,
        cost,
        inherited_tokens: 0,
        inherited_cost: CostTally::default(),
        snapshot_step: rp.base.step,
        snapshot_bytes,
        delta_bytes,
    })
}
