//! Sessions that go on with an edited pipeline or edited state (`resume`/`replay` with
//! `--pipeline FILE` and `--set FIELD=JSON`).
//!
//! An edit of a session is recorded before anything else changes: an entry of its meta
//! [`EDITS_META`] (`{after_step, at, pipeline_path, changes, set, previous}`, `previous` being the
//! pipeline it replaces, kept so that its earlier checkpoints are still restored with the
//! pipeline that made them), then the new pipeline is stored with the session. The next drive
//! restores the last checkpoint L with the pipeline that made it, carries it over to the
//! session's pipeline (agents and edges by name, see [`orchestra_graph::edit`]), applies the
//! edits' `set`s and commits checkpoint L + 1 — an *edit checkpoint*: no nodes, a full snapshot
//! — before the first step. A crash anywhere in between leaves a session that the next
//! `resume` carries over the same way; nothing recorded is removed (tasks of a step cut short
//! before the edit stay in the store, and the step is run again under the edited pipeline).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use orchestra_graph::Compiled;
use orchestra_graph::edit::{EditError, PipelineDiff, carry, check_set, diff};
use orchestra_store::{CheckpointRecord, SessionPipeline, SessionRecord};

use crate::engine::Engine;
use crate::error::RuntimeError;
use crate::executor::{Position, scheduler_record};
use crate::restore::restore;
use crate::stored::{load_pipeline, pipeline_hash, stored_pipeline};

/// Session meta key of the edits made to a session (a list, oldest first).
pub const EDITS_META: &str = "pipeline_edits";

/// What to change before a session goes on.
#[derive(Clone, Debug, Default)]
pub struct Edit {
    /// The pipeline to go on with instead of the stored one.
    pub pipeline: Option<Arc<Compiled>>,
    /// State fields to set (the whole value, whatever the field's reducer), in order.
    pub set: Vec<(String, Value)>,
}

impl Edit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.pipeline.is_none() && self.set.is_empty()
    }
}

/// What an edit would do to a session, checked against one of its checkpoints.
#[derive(Clone, Debug)]
pub struct EditCheck {
    /// The checkpoint it applies to.
    pub step: u64,
    /// What changed from the pipeline of that checkpoint (empty without `--pipeline`).
    pub diff: PipelineDiff,
}

/// Parses `FIELD=JSON` (`--set` of `resume` and `replay`, the fork of the web UI); a value that is not JSON is refused with the parser's
/// message and position.
pub fn parse_set(s: &str) -> Result<(String, Value), String> {
    let Some((field, json)) = s.split_once('=') else {
        return Err(format!("expected FIELD=JSON, got `{s}`"));
    };
    let field = field.trim();
    if field.is_empty() {
        return Err(format!("expected FIELD=JSON, got `{s}`"));
    }
    let value = serde_json::from_str(json).map_err(|e| {
        format!("the value of `{field}` is not JSON ({e}): `{json}`; a string is quoted: {field}='\"text\"'")
    })?;
    Ok((field.to_owned(), value))
}

impl Engine {
    /// Checks that `session` can go on from checkpoint `at` (its last one when `None`) with
    /// `edit`, without changing anything; says what the edit changes.
    pub async fn check_edit(
        &self,
        session: &str,
        at: Option<u64>,
        edit: &Edit,
    ) -> Result<EditCheck, RuntimeError> {
        let (rec, current) = self.session_pipeline(session).await?;
        let step = match at {
            Some(s) => s,
            None => {
                let id = rec.id.clone();
                let cps = self.store.call(move |s| s.checkpoints(&id)).await?;
                match cps.last() {
                    Some(c) => c.step,
                    None if edit.set.is_empty() => {
                        let diff = edit
                            .pipeline
                            .as_ref()
                            .map(|p| diff(&current, p))
                            .unwrap_or_default();
                        return Ok(EditCheck { step: 0, diff });
                    }
                    None => {
                        return Err(edit_error(
                            &rec.id,
                            0,
                            vec![EditError::UnknownField {
                                field: edit.set[0].0.clone(),
                                known: "none: the session has no checkpoint yet".into(),
                            }],
                        ));
                    }
                }
            }
        };
        let (pos, made_by, _) = self.restore_in(&rec, step, &current).await?;
        let target = edit
            .pipeline
            .clone()
            .unwrap_or_else(|| Arc::clone(&made_by));
        let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
        carried(&made_by, &target, step, pos, &edit.set, &inputs)
            .map_err(|errors| edit_error(&rec.id, step, errors))?;
        let diff = edit
            .pipeline
            .as_ref()
            .map(|p| diff(&made_by, p))
            .unwrap_or_default();
        Ok(EditCheck { step, diff })
    }

    /// Checks `edit` of the leased session `rec` against its last checkpoint and records it.
    pub(crate) async fn edit_leased(
        &self,
        rec: &SessionRecord,
        edit: &Edit,
    ) -> Result<(), RuntimeError> {
        let id = rec.id.clone();
        let last = self
            .store
            .call(move |s| s.checkpoints(&id))
            .await?
            .last()
            .map(|c| c.step);
        let check = self.check_edit(&rec.id, last, edit).await?;
        self.record_edit(rec, last, edit, &check.diff).await
    }

    /// Records `edit` of `rec` (which must be leased) to apply after checkpoint `last` (`None`:
    /// the session has none yet), and stores its pipeline as the session's. The next drive
    /// applies it.
    pub(crate) async fn record_edit(
        &self,
        rec: &SessionRecord,
        last: Option<u64>,
        edit: &Edit,
        changes: &PipelineDiff,
    ) -> Result<(), RuntimeError> {
        let stored = match &edit.pipeline {
            Some(p) => Some(stored_pipeline(p).map_err(|source| RuntimeError::Stored {
                session: rec.id.clone(),
                source,
            })?),
            None => None,
        };
        let previous = stored.as_ref().map(|_| {
            json!({
                "pipeline": rec.pipeline, "pipeline_path": rec.pipeline_path,
                "pipeline_source": rec.pipeline_source, "resolved": rec.resolved,
                "pipeline_hash": rec.pipeline_hash,
            })
        });
        let mut edits = edits_of(rec);
        edits.push(json!({
            "after_step": last,
            "at": orchestra_store::system_now_ms(),
            "pipeline_path": edit.pipeline.as_ref().map(|p| self.relative(&p.pipeline_path)),
            "changes": changes.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "set": edit.set.iter().cloned().collect::<Map<String, Value>>(),
            "previous": previous,
        }));
        let (id, edits) = (rec.id.clone(), Value::Array(edits));
        self.store
            .call(move |s| s.set_session_meta(&id, EDITS_META, &edits))
            .await?;
        if let (Some(p), Some((resolved, hash))) = (&edit.pipeline, stored) {
            let new = SessionPipeline {
                pipeline: p.name.clone(),
                pipeline_path: self.relative(&p.pipeline_path),
                pipeline_source: p.source.text.to_string(),
                resolved,
                pipeline_hash: hash,
            };
            let id = rec.id.clone();
            self.store
                .call(move |s| s.set_session_pipeline(&id, &new))
                .await?;
        }
        Ok(())
    }

    /// When the session's pipeline `compiled` is not the one that made checkpoint `last`
    /// (`made_by`, not `current`), or edits after it are pending: carries `pos` over to
    /// `compiled`, applies the pending `set`s and commits the edit checkpoint `last + 1`. `pos`
    /// then stands there; returns whether it moved.
    pub(crate) async fn apply_edits(
        &self,
        rec: &SessionRecord,
        last: u64,
        (made_by, current): (&Compiled, bool),
        compiled: &Compiled,
        pos: &mut Position,
    ) -> Result<bool, RuntimeError> {
        let sets: Vec<(String, Value)> = edits_of(rec)
            .iter()
            .filter(|e| e.get("after_step").and_then(Value::as_u64) == Some(last))
            .filter_map(|e| e.get("set").and_then(Value::as_object))
            .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        if sets.is_empty() && current {
            return Ok(false);
        }
        let inputs = rec.inputs.as_object().cloned().unwrap_or_default();
        let mut edited = carried(made_by, compiled, last, std::mem::take(pos), &sets, &inputs)
            .map_err(|errors| edit_error(&rec.id, last, errors))?;
        let step = last + 1;
        edited.sched.step = step;
        edited.snapshot_step = step;
        edited.delta_bytes = 0;
        edited.snapshot_bytes = crate::executor::approx_bytes(&Value::Object(edited.state.clone()));
        let cp = CheckpointRecord {
            session: rec.id.clone(),
            step,
            parent_step: Some(last),
            scheduler: scheduler_record(&edited, true),
            snapshot: Some(Value::Object(edited.state.clone())),
            repo_shas: None,
            nodes: Vec::new(),
            created_at: orchestra_store::system_now_ms(),
        };
        self.store.call(move |s| s.commit_checkpoint(&cp)).await?;
        *pos = edited;
        Ok(true)
    }

    /// The pipeline that made checkpoint `step` of `rec` — `compiled`, its current one,
    /// unless an edit after that checkpoint replaced it — and whether it is the current one.
    pub(crate) fn pipeline_at(
        &self,
        rec: &SessionRecord,
        step: u64,
        compiled: &Arc<Compiled>,
    ) -> Result<(Arc<Compiled>, bool), RuntimeError> {
        let previous = edits_of(rec).into_iter().find_map(|e| {
            let after = e.get("after_step").and_then(Value::as_u64)?;
            let resolved = e.get("previous")?.get("resolved")?.as_str()?.to_owned();
            (after >= step).then_some(resolved)
        });
        let Some(text) = previous else {
            return Ok((Arc::clone(compiled), true));
        };
        let made_by = load_pipeline(&text, &self.root).map_err(|source| RuntimeError::Stored {
            session: rec.id.clone(),
            source,
        })?;
        Ok((Arc::new(made_by), false))
    }

    /// Restores checkpoint `step` of `rec` (whose current pipeline is `compiled`) with the
    /// pipeline that made it; returns that pipeline too, and whether it is the current one.
    pub(crate) async fn restore_in(
        &self,
        rec: &SessionRecord,
        step: u64,
        compiled: &Arc<Compiled>,
    ) -> Result<(Position, Arc<Compiled>, bool), RuntimeError> {
        let (made_by, current) = self.pipeline_at(rec, step, compiled)?;
        let (id, c) = (rec.id.clone(), Arc::clone(&made_by));
        let pos = self
            .store
            .call_for(&rec.id, move |s| {
                Ok(restore(&*s, &id, step, &c.topology, &c.channels))
            })
            .await??;
        Ok((pos, made_by, current))
    }
}

/// `pos` (of `old`, at checkpoint `step`) carried over to `new`, with `sets` applied.
pub(crate) fn carried(
    old: &Compiled,
    new: &Compiled,
    step: u64,
    pos: Position,
    sets: &[(String, Value)],
    inputs: &Map<String, Value>,
) -> Result<Position, Vec<EditError>> {
    let mut errors: Vec<EditError> = sets
        .iter()
        .filter_map(|(f, v)| check_set(&new.channels, f, v).err())
        .collect();
    let same = std::ptr::eq(old, new) || pipeline_hash(old) == pipeline_hash(new);
    let mut pos = if same {
        pos
    } else {
        match carry(
            old,
            new,
            step,
            &pos.sched,
            &pos.runs,
            pos.state.clone(),
            inputs,
        ) {
            Ok(c) => Position {
                state: c.state,
                sched: c.sched,
                runs: c.runs,
                ..pos
            },
            Err(e) => {
                errors.extend(e);
                pos
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    for (f, v) in sets {
        pos.state.insert(f.clone(), v.clone());
    }
    Ok(pos)
}

/// A session's `inputs`, plus the defaults of inputs its (edited) pipeline added since.
pub(crate) fn with_defaults(compiled: &Compiled, inputs: &Value) -> Map<String, Value> {
    let mut inputs = inputs.as_object().cloned().unwrap_or_default();
    for i in &compiled.inputs {
        if let Some(d) = &i.default
            && !inputs.contains_key(&i.name)
        {
            inputs.insert(i.name.clone(), d.clone());
        }
    }
    inputs
}

fn edits_of(rec: &SessionRecord) -> Vec<Value> {
    rec.meta
        .get(EDITS_META)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn edit_error(session: &str, step: u64, errors: Vec<EditError>) -> RuntimeError {
    RuntimeError::Edit {
        session: session.to_owned(),
        step,
        errors,
    }
}
