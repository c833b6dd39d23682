//! MCP servers (`mcp_servers:` in `orchestra.yaml` and in a pipeline): the shape of Claude's
//! `mcpServers` — a program speaking MCP on stdin/stdout (`command`, `args`, `env`) or a
//! streamable HTTP endpoint (`url`, `headers`) — and the `${VAR}` / `${VAR:-default}` expansion
//! of `env` and `headers` values.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::span::Spanned;
use crate::values::{Dur, SpannedMap};

/// How long a server may take to start and answer `initialize` when `startup_timeout` is not
/// set (an `npx` that downloads its package first needs a while).
pub const MCP_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one tool call may take when `timeout` is not set.
pub const MCP_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An MCP server whose tools agents list as `SERVER:TOOL` or `SERVER:*`. Exactly one of
/// `command` (a program started once per drive, talking MCP on its stdin and stdout) and `url`
/// (a streamable HTTP endpoint) is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// The program to start (looked up on `PATH`), e.g. `npx`. It runs in the project root, in
    /// a process group of its own that is killed when the drive ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<String>>,
    /// Its arguments (not expanded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables set for it, over the inherited environment. Values may use
    /// `${VAR}` and `${VAR:-default}` (from orchestra's environment); `$$` is a literal `$`.
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub env: SpannedMap<String>,
    /// The streamable HTTP endpoint, e.g. `http://127.0.0.1:8931/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Spanned<String>>,
    /// HTTP headers sent with every request (e.g. `Authorization: "Bearer ${TOKEN}"`). Values
    /// may use `${VAR}` and `${VAR:-default}`.
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub headers: SpannedMap<String>,
    /// How long starting the server and its `initialize` answer may take (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<Dur>,
    /// How long one tool call may take (default `60s`); a call that takes longer is a tool
    /// error the model reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

impl McpServerSpec {
    /// The startup timeout, or its default.
    pub fn startup_timeout(&self) -> Duration {
        self.startup_timeout.map_or(MCP_STARTUP_TIMEOUT, |d| d.0)
    }

    /// The call timeout, or its default.
    pub fn call_timeout(&self) -> Duration {
        self.timeout.map_or(MCP_CALL_TIMEOUT, |d| d.0)
    }
}

/// What is wrong with a `${...}` reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("`${{` is not closed by `}}`")]
    Unclosed,
    /// `${}` or a name with characters other than letters, digits and `_`.
    #[error("invalid variable name `{0}` in `${{...}}` (use letters, digits and `_`)")]
    InvalidName(String),
    /// A variable that is not set and has no default.
    #[error("environment variable `{0}` is not set (give a default with `${{{0}:-default}}`)")]
    Missing(String),
}

/// Expands `${VAR}` and `${VAR:-default}` in `text` with `lookup` (`$$` is a literal `$`; a `$`
/// followed by anything else is kept). `:-` takes the default when the variable is unset or
/// empty, as in the shell. With `lookup` returning `None` for everything this checks the syntax
/// only when every reference has a default — use [`check_refs`] to check syntax alone.
pub fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    walk(text, &mut |piece| match piece {
        Piece::Text(t) => {
            out.push_str(t);
            Ok(())
        }
        Piece::Var { name, default } => {
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => match lookup(name) {
                    // Set but empty, without a default: empty, as in the shell.
                    Some(_) => {}
                    None => return Err(ExpandError::Missing(name.to_owned())),
                },
            }
            Ok(())
        }
    })?;
    Ok(out)
}

/// Checks the `${...}` references of `text` without looking anything up; the names used.
pub fn check_refs(text: &str) -> Result<Vec<String>, ExpandError> {
    let mut names = Vec::new();
    walk(text, &mut |piece| {
        if let Piece::Var { name, .. } = piece {
            names.push(name.to_owned());
        }
        Ok(())
    })?;
    Ok(names)
}

enum Piece<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        default: Option<&'a str>,
    },
}

fn walk<'a>(
    text: &'a str,
    f: &mut dyn FnMut(Piece<'a>) -> Result<(), ExpandError>,
) -> Result<(), ExpandError> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        f(Piece::Text(&rest[..at]))?;
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            f(Piece::Text("$"))?;
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ExpandError::Unclosed)?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ExpandError::InvalidName(name.to_owned()));
            }
            f(Piece::Var { name, default })?;
            rest = &body[end + 1..];
        } else {
            f(Piece::Text("$"))?;
            rest = after;
        }
    }
    f(Piece::Text(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_vars_and_defaults() {
        let x = |t: &str| expand_env(t, &env);
        assert_eq!(x("Bearer ${TOKEN}").unwrap(), "Bearer s3cret");
        assert_eq!(x("${NOPE:-dflt}/${TOKEN:-x}").unwrap(), "dflt/s3cret");
        assert_eq!(x("${EMPTY:-d}|${EMPTY}|").unwrap(), "d||");
        assert_eq!(x("$$HOME $x ${NOPE:-}").unwrap(), "$HOME $x ");
        assert_eq!(x("$").unwrap(), "$");
        assert_eq!(x("${NOPE}"), Err(ExpandError::Missing("NOPE".into())));
        assert_eq!(x("${TOKEN"), Err(ExpandError::Unclosed));
        assert_eq!(x("${1A}"), Err(ExpandError::InvalidName("1A".into())));
        assert_eq!(x("${A-B}"), Err(ExpandError::InvalidName("A-B".into())));
    }

    #[test]
    fn check_refs_names_the_variables() {
        assert_eq!(
            check_refs("a ${X} b ${Y:-1} $$Z").unwrap(),
            vec!["X".to_owned(), "Y".to_owned()]
        );
        assert!(check_refs("${}").is_err());
    }
}
