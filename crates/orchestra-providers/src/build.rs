//! The factory: a provider's settings become a ready [`Provider`]. API keys are looked up here,
//! through the environment lookup the caller passes, and settings are checked against the limits
//! of each API.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orchestra_spec::{ProviderKind, ProviderSpec};

use crate::Provider;
use crate::anthropic::Anthropic;
use crate::command::CommandProvider;
use crate::error::ProviderError;
use crate::gate::{Gate, RateLimitHook};
use crate::http::Secret;
use crate::openai::OpenAi;
use crate::retry::{DEFAULT_BUDGET, RetryPolicy};
use crate::scripted::Scripted;

/// Retries for HTTP providers when `max_retries` is not set.
const HTTP_RETRIES: u32 = 4;

/// Settings that are not part of the configuration file: backoff timing (tests make it fast).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Delay before the first retry, doubled for each further one (default 500 ms).
    pub base_delay: Duration,
    /// Longest backoff delay (default 30 s).
    pub max_delay: Duration,
    /// Longest `retry-after` wait honoured (default 120 s).
    pub max_retry_after: Duration,
    /// Working directory of `command` agents (default: the current directory). The runtime sets
    /// the project root, or the session worktree when the pipeline has one writable repository,
    /// so a code-editing CLI agent never works in the user's checkout.
    pub workdir: Option<std::path::PathBuf>,
    /// Told when an HTTP provider's adaptive gate makes calls wait (the runtime shows it).
    pub on_rate_limit: Option<RateLimitHook>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        let p = RetryPolicy::default();
        BuildOptions {
            base_delay: p.base_delay,
            max_delay: p.max_delay,
            max_retry_after: p.max_retry_after,
            workdir: None,
            on_rate_limit: None,
        }
    }
}

impl BuildOptions {
    /// The retry policy for a provider: `max_retries` from its settings, else `default_retries`.
    pub(crate) fn retry(&self, spec: &ProviderSpec, default_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries: spec.max_retries.unwrap_or(default_retries),
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            max_retry_after: self.max_retry_after,
            budget: spec.retry_budget.map_or(DEFAULT_BUDGET, |b| b.0),
        }
    }

    /// The concurrency gate of HTTP provider `name`.
    fn gate(&self, name: &str, spec: &ProviderSpec) -> Gate {
        Gate::new(name, spec.max_concurrency, self.on_rate_limit.clone())
    }
}

/// Builds the provider `name` from its settings with default [`BuildOptions`].
///
/// `base_dir` is the directory of the file that declared the provider (the scripted provider's
/// `responses:` is relative to it); `env` looks up environment variables (pass
/// `&|k| std::env::var(k).ok()` in production).
///
/// HTTP providers retry 4 times by default; `command` and `scripted` providers retry only when
/// `max_retries` is set, so their failures reach the caller's own retry logic unchanged.
pub fn build(
    name: &str,
    spec: &ProviderSpec,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    build_with(name, spec, base_dir, env, &BuildOptions::default())
}

/// [`build`] with explicit [`BuildOptions`].
pub fn build_with(
    name: &str,
    spec: &ProviderSpec,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    options: &BuildOptions,
) -> Result<Arc<dyn Provider>, ProviderError> {
    check_common(name, spec)?;
    let provider: Arc<dyn Provider> = match spec.kind.value {
        ProviderKind::Anthropic => {
            let Some(var) = spec.api_key_env.as_deref() else {
                return Err(config(
                    name,
                    "an `anthropic` provider needs `api_key_env`, the environment variable that holds the key (e.g. `api_key_env: ANTHROPIC_API_KEY`)",
                ));
            };
            let key = api_key(name, var, env)?;
            Arc::new(Anthropic::new(
                name,
                spec,
                key,
                var,
                options.retry(spec, HTTP_RETRIES),
                options.gate(name, spec),
            )?)
        }
        ProviderKind::Openai => {
            let key = match (
                spec.api_key_env.as_deref(),
                spec.api_base.as_ref().map(|b| b.value.as_str()),
            ) {
                (Some(var), _) => Some((api_key(name, var, env)?, var)),
                (None, Some(_)) => None,
                (None, None) => {
                    return Err(config(
                        name,
                        "an `openai` provider without `api_base` talks to api.openai.com and needs `api_key_env` (e.g. `api_key_env: OPENAI_API_KEY`); local servers need `api_base`",
                    ));
                }
            };
            Arc::new(OpenAi::new(
                name,
                spec,
                key,
                options.retry(spec, HTTP_RETRIES),
                options.gate(name, spec),
            )?)
        }
        ProviderKind::Command => Arc::new(
            CommandProvider::new(name, spec, options.retry(spec, 0))?
                .in_dir(options.workdir.clone()),
        ),
        ProviderKind::Scripted => Arc::new(Scripted::load(
            name,
            spec,
            base_dir,
            options.retry(spec, 0),
        )?),
    };
    tracing::debug!(provider = name, kind = ?spec.kind.value, "built provider");
    Ok(provider)
}

/// Reads the key from `var`; an unset or empty variable is an error naming the variable.
fn api_key(
    name: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ProviderError> {
    match env(var) {
        Some(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_owned())),
        _ => Err(ProviderError::MissingKey {
            provider: name.to_owned(),
            var: var.to_owned(),
        }),
    }
}

/// Limits every API shares: a positive token limit, a temperature the API accepts.
fn check_common(name: &str, spec: &ProviderSpec) -> Result<(), ProviderError> {
    if spec.max_tokens == Some(0) {
        return Err(config(name, "`max_tokens` must be at least 1"));
    }
    let top = match spec.kind.value {
        ProviderKind::Anthropic => 1.0,
        _ => 2.0,
    };
    if let Some(t) = spec.temperature
        && !(0.0..=top).contains(&t)
    {
        return Err(config(
            name,
            &format!("`temperature` must be between 0 and {top} for this provider, not {t}"),
        ));
    }
    if spec.max_concurrency == Some(0) {
        return Err(config(name, "`max_concurrency` must be at least 1"));
    }
    if spec.timeout.is_some_and(|t| t.0.is_zero()) {
        return Err(config(name, "`timeout` must be longer than zero"));
    }
    if spec.retry_budget.is_some_and(|t| t.0.is_zero()) {
        return Err(config(name, "`retry_budget` must be longer than zero"));
    }
    Ok(())
}

pub(crate) fn config(name: &str, message: &str) -> ProviderError {
    ProviderError::Config {
        provider: name.to_owned(),
        message: message.to_owned(),
    }
}
