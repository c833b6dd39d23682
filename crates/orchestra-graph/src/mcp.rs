//! MCP servers: the pipeline's `mcp_servers:` merged over `orchestra.yaml`'s, checked without
//! starting anything (one of `command` and `url`, names, `${VAR}` syntax, timeouts).

use std::path::PathBuf;

use indexmap::IndexMap;
use orchestra_spec::{
    Diagnostic, McpServerSpec, PipelineSpec, SourceFile, SpannedMap, check_refs, valid_env_name,
};
use serde::{Deserialize, Serialize};

use crate::workspace::is_ident;

/// An MCP server, with the file that declared it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResolvedMcpServer {
    /// Its name (the `SERVER` of `SERVER:TOOL`).
    pub name: String,
    /// Its settings, as written (`${VAR}`s are expanded when it starts).
    pub spec: McpServerSpec,
    /// The file that declared it.
    pub declared_in: PathBuf,
}

/// The pipeline's servers, then the project's that the pipeline does not redefine; each checked.
pub(crate) fn resolve(
    pipeline: (&SpannedMap<McpServerSpec>, &SourceFile, &PathBuf),
    project: Option<(&SpannedMap<McpServerSpec>, &SourceFile, &PathBuf)>,
    spec: &PipelineSpec,
    diags: &mut Vec<Diagnostic>,
) -> IndexMap<String, ResolvedMcpServer> {
    let mut out = IndexMap::new();
    let mut add = |(map, src, path): (&SpannedMap<McpServerSpec>, &SourceFile, &PathBuf)| {
        for (name, key_span, server) in map.iter() {
            if out.contains_key(name) {
                continue;
            }
            let err = |msg: String| Diagnostic::error(msg).at(src, key_span);
            if !is_ident(name) {
                diags.push(err(format!("invalid MCP server name `{name}`")).with_label(
                    "use letters, digits, `-` and `_` (tools are named `SERVER:TOOL`)",
                ));
            }
            if spec.workspace.repos.get(name).is_some() {
                diags.push(
                    err(format!("MCP server `{name}` has the name of a repository"))
                        .with_label(format!("`{name}:TOOL` would name a tool of both"))
                        .with_help("rename the server or the repository"),
                );
            }
            check_server(name, server, src, key_span, diags);
            out.insert(
                name.to_owned(),
                ResolvedMcpServer {
                    name: name.to_owned(),
                    spec: server.clone(),
                    declared_in: path.clone(),
                },
            );
        }
    };
    add(pipeline);
    if let Some(p) = project {
        add(p);
    }
    out
}

fn check_server(
    name: &str,
    server: &McpServerSpec,
    src: &SourceFile,
    key_span: orchestra_spec::Span,
    diags: &mut Vec<Diagnostic>,
) {
    let err = |msg: String| Diagnostic::error(msg).at(src, key_span);
    match (&server.command, &server.url) {
        (None, None) => diags.push(
            err(format!("MCP server `{name}` has neither `command` nor `url`"))
                .with_label("say how to reach it")
                .with_help("`command:` (and `args:`) starts a program talking MCP on stdin/stdout; `url:` is a streamable HTTP endpoint"),
        ),
        (Some(c), Some(_)) => diags.push(
            Diagnostic::error(format!("MCP server `{name}` has both `command` and `url`"))
                .at(src, c.span)
                .with_label("a server is either a program or an HTTP endpoint"),
        ),
        (Some(c), None) => {
            if c.value.trim().is_empty() {
                diags.push(
                    Diagnostic::error(format!("the command of MCP server `{name}` is empty"))
                        .at(src, c.span),
                );
            }
            if !server.headers.is_empty() {
                diags.push(
                    err(format!("MCP server `{name}` has `headers` but no `url`"))
                        .with_label("headers are sent to HTTP servers only"),
                );
            }
        }
        (None, Some(u)) => {
            let v = u.value.trim();
            if !(v.starts_with("http://") || v.starts_with("https://")) || v.len() <= 8 {
                diags.push(
                    Diagnostic::error(format!("invalid url of MCP server `{name}`"))
                        .at(src, u.span)
                        .with_label("expected an `http://` or `https://` URL"),
                );
            }
            if !server.args.is_empty() || !server.env.is_empty() {
                diags.push(
                    err(format!("MCP server `{name}` has `args` or `env` but no `command`"))
                        .with_label("they apply to a program started by orchestra"),
                );
            }
        }
    }
    for (key, span, value) in server.env.iter() {
        if !valid_env_name(key) {
            diags.push(
                Diagnostic::error(format!(
                    "MCP server `{name}` sets an invalid environment variable"
                ))
                .at(src, span)
                .with_label(format!("`{key}` cannot be set")),
            );
        }
        if let Err(e) = check_refs(value) {
            diags.push(
                Diagnostic::error(format!(
                    "bad `${{...}}` in `env.{key}` of MCP server `{name}`"
                ))
                .at(src, span)
                .with_label(e.to_string()),
            );
        }
    }
    for (key, span, value) in server.headers.iter() {
        let token = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            diags.push(
                Diagnostic::error(format!(
                    "invalid header name `{key}` of MCP server `{name}`"
                ))
                .at(src, span)
                .with_label("an HTTP header name is letters, digits and `-`"),
            );
        }
        if let Err(e) = check_refs(value) {
            diags.push(
                Diagnostic::error(format!(
                    "bad `${{...}}` in `headers.{key}` of MCP server `{name}`"
                ))
                .at(src, span)
                .with_label(e.to_string()),
            );
        }
    }
}

/// Whether `tool` (after `SERVER:`) can name an MCP tool, or all of them (`*`). MCP tool names
/// are 1 to 128 letters, digits, `_`, `-` and `.` (servers in the wild also use `/`).
pub(crate) fn valid_tool_pattern(tool: &str) -> bool {
    tool == "*"
        || (!tool.is_empty()
            && tool.len() <= 128
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))
}
