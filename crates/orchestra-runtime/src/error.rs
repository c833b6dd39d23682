//! Why a session could not be run: typed errors with their causes, which the CLI prints as a
//! chain (`error: ...: cause: cause`) and maps to exit codes.

use orchestra_git::GitError;
use orchestra_providers::ProviderError;
use orchestra_store::StoreError;
use orchestra_tools::ToolError;

use crate::restore::RestoreError;
use crate::store_worker::WorkerError;
use crate::stored::StoredError;

/// Why a session could not be started, resumed, forked or driven to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] WorkerError),
    /// Another process drives the session.
    #[error(
        "session `{session}` is being driven by another process ({owner}); wait for it to finish or stop it first"
    )]
    Busy {
        /// Session.
        session: String,
        /// Who holds the lease.
        owner: String,
    },
    /// The session is completed: there is nothing to resume.
    #[error(
        "session `{session}` is already completed; use `orchestra replay {session} --checkpoint N` to fork it"
    )]
    Completed {
        /// Session.
        session: String,
    },
    /// The pipeline stored with the session cannot be read.
    #[error("the pipeline of session `{session}` cannot be read")]
    Stored {
        /// Session.
        session: String,
        /// Why.
        #[source]
        source: StoredError,
    },
    /// Restoring a checkpoint failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// Setting up providers, tools or git failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A fork's repositories could not be put at the checkpoint's commits.
    #[error("cannot restore the repositories of checkpoint {step}")]
    Fork {
        /// The checkpoint.
        step: u64,
        /// Why.
        #[source]
        source: SetupError,
    },
    /// The session cannot go on with an edited pipeline or edited state.
    #[error(
        "session `{session}` cannot go on from checkpoint {step} with the edit: {}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Edit {
        /// Session.
        session: String,
        /// The checkpoint the edit applies to.
        step: u64,
        /// Every reason (each names the node or field).
        errors: Vec<orchestra_graph::edit::EditError>,
    },
    /// The task driving the session stopped without finishing (the runtime shut down).
    #[error("the session's executor was stopped")]
    Stopped(#[source] tokio::task::JoinError),
}

impl RuntimeError {
    /// Whether the database server's connection was lost (it restarted or stopped): transient,
    /// not the session's own failure ([`StoreError::is_connection_lost`]).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, RuntimeError::Store(w) if w.store_error().is_some_and(StoreError::is_connection_lost))
    }
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        RuntimeError::Store(WorkerError::Store(e))
    }
}

/// What can go wrong while setting up a drive: providers, tools, output schemas, git.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An agent names a provider the pipeline does not have (a damaged stored pipeline).
    #[error("agent `{agent}` uses unknown provider `{provider}`")]
    UnknownProvider {
        /// The agent.
        agent: String,
        /// The provider it names.
        provider: String,
    },
    /// A provider's client cannot be made (a missing API key, a bad responses file).
    #[error("provider `{name}`: {detail}")]
    Provider {
        /// The provider.
        name: String,
        /// What is wrong, with `file:line:col` where a file is at fault.
        detail: String,
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// The workspace's tools cannot be set up.
    #[error("failed to set up the tools")]
    Tools(#[source] ToolError),
    /// An agent's tools cannot be given to its model.
    #[error("agent `{agent}`: its tools cannot be set up")]
    AgentTools {
        /// The agent.
        agent: String,
        /// Why.
        #[source]
        source: ToolError,
    },
    /// An agent's output schema does not compile.
    #[error("agent `{agent}` has an invalid output schema: {detail}")]
    OutputSchema {
        /// The agent.
        agent: String,
        /// What the validator said.
        detail: String,
    },
    /// A writable repository's session branch or worktree cannot be set up.
    #[error("failed to set up repository `{repo}`")]
    Git {
        /// The repository.
        repo: String,
        /// libgit2's reason, with what was being done.
        #[source]
        source: GitError,
    },
    /// A blocking git task did not finish (it panicked or the runtime shut down).
    #[error("a git task did not finish")]
    GitTask(#[source] tokio::task::JoinError),
}

pub use orchestra_spec::error_chain;

/// What a panic said (its `&str` or `String` payload), or `a panic`.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}
