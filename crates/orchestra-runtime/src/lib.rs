//! The Orchestra runtime: drives sessions of a compiled pipeline on tokio — the super-step
//! executor, the agent harness (prompt + tools + provider loop), checkpoints in the store,
//! resume and replay, and interactive agents.
//!
//! The API is small: an [`Engine`] is given a [`Store`](orchestra_store::Store) and the project
//! root; [`Engine::run`], [`Engine::resume`] and [`Engine::fork`] drive sessions with
//! [`DriveOptions`] (progress [`Event`]s, Ctrl-C, a human, limits, tools and conditions
//! registered at run time) and return an [`Outcome`] whose [`Finish`] says how the drive ended,
//! or a [`RuntimeError`]. [`attach`] and [`interactive`] are the interaction layer a terminal,
//! `orchestra attach` or a web UI talk to a chat through. Everything else is internal.

pub mod attach;
mod call_node;
mod command_node;
mod drive;
mod edit;
mod engine;
mod error;
mod event_log;
mod events;
mod exec_condition;
mod executor;
mod gitstep;
mod gitws;
mod harness;
mod hooks;
mod ids;
pub mod interaction;
pub mod interactive;
mod lease;
mod mcp_probe;
mod outcome;
mod outputs;
mod plan;
mod queue;
mod restore;
mod retention;
mod runner;
mod session;
mod stop_request;
mod store_worker;
mod stored;
#[cfg(test)]
mod testing;
pub mod views;

pub use call_node::{CALL_META, child_calls};
pub use edit::{EDITS_META, Edit, EditCheck, parse_set};
pub use engine::{DriveOptions, Engine, EnvLookup, LimitOverrides};
pub use error::{RuntimeError, SetupError, error_chain};
pub use event_log::{EVENTS_VERSION, EventLog, Fanout, OnFailure, envelope, is_logged};
pub use events::{CollectEvents, Event, EventSink, NoEvents};
pub use ids::{date_of_days, new_session_id};
pub use lease::{LEASE_TTL, MACHINE_ENV, owner_is_dead};
pub use mcp_probe::{McpProbe, probe_mcp};
pub use outcome::{Finish, LimitSource, Outcome, SessionBranch, StopLimit, usd};
pub use plan::{ConditionFn, agent_price, check_providers};
pub use queue::{WORKER_META, WorkerEvent, WorkerOptions};
pub use restore::RestoreError;
pub use retention::{CLEANUP_META, CleanupOptions, CleanupReport, Kept, Removed, SessionCleanup};
pub use runner::BoxFuture;
pub use session::{FORK_META, inherited_cost, inherited_tokens};
pub use stop_request::StopAsked;
pub use store_worker::{StoreHandle, WorkerError};
pub use stored::{PIPELINE_FORMAT, SCHEDULER_FORMAT, StoredError, pipeline_hash};
