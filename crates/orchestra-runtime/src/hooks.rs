//! Hooks around a super-step (the git integration uses them): what they may do to a step — add
//! `{repo: sha}` to its checkpoint, add state writes, pause or fail the session — and how the
//! executor records what they add so a restore is exact.

use serde_json::{Map, Value};

use orchestra_graph::state::{State, Write};
use orchestra_store::{TaskRecord, TaskStatus};

use crate::executor::{approx_bytes, declared_from_record, task_writes};
use crate::outcome::Finish;
use crate::runner::BoxFuture;
use crate::store_worker::{StoreHandle, WorkerError};

/// The node name under which a hook's state writes are recorded as a task of the step (agent
/// names are identifiers, so it cannot clash). Its records carry only declared writes: nothing
/// goes to `messages` or `agent_outputs`.
pub const HOOK_NODE: &str = "@git";

/// The task index of a hook's record: after every agent of the step, so its writes apply last.
pub const HOOK_TASK_IDX: u32 = u32::MAX;

/// Why a hook stopped the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The session fails with this message.
    #[error("{0}")]
    Failed(String),
    /// The session pauses for a human (for example at a merge conflict). The step is not
    /// checkpointed; resuming runs it again, reusing every finished agent, and calls the hook
    /// again.
    #[error("{reason}")]
    Pause {
        /// The node the pause is about.
        node: String,
        /// What the human has to do.
        reason: String,
    },
}

impl HookError {
    /// How the session finishes because of this error at `step`.
    pub fn into_finish(self, step: u64) -> Finish {
        match self {
            HookError::Failed(error) => Finish::Failed {
                error: format!("step {step}: {error}"),
            },
            HookError::Pause { node, reason } => Finish::Paused { node, reason },
        }
    }
}

/// What a hook adds to a finished step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepEffects {
    /// `{repo: sha}` of the repositories that changed in the step, for its checkpoint.
    pub repo_shas: Option<Value>,
    /// State writes (field, value), applied after the agents' writes and recorded as the task
    /// [`HOOK_NODE`] of the step.
    pub writes: Vec<(String, Value)>,
}

/// Hooks around each super-step.
pub trait StepHooks: Send + Sync {
    /// Called before the agents of `step` start, with their names in declaration order.
    fn before_step<'a>(
        &'a self,
        step: u64,
        nodes: &'a [String],
    ) -> BoxFuture<'a, Result<(), HookError>> {
        let _ = (step, nodes);
        Box::pin(async { Ok(()) })
    }

    /// Called when every agent of `step` has finished, before their writes are applied and the
    /// checkpoint is committed. `state` is the state the agents read (the previous
    /// checkpoint's).
    fn before_checkpoint<'a>(
        &'a self,
        step: u64,
        nodes: &'a [String],
        state: &'a State,
    ) -> BoxFuture<'a, Result<StepEffects, HookError>>;
}

/// What the executor takes from the hooks for one step.
#[derive(Debug, Default)]
pub(crate) struct Hooked {
    /// For the checkpoint.
    pub(crate) repo_shas: Option<Value>,
    /// To apply after the agents' writes.
    pub(crate) writes: Vec<Write>,
    /// Their size, as a restore counts it.
    pub(crate) bytes: u64,
}

/// Runs `before_checkpoint` and records its writes (the moment they exist, like a task's). When
/// the hook has no writes but an interrupted earlier attempt of the step recorded some, those
/// stand: they describe git work that was done then and is not repeated now (a merge).
pub(crate) async fn after_step(
    hooks: &dyn StepHooks,
    store: &StoreHandle,
    session: &str,
    step: u64,
    nodes: &[String],
    state: &State,
) -> Result<Result<Hooked, Finish>, WorkerError> {
    let effects = match hooks.before_checkpoint(step, nodes, state).await {
        Ok(e) => e,
        Err(e) => return Ok(Err(e.into_finish(step))),
    };
    let declared = if effects.writes.is_empty() {
        let sid = session.to_owned();
        let earlier = store
            .call(move |s| s.task_records(&sid, step..=step))
            .await?
            .into_iter()
            .find(|t| t.node == HOOK_NODE && t.status == TaskStatus::Ok);
        earlier.map_or_else(Vec::new, |t| declared_from_record(&t.writes))
    } else {
        let record = TaskRecord {
            session: session.to_owned(),
            step,
            task_idx: HOOK_TASK_IDX,
            node: HOOK_NODE.to_owned(),
            run_index: 0,
            status: TaskStatus::Ok,
            writes: Value::Object(effects.writes.iter().cloned().collect::<Map<_, _>>()),
            output: Value::Null,
            error: None,
            finished_at: orchestra_store::system_now_ms(),
        };
        store.record_tasks(vec![record]).await?;
        effects.writes
    };
    let bytes = if declared.is_empty() {
        0
    } else {
        approx_bytes(&Value::Null) + declared.iter().map(|(_, v)| approx_bytes(v)).sum::<u64>()
    };
    Ok(Ok(Hooked {
        repo_shas: effects.repo_shas,
        writes: if declared.is_empty() {
            Vec::new()
        } else {
            task_writes(HOOK_NODE, Value::Null, declared)
        },
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use orchestra_store::MemoryStore;

    use super::*;

    /// A hook with fixed effects, or one that pauses.
    struct Fixed(Result<Vec<(String, Value)>, HookError>);

    impl StepHooks for Fixed {
        fn before_checkpoint<'a>(
            &'a self,
            _step: u64,
            _nodes: &'a [String],
            _state: &'a State,
        ) -> BoxFuture<'a, Result<StepEffects, HookError>> {
            let effects = self.0.clone().map(|writes| StepEffects {
                repo_shas: Some(json!({ "app": "abc" })),
                writes,
            });
            Box::pin(async move { effects })
        }
    }

    async fn store() -> StoreHandle {
        let store = StoreHandle::spawn(Box::new(MemoryStore::new())).unwrap();
        store
            .call(|s| s.create_session(&crate::testing::new_session("s", "p")))
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn hook_writes_are_recorded_and_stand_when_a_rerun_of_the_step_has_none() {
        let store = store().await;
        let conflicts = json!({ "conflicts": [{ "repo": "app" }] });
        let hook = Fixed(Ok(vec![("metadata".into(), conflicts.clone())]));
        let state = State::new();
        let got = after_step(&hook, &store, "s", 3, &[], &state)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.repo_shas, Some(json!({ "app": "abc" })));
        assert_eq!(
            got.writes.len(),
            1,
            "only the declared write: no message, no output"
        );
        assert_eq!(got.writes[0].writer, HOOK_NODE);
        assert_eq!(got.writes[0].channel, "metadata");
        assert_eq!(got.writes[0].value, conflicts);
        let recorded = store.call(|s| s.task_records("s", 3..=3)).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].node, HOOK_NODE);
        assert_eq!(recorded[0].task_idx, HOOK_TASK_IDX);

        // The step runs again after an interruption; the merge was done the first time, so the
        // hook has nothing to add now: what was recorded then still applies.
        let rerun = Fixed(Ok(Vec::new()));
        let again = after_step(&rerun, &store, "s", 3, &[], &state)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.writes, got.writes);
        assert_eq!(again.bytes, got.bytes);
        // Another step has no such record.
        let other = after_step(&rerun, &store, "s", 4, &[], &state)
            .await
            .unwrap()
            .unwrap();
        assert!(other.writes.is_empty());
        assert_eq!(other.bytes, 0);
    }

    #[tokio::test]
    async fn hook_errors_pause_or_fail_the_session() {
        let store = store().await;
        let state = State::new();
        let pause = Fixed(Err(HookError::Pause {
            node: "b".into(),
            reason: "resolve it".into(),
        }));
        let finish = after_step(&pause, &store, "s", 2, &[], &state)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            finish,
            Finish::Paused {
                node: "b".into(),
                reason: "resolve it".into()
            }
        );
        let fail = Fixed(Err(HookError::Failed("merge conflict".into())));
        let finish = after_step(&fail, &store, "s", 2, &[], &state)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            finish,
            Finish::Failed {
                error: "step 2: merge conflict".into()
            }
        );
    }
}
