//! Errors of model calls ([`ProviderError`], split into retryable and fatal).

use std::time::Duration;

use orchestra_spec::Diagnostic;

/// Why a model call (or building a provider) failed.
///
/// Messages never contain an API key: keys only travel in request headers, and text that comes
/// back from a server is scrubbed of the key before it is put in an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The environment variable that should hold the API key is unset or empty.
    #[error("environment variable `{var}` (the API key of provider `{provider}`) is not set")]
    MissingKey {
        /// The provider's name.
        provider: String,
        /// The variable's name (never its value).
        var: String,
    },
    /// The provider's settings cannot work.
    #[error("provider `{provider}` is misconfigured: {message}")]
    Config {
        /// The provider's name.
        provider: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client of provider `{provider}`")]
    Client {
        /// The provider's name.
        provider: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status (or a scripted error turn said so).
    #[error("{provider} answered HTTP {status}{}: {message}", from_url(.url))]
    Status {
        /// The provider's name.
        provider: String,
        /// The URL requested (without credentials or query); `None` for scripted errors.
        url: Option<String>,
        /// The HTTP status code.
        status: u16,
        /// The provider's own error message.
        message: String,
        /// How long the server asked us to wait (`retry-after`), if it said.
        retry_after: Option<Duration>,
    },
    /// The request (or the stream) took longer than the provider's timeout.
    #[error("request to {provider} at {url} timed out after {}", orchestra_spec::fmt_duration(*.after))]
    Timeout {
        /// The provider's name.
        provider: String,
        /// The URL requested (without credentials or query).
        url: String,
        /// The timeout that fired.
        after: Duration,
    },
    /// The connection failed or was reset.
    #[error("connection to {provider} at {url} failed: {cause}")]
    Connection {
        /// The provider's name.
        provider: String,
        /// The URL requested (without credentials or query).
        url: String,
        /// The root cause in a few words: "connection refused", "dns error: ...".
        cause: String,
        /// The error of the HTTP client.
        #[source]
        source: reqwest::Error,
    },
    /// A streamed response ended before it was complete.
    #[error("the response stream from {provider} was cut off: {detail}")]
    StreamCut {
        /// The provider's name.
        provider: String,
        /// What was missing.
        detail: String,
    },
    /// The provider reported an error inside a stream.
    #[error("{provider} reported an error in the stream: {message}")]
    StreamError {
        /// The provider's name.
        provider: String,
        /// The provider's message.
        message: String,
        /// Whether the kind of error is worth retrying (overload, server error).
        retryable: bool,
    },
    /// The response could not be understood.
    #[error("malformed response from {provider}: {detail}")]
    Malformed {
        /// The provider's name.
        provider: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A `command` provider's program could not be started.
    #[error("cannot run `{program}` for provider `{provider}`")]
    Spawn {
        /// The provider's name.
        provider: String,
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: orchestra_process::ProcessError,
    },
    /// A `command` provider's program failed.
    #[error("`{program}` (provider `{provider}`) {status}{}", stderr_suffix(.stderr))]
    CommandFailed {
        /// The provider's name.
        provider: String,
        /// The program.
        program: String,
        /// "exited with code 3", "was killed by a signal", ...
        status: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A `command` provider's program ran longer than the timeout (it was killed).
    #[error("`{program}` (provider `{provider}`) timed out after {}", orchestra_spec::fmt_duration(*.after))]
    CommandTimeout {
        /// The provider's name.
        provider: String,
        /// The program.
        program: String,
        /// The timeout.
        after: Duration,
    },
    /// A `command` provider's program printed event output (`format: claude-stream-json`,
    /// `codex-jsonl`) that cannot be read: a malformed line, or a stream that ended before its
    /// final event.
    #[error(
        "`{program}` (provider `{provider}`) printed {format} output that cannot be used: {detail}"
    )]
    CommandOutput {
        /// The provider's name.
        provider: String,
        /// The program.
        program: String,
        /// The `format:` it was read as.
        format: String,
        /// What is wrong (the line number and its start, for a malformed line).
        detail: String,
    },
    /// A `command` provider's agent reported that it failed (an error `result`, a failed turn).
    #[error("`{program}` (provider `{provider}`) reported an error: {message}")]
    CommandReported {
        /// The provider's name.
        provider: String,
        /// The program.
        program: String,
        /// The agent's own message.
        message: String,
    },
    /// The scripted provider's responses file is invalid.
    #[error("invalid responses file of provider `{provider}`")]
    ResponsesFile {
        /// The provider's name.
        provider: String,
        /// Where and what.
        #[source]
        source: Diagnostic,
    },
    /// The scripted provider has no response for this call.
    #[error("provider `{provider}` has no scripted response: {detail}")]
    NoScript {
        /// The provider's name.
        provider: String,
        /// Which agent, run and turn, and what the file has.
        detail: String,
    },
    /// The provider's retries gave up: every retry failed, or the retry budget was spent (then
    /// perhaps after no retry at all). The message is the last attempt's (its causes are that
    /// error's sources, see [`ProviderError::last_attempt`]). The caller does not try again:
    /// the provider already decided ([`ProviderError::caller_may_retry`]).
    #[error("{last} ({})", gave_up(*.retries, *.budget))]
    RetriesExhausted {
        /// How many retries were made.
        retries: u32,
        /// The error of the last attempt.
        last: Box<ProviderError>,
        /// The retry budget, when spending it is what stopped the retries.
        budget: Option<Duration>,
    },
}

/// Why retries ended, for [`ProviderError::RetriesExhausted`]'s message.
fn gave_up(retries: u32, budget: Option<Duration>) -> String {
    let plural = if retries == 1 { "retry" } else { "retries" };
    match budget {
        None => format!("gave up after {retries} {plural}"),
        Some(b) if retries == 0 => format!(
            "not retried within the retry budget of {}",
            orchestra_spec::fmt_duration(b)
        ),
        Some(b) => format!(
            "gave up after {retries} {plural} within the retry budget of {}",
            orchestra_spec::fmt_duration(b)
        ),
    }
}

fn from_url(url: &Option<String>) -> String {
    url.as_ref()
        .map(|u| format!(" from {u}"))
        .unwrap_or_default()
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

impl ProviderError {
    /// Whether trying the same request again may succeed: 429, 408, 5xx (and Anthropic's 529),
    /// timeouts, connection failures, cut streams and answers that cannot be read (a corrupted
    /// body is as transient as a dropped stream).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => is_retryable_status(*status),
            ProviderError::Timeout { .. }
            | ProviderError::Connection { .. }
            | ProviderError::StreamCut { .. }
            | ProviderError::Malformed { .. }
            | ProviderError::CommandTimeout { .. } => true,
            ProviderError::StreamError { retryable, .. } => *retryable,
            ProviderError::RetriesExhausted { last, .. } => last.is_retryable(),
            _ => false,
        }
    }

    /// Whether the caller (the node's own retries) may try the call again: the error is
    /// retryable and the provider did not already retry it. A provider that retries (HTTP
    /// providers by default, others with `max_retries`) decides once; re-running the node
    /// would multiply its attempts.
    pub fn caller_may_retry(&self) -> bool {
        self.is_retryable() && !matches!(self, ProviderError::RetriesExhausted { .. })
    }

    /// Whether the server could not be reached at all: the connection was refused, the name
    /// did not resolve, or connecting failed otherwise (nothing was sent).
    pub fn is_unreachable(&self) -> bool {
        match self {
            ProviderError::Connection { source, .. } => source.is_connect(),
            ProviderError::RetriesExhausted { last, .. } => last.is_unreachable(),
            _ => false,
        }
    }

    /// The HTTP status the provider answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            ProviderError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// How long the provider asked to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            ProviderError::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The error of the last attempt when retries ran out, else this error itself.
    pub fn last_attempt(&self) -> &ProviderError {
        match self {
            ProviderError::RetriesExhausted { last, .. } => last.last_attempt(),
            other => other,
        }
    }

    /// How many retries were made before giving up (0 when the first error was fatal).
    pub fn retries(&self) -> u32 {
        match self {
            ProviderError::RetriesExhausted { retries, .. } => *retries,
            _ => 0,
        }
    }

    /// The diagnostic (file:line:col) of an invalid responses file.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ProviderError::ResponsesFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        for s in [408, 429, 500, 502, 503, 529] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn exhausted_retries_keep_the_cause() {
        let e = ProviderError::RetriesExhausted {
            retries: 4,
            budget: None,
            last: Box::new(ProviderError::Status {
                provider: "anthropic".into(),
                url: Some("https://api.anthropic.com/v1/messages".into()),
                status: 529,
                message: "overloaded_error: Overloaded".into(),
                retry_after: Some(Duration::from_secs(2)),
            }),
        };
        assert_eq!(
            e.to_string(),
            "anthropic answered HTTP 529 from https://api.anthropic.com/v1/messages: overloaded_error: Overloaded (gave up after 4 retries)"
        );
        assert_eq!(e.status(), Some(529));
        assert_eq!(e.retries(), 4);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.is_retryable());
        assert!(matches!(
            e.last_attempt(),
            ProviderError::Status { status: 529, .. }
        ));
        assert!(!e.caller_may_retry(), "the provider already retried");
        assert!(e.last_attempt().caller_may_retry());
        let budget = |retries| ProviderError::RetriesExhausted {
            retries,
            budget: Some(Duration::from_secs(120)),
            last: Box::new(ProviderError::StreamCut {
                provider: "p".into(),
                detail: "eof".into(),
            }),
        };
        assert_eq!(
            budget(2).to_string(),
            "the response stream from p was cut off: eof (gave up after 2 retries within the retry budget of 2m)"
        );
        assert_eq!(
            budget(0).to_string(),
            "the response stream from p was cut off: eof (not retried within the retry budget of 2m)"
        );
    }

    #[test]
    fn timeouts_read_well() {
        let e = ProviderError::Timeout {
            provider: "local".into(),
            url: "http://127.0.0.1:11434/v1/chat/completions".into(),
            after: Duration::from_millis(300),
        };
        assert_eq!(
            e.to_string(),
            "request to local at http://127.0.0.1:11434/v1/chat/completions timed out after 300ms"
        );
    }
}
