//! Errors: [`ToolError`] for mistakes in building a registry or asking it for definitions, and
//! [`ToolFailure`] for a tool call that went wrong (reported to the model, not raised).

use std::fmt;

/// A mistake in how a [`Registry`](crate::Registry) is built or queried.
///
/// A tool *call* never returns this: a failing call is a [`ToolOutput`](crate::ToolOutput) with
/// `is_error: true`, so the model can read the message and try again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// A tool name that no registered tool has.
    #[error("unknown tool `{name}`{}", hint(suggestions))]
    UnknownTool {
        /// The name asked for.
        name: String,
        /// Registered names close to it, best first.
        suggestions: Vec<String>,
    },
    /// Two tools with the same name.
    #[error("tool `{name}` is already registered")]
    Duplicate {
        /// The name registered twice.
        name: String,
    },
    /// A name providers cannot carry (see [`valid_tool_name`](crate::valid_tool_name)).
    #[error("invalid tool name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A shell tool from `workspace.tools` that cannot run as written.
    #[error("invalid shell tool `{name}`: {reason}")]
    InvalidShellTool {
        /// The tool's (full) name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JSON Schema of a tool's arguments (for a Rust tool: of its arguments type) does not
    /// describe a JSON object.
    #[error("the arguments of tool `{name}` must be a JSON object (a struct), not {found}")]
    ArgsNotObject {
        /// The tool's name.
        name: String,
        /// What the JSON Schema describes instead.
        found: String,
    },
}

impl ToolError {
    /// Names suggested for an unknown tool ("did you mean"); empty for other errors.
    pub fn suggestions(&self) -> &[String] {
        match self {
            ToolError::UnknownTool { suggestions, .. } => suggestions,
            _ => &[],
        }
    }
}

fn hint(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("`{s}`")).collect();
            format!("; did you mean one of {}?", quoted.join(", "))
        }
    }
}

/// Why a tool call failed, in words the model can act on: what a tool's handler returns
/// instead of its text. It becomes a [`ToolOutput`] with `is_error: true`.
///
/// [`ToolOutput`]: crate::ToolOutput
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure(pub(crate) String);

impl ToolFailure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ToolFailure(message.into())
    }

    /// The message the model reads.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<String> for ToolFailure {
    fn from(message: String) -> Self {
        ToolFailure(message)
    }
}

impl From<&str> for ToolFailure {
    fn from(message: &str) -> Self {
        ToolFailure(message.to_owned())
    }
}

impl fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tool_message_lists_suggestions() {
        let e = ToolError::UnknownTool {
            name: "app:read-fil".into(),
            suggestions: vec!["app:read-file".into()],
        };
        assert_eq!(
            e.to_string(),
            "unknown tool `app:read-fil`; did you mean `app:read-file`?"
        );
        let e = ToolError::UnknownTool {
            name: "x".into(),
            suggestions: vec![],
        };
        assert_eq!(e.to_string(), "unknown tool `x`");
        assert!(e.suggestions().is_empty());
    }
}
