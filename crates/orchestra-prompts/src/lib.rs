//! Prompt composition: the role, persona, personality and task layers of an agent, loaded through
//! three-level discovery and concatenated in that order into its system prompt. The task layer is
//! a minijinja template over `state`, `inputs` and `agent`, rendered with strict undefined.
//!
//! ```text
//! LayerLoader::resolve  -> ResolvedLayer (text, file, discovery level, line)
//! check_task            -> compile-time diagnostics (syntax, unknown variables)
//! compose               -> the system prompt, given state, inputs and the agent
//! ```

mod callables;
mod inline;
mod layer;
mod template;

pub use callables::{CallableKind, UnknownCallable, unknown_callables};
pub use inline::{check_inline, render_inline, render_inline_item};
pub use layer::{LayerKind, LayerLoader, ResolvedLayer};
pub use template::{
    AGENT_FIELDS, AgentVars, PromptContext, PromptError, TemplateScope, UNKNOWN_CALLABLE_HELP,
    check_task, compose, environment, render_task,
};
