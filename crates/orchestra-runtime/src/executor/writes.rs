//! A step's writes to the state and what its checkpoint records: the base channels' writes,
//! the scheduler record, and size estimates for snapshots.

use serde_json::{Map, Value, json};

use orchestra_graph::state::Write;

use super::Position;
use crate::hooks::HOOK_NODE;

/// The writes of a finished task: the declared ones plus the base channels
/// (`messages` gets the text, `agent_outputs` the output).
pub fn task_writes(agent: &str, output: Value, declared: Vec<(String, Value)>) -> Vec<Write> {
    let mut writes = StepWrites::with_capacity(1);
    writes.task(agent, output, declared);
    writes.into_writes()
}

/// The writes of a step, gathered task by task in declaration order. The base channels get one
/// write each for the whole step (every task's text appended to `messages` in order, every
/// output merged into `agent_outputs` in order), not one per task: a wide step would otherwise
/// hold two writes, and a one-entry map, per agent. Agents cannot write to base channels, so
/// applying them before the declared writes gives the state that per-task writes give.
#[derive(Debug, Default)]
pub struct StepWrites {
    writers: Vec<String>,
    messages: Vec<Value>,
    outputs: Map<String, Value>,
    declared: Vec<Write>,
}

impl StepWrites {
    /// Room for `tasks` tasks.
    pub fn with_capacity(tasks: usize) -> Self {
        StepWrites {
            writers: Vec::new(),
            messages: Vec::with_capacity(tasks),
            outputs: Map::with_capacity(tasks),
            declared: Vec::new(),
        }
    }

    /// Adds the next task's writes. A hook's record ([`HOOK_NODE`]) has only what it declared.
    pub fn task(&mut self, agent: &str, output: Value, declared: Vec<(String, Value)>) {
        self.declared
            .extend(declared.into_iter().map(|(channel, value)| Write {
                writer: agent.to_owned(),
                channel,
                value,
            }));
        if agent == HOOK_NODE {
            return;
        }
        if self.writers.len() < 2 {
            self.writers.push(agent.to_owned());
        }
        let content = match &output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut message = Map::with_capacity(3);
        message.insert("role".into(), Value::from("assistant"));
        message.insert("agent".into(), Value::from(agent));
        message.insert("content".into(), Value::String(content));
        self.messages.push(Value::Object(message));
        // The instances of a `for_each` target (`researcher[3]`) leave their outputs as one
        // list under the agent's name, in item order.
        match orchestra_spec::split_instance(agent) {
            Some((base, _)) => {
                let slot = self
                    .outputs
                    .entry(base.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = slot {
                    list.push(output);
                }
            }
            None => {
                self.outputs.insert(agent.to_owned(), output);
            }
        }
    }

    /// Adds the next task's writes, or only its declared ones (the `errors` write) when it is a
    /// failure routed by `on_error` (`failed`): such a task has no output.
    pub fn result(
        &mut self,
        agent: &str,
        output: Value,
        declared: Vec<(String, Value)>,
        failed: bool,
    ) {
        if failed {
            self.declared
                .extend(declared.into_iter().map(|(channel, value)| Write {
                    writer: agent.to_owned(),
                    channel,
                    value,
                }));
        } else {
            self.task(agent, output, declared);
        }
    }

    /// Adds writes made outside the tasks (a hook's).
    pub fn extend(&mut self, writes: Vec<Write>) {
        self.declared.extend(writes);
    }

    /// The writes to apply: the base channels' first, then the declared ones in order.
    pub fn into_writes(self) -> Vec<Write> {
        let mut writes = Vec::with_capacity(2 + self.declared.len());
        if !self.messages.is_empty() {
            // Named in errors (which base channels only get from a corrupt state).
            let writer = match self.writers.as_slice() {
                [one] => one.clone(),
                [first, ..] => format!("{first} and the other agents of the step"),
                [] => String::new(),
            };
            writes.push(Write {
                writer: writer.clone(),
                channel: "messages".into(),
                value: Value::Array(self.messages),
            });
            writes.push(Write {
                writer,
                channel: "agent_outputs".into(),
                value: Value::Object(self.outputs),
            });
        }
        writes.extend(self.declared);
        writes
    }
}

/// The scheduler JSON of a checkpoint. Snapshot checkpoints also carry the run counts and the
/// tokens and cost used, so a restore needs only the tasks after the snapshot.
pub fn scheduler_record(pos: &Position, with_counts: bool) -> Value {
    let mut v = serde_json::to_value(&pos.sched).unwrap_or(Value::Null);
    if with_counts && let Value::Object(m) = &mut v {
        m.insert("runs".into(), json!(pos.runs));
        m.insert("tokens".into(), json!(pos.tokens));
        m.insert("cost".into(), json!(pos.cost));
    }
    v
}

/// The declared writes stored in a task record, back as pairs.
pub fn declared_from_record(writes: &Value) -> Vec<(String, Value)> {
    match writes {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

/// A cheap size estimate of a JSON value (exact for strings; no serialization).
pub fn approx_bytes(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64 + 2,
        Value::Array(a) => 2 + a.iter().map(approx_bytes).sum::<u64>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + 3 + approx_bytes(v))
                .sum::<u64>()
        }
    }
}
