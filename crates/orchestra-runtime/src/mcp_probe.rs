//! `compile --probe`: start the MCP servers a pipeline's agents use, list their tools, and
//! check that every tool an agent names exists — before any session depends on it.

use orchestra_graph::{Compiled, ToolKind};

use crate::engine::EnvLookup;

/// What probing one MCP server found.
#[derive(Debug)]
pub struct McpProbe {
    /// The server's name.
    pub server: String,
    /// Its tools' names (without `SERVER:`), or why it could not be started and listed.
    pub tools: Result<Vec<String>, String>,
    /// Tools agents name that it does not have: "agent `A`: MCP server ... has no tool ...".
    pub missing: Vec<String>,
}

impl McpProbe {
    /// Whether the server started and has every tool named.
    pub fn is_ok(&self) -> bool {
        self.tools.is_ok() && self.missing.is_empty()
    }
}

/// Starts each MCP server used by an agent of `compiled` (in declaration order), checks the
/// tools its agents name, and stops it. `${VAR}`s are looked up with `env`.
pub async fn probe_mcp(compiled: &Compiled, env: EnvLookup) -> Vec<McpProbe> {
    let servers = crate::plan::mcp_servers(compiled, env);
    let mut out = Vec::new();
    for name in compiled.mcp_servers.keys() {
        let users: Vec<(&str, &str)> = compiled
            .agents
            .iter()
            .flat_map(|a| a.tools.iter().map(move |t| (a, t)))
            .filter_map(|(a, t)| match &t.kind {
                ToolKind::Mcp { server } if server == name => {
                    Some((a.name.as_str(), t.tool.as_str()))
                }
                _ => None,
            })
            .collect();
        if users.is_empty() {
            continue;
        }
        let mut probe = McpProbe {
            server: name.clone(),
            tools: Err(String::new()),
            missing: Vec::new(),
        };
        match servers.tools(name).await {
            Err(e) => probe.tools = Err(e.to_string()),
            Ok(defs) => {
                probe.tools = Ok(defs
                    .iter()
                    .map(|d| {
                        d.name
                            .split_once(':')
                            .map_or(&*d.name, |(_, t)| t)
                            .to_owned()
                    })
                    .collect());
                for (agent, tool) in users.iter().filter(|(_, t)| *t != "*") {
                    if let Err(e) = servers
                        .definitions(&[(name.clone(), (*tool).to_owned())])
                        .await
                    {
                        probe.missing.push(format!("agent `{agent}`: {e}"));
                    }
                }
            }
        }
        out.push(probe);
    }
    servers.shutdown().await;
    out
}
