//! The runtime's entry point: an [`Engine`] drives sessions over the store it is given, and
//! [`DriveOptions`] say how a drive goes (events, cancel, human, limits, tools).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use orchestra_store::Store;
use orchestra_tools::Registry;

use crate::error::RuntimeError;
use crate::events::EventSink;
use crate::lease::lease_owner;
use crate::plan::ConditionFn;
use crate::store_worker::StoreHandle;

/// A process's connection to the session database, for the sessions of one project.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) store: StoreHandle,
    pub(crate) owner: String,
    pub(crate) root: PathBuf,
    /// How long a lease lasts without renewal ([`LEASE_TTL`](crate::LEASE_TTL) unless set);
    /// drives renew it every third of that.
    pub(crate) lease_ttl: Duration,
}

impl Engine {
    /// An engine over `store` (moved to a thread of its own), for the project at `root`: the
    /// paths a session stores are relative to it.
    pub fn new(store: Box<dyn Store>, root: &Path) -> Result<Self, RuntimeError> {
        Ok(Engine::with_store(StoreHandle::spawn(store)?).with_root(root))
    }

    /// An engine over a store thread already running (tests share one between engines), for
    /// the project in the current directory until [`Engine::with_root`].
    pub fn with_store(store: StoreHandle) -> Self {
        Engine {
            store,
            owner: lease_owner(),
            root: PathBuf::new(),
            lease_ttl: crate::LEASE_TTL,
        }
    }

    /// The same engine taking its leases for `ttl` (renewed every third of it): how soon
    /// another worker takes over a session of a worker that died (`orchestra worker
    /// --lease-ttl`).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The same engine for the project at `root`.
    pub fn with_root(mut self, root: &Path) -> Self {
        self.root = root.to_path_buf();
        self
    }

    /// The project root the stored paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store.
    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Who this engine takes leases as (`pid@host`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Closes the database cleanly (call before the process exits).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Looks up an environment variable (API keys); tests pass a fixed map.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a run is driven.
#[derive(Clone)]
pub struct DriveOptions {
    /// Show model text as it arrives.
    pub stream: bool,
    /// Progress events.
    pub events: Arc<dyn EventSink>,
    /// Becomes true on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
    /// Environment lookup (API keys).
    pub env: EnvLookup,
    /// Tools registered through the library.
    pub tools: Registry,
    /// Conditions registered through the library.
    pub conditions: HashMap<String, ConditionFn>,
    /// Base delay of node retries.
    pub retry_base: Duration,
    /// Limits that replace the pipeline's for this drive (to go on after a limit stopped it).
    pub limits: LimitOverrides,
    /// Where interactive agents find a human (a terminal, an attach client); `None`: they
    /// pause the session.
    pub human: Option<Arc<dyn crate::interactive::Interaction>>,
}

impl std::fmt::Debug for DriveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveOptions")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Session limits given for one drive, replacing the pipeline's `limits:` (e.g. `orchestra
/// resume --max-steps 400` after the session stopped at `max_steps`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimitOverrides {
    /// Replaces `limits.max_steps` (the session's total, not this drive's).
    pub max_steps: Option<u32>,
    /// Replaces `limits.max_tokens` (the session's total, not this drive's).
    pub max_tokens: Option<u64>,
    /// Replaces `limits.max_cost` in US dollars (the session's total, not this drive's).
    pub max_cost: Option<f64>,
}
