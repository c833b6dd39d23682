//! Continuing a session on an edited pipeline: what changed between the pipeline a session
//! stored and an edited one ([`diff`]), whether the session's checkpoint can go on under it and
//! the checkpoint carried over to it ([`carry`]), and state edits (`--set FIELD=JSON`,
//! [`check_set`]).
//!
//! The scheduler state names agents and edges by index, so a checkpoint is carried over by
//! name: agents by name, edges by their sources and targets (an edge whose targets changed but
//! whose sources are those of exactly one removed edge is the same edge, changed).

mod carry;
mod diff;

pub use carry::{Carried, carry, check_set};
pub use diff::{Change, PipelineDiff, diff};

/// Why a session cannot go on under an edited pipeline, or a state edit cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// An agent that ran, or is due to run, is not in the edited pipeline.
    #[error(
        "agent `{agent}` is not in the edited pipeline, but {why} at checkpoint {step}; keep it, or replay from a checkpoint before it ran"
    )]
    RemovedAgent {
        /// The agent.
        agent: String,
        /// What the checkpoint holds of it (`it ran 2 times`, `it is due to run next`).
        why: String,
        /// The checkpoint.
        step: u64,
    },
    /// A state field's type or reducer changed so that its value no longer fits.
    #[error(
        "state field `{field}` changed from {from} to {to}, and its value at checkpoint {step} ({value}) {problem}"
    )]
    FieldChanged {
        /// The field.
        field: String,
        /// Type and reducer before (`a list (append)`).
        from: String,
        /// Type and reducer now.
        to: String,
        /// The checkpoint.
        step: u64,
        /// The value (shortened).
        value: String,
        /// Why it does not fit (`is not a string`).
        problem: String,
    },
    /// A required input of the edited pipeline has no value in the session.
    #[error(
        "input `{input}` is required by the edited pipeline, but the session was started without it; give it a `default:`"
    )]
    MissingInput {
        /// The input.
        input: String,
    },
    /// `--set` of a field the pipeline does not declare.
    #[error("--set {field}: the pipeline has no state field `{field}` (fields: {known})")]
    UnknownField {
        /// The field.
        field: String,
        /// The fields there are.
        known: String,
    },
    /// `--set` of a value the field does not accept.
    #[error("--set {field}={value}: state field `{field}` {problem}")]
    BadValue {
        /// The field.
        field: String,
        /// The value (shortened).
        value: String,
        /// Why (`expects an integer`).
        problem: String,
    },
}
