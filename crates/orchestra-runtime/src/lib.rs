//! The Orchestra runtime: drives sessions of a compiled pipeline on tokio — the super-step
//! executor, the agent harness (prompt + tools + provider loop), checkpoints in the store,
//! resume and replay, and interactive agents.

pub mod events;
pub mod executor;
pub mod restore;
pub mod runner;
pub mod store_worker;

pub use events::{CollectEvents, Event, EventSink, NoEvents};
pub use executor::{ExecLimits, Executor, Finish, Position, Router, StepHooks};
pub use hooks::{HOOK_NODE, HookError, StepEffects};
pub use restore::{RestoreError, restore};
pub use runner::{BoxFuture, NodeCall, NodeError, NodeResult, NodeRunner, UsageMeter};
pub use store_worker::{StoreHandle, WorkerError};
pub mod attach;
pub mod exec_condition;
mod gitstep;
pub mod gitws;
pub mod harness;
pub mod hooks;
pub mod interactive;
pub mod outputs;
pub mod plan;
pub mod retention;
pub mod session;

pub use session::{
    DriveOptions, Engine, LimitOverrides, RuntimeError, SessionOutcome, new_session_id,
};
