//! Persistence for Orchestra sessions: the backend-neutral [`Store`] trait, its records and
//! errors, and the strict in-memory [`MemoryStore`] used by runtime tests. Backends live in
//! their own crates (`orchestra-store-sqlite`) and pass the conformance suite
//! (`orchestra_store::conformance`, feature `conformance`).
//!
//! What is stored (see `docs/ARCHITECTURE.md`, "Storage"):
//! - a **session** row, created before the first node starts, with the resolved pipeline,
//!   status, metadata (branch names) and a **lease** so one process drives it;
//! - **task records**: each finished task's writes, stored the moment it finishes. They are the
//!   checkpoint deltas: restoring step N is the latest snapshot at or before N plus the task
//!   writes after it ([`Store::restore_point`]);
//! - **checkpoints**: one per super-step, with the scheduler state, repo SHAs and, when the
//!   runtime decides, a full state **snapshot**;
//! - **node runs** (tokens, tool calls, timings, retries, errors) and interactive **messages**;
//! - the **trace** of what runs did: model turns (prompt as sent, answer), tool calls (arguments,
//!   results, capped) and routing decisions ([`TraceRecord`]).
//!
//! The store knows nothing of reducers; JSON payloads come back exactly as they went in.

mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod fence;
mod memory;
mod queue;
mod records;
mod stop;
mod store;
mod trace;
pub mod validate;
mod views;

pub use clock::{Clock, system_now_ms};
pub use error::{BoxError, ErrorClass, StoreError};
pub use fence::{Fence, fenced_sessions};
pub use memory::MemoryStore;
pub use queue::{QUEUE_META, claimable};
pub use records::{
    ChatMessageRecord, CheckpointRecord, NewSession, NodeRunRecord, SessionPipeline, SessionRecord,
    SessionStatus, TaskRecord, TaskStatus, UnknownStatus,
};
pub use stop::{Renewal, STOP_META, StopRequest};
pub use store::Store;
pub use trace::{
    ModelTurnRecord, RouteRecord, SessionTrace, TRACE_TEXT_CAP, ToolCallRecord, TraceJson,
    TraceRecord, cap_text,
};
pub use views::{
    CheckpointInfo, CostTally, LeaseOutcome, MAX_AMBIGUOUS_CANDIDATES, RestorePoint, SessionFilter,
    SessionSummary, session_matches, session_tail,
};
