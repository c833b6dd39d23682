//! An agent's tools at run time: its registry tools, plus the tools of its MCP servers (each
//! started when an agent using it first runs in the drive), and the call of one tool — through
//! the registry, or to its MCP server — with the result capped like any tool's.

use std::sync::Arc;

use serde_json::Value;

use orchestra_mcp::McpServers;
use orchestra_providers::{ToolDef, tool_input_error};
use orchestra_tools::Registry;

use super::{AgentPlan, Harness};
use crate::events::Event;
use crate::runner::{NodeCall, NodeError};

impl Harness {
    /// Gives agents the drive's MCP servers (without them, an agent with MCP tools fails).
    pub fn with_mcp(mut self, servers: Arc<McpServers>) -> Self {
        self.mcp = Some(servers);
        self
    }

    /// The tools offered to the model in this run, the plan's then its MCP tools, and the
    /// system prompt to send with them. An MCP server that cannot start does not fail the run:
    /// its tools named `SERVER:TOOL` are offered as stand-ins whose calls return the start
    /// failure (traced like any failed call), a `SERVER:*` gives no tools, and the prompt gets
    /// one line per such server saying it is unavailable; the first run that finds it so
    /// emits a warning. A tool a running server lacks fails the run, naming it (node retries
    /// and `on_error` apply).
    pub(super) async fn agent_tools(
        &self,
        call: &NodeCall,
        plan: &AgentPlan,
        system: Arc<str>,
    ) -> Result<(Vec<ToolDef>, Arc<str>), NodeError> {
        if plan.mcp.is_empty() {
            return Ok((plan.tools.clone(), system));
        }
        let Some(servers) = &self.mcp else {
            return Err(NodeError::Fatal(format!(
                "agent `{}` uses MCP tools, but this drive has no MCP servers",
                call.agent
            )));
        };
        // Boxed: starting a server is a large future (the MCP client's), and this one is
        // part of every running agent's, MCP or not (9.6 KB each, 9.6 MB over a 1000-agent
        // fan-out, when it was inline).
        let found = match Box::pin(servers.definitions(&plan.mcp)).await {
            Ok(found) => found,
            Err(e) => {
                let message = format!("agent `{}`: {e}", call.agent);
                self.events.emit(Event::Warning {
                    message: message.clone(),
                });
                return Err(NodeError::Retryable(message));
            }
        };
        let mut tools = plan.tools.clone();
        tools.extend(found.tools);
        if found.unavailable.is_empty() {
            return Ok((tools, system));
        }
        let mut prompt = format!("{system}\n");
        for u in &found.unavailable {
            if u.new {
                self.events.emit(Event::Warning {
                    message: format!(
                        "agent `{}` goes on without the tools of MCP server `{}`, unavailable for the rest of this drive: {}",
                        call.agent, u.server, u.error
                    ),
                });
            }
            prompt.push_str(&unavailable_note(&u.server, &u.error.brief()));
        }
        Ok((tools, Arc::from(prompt)))
    }

    /// Runs one tool call; (content, is_error). A tool not `offered` to the model, bad
    /// arguments, and every MCP failure become tool errors the model can read.
    pub(super) async fn call_tool(
        &self,
        tools: &Registry,
        plan: &AgentPlan,
        offered: &[ToolDef],
        name: &str,
        input: Value,
    ) -> (String, bool) {
        if !offered.iter().any(|t| t.name == name) {
            let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
            let mut msg = format!("unknown tool `{name}`");
            if let Some(h) = orchestra_spec::did_you_mean(name, names.iter().copied()) {
                msg.push_str(&format!("; {h}"));
            }
            msg.push_str(&format!("; available tools: {}", names.join(", ")));
            return (msg, true);
        }
        if let Some(err) = tool_input_error(&input) {
            return (err, true);
        }
        let mcp_tool = name.split_once(':').filter(|(server, _)| {
            plan.mcp.iter().any(|(s, _)| s == server) && !tools.contains(name)
        });
        if let (Some((server, tool)), Some(servers)) = (mcp_tool, &self.mcp) {
            let (text, is_error) = servers.call(server, tool, input).await;
            return (
                orchestra_tools::cap_text(text, tools.limits().max_output),
                is_error,
            );
        }
        let out = tools.call(name, input).await;
        (out.content, out.is_error)
    }
}

/// How the system prompt's line about an unavailable MCP server opens, and what follows its
/// name ([`unavailable_note`], read back by [`unavailable_servers`]).
const NOTE_OPENS: &str = "Note: the tools of MCP server `";
const NOTE_MIDDLE: &str = "` are unavailable in this run (";

/// The system prompt's line about an MCP server that is unavailable.
fn unavailable_note(server: &str, why: &str) -> String {
    format!("\n{NOTE_OPENS}{server}{NOTE_MIDDLE}{why}).")
}

/// The MCP servers a run's system prompt says are unavailable, with why, in the prompt's
/// order: the lines [`unavailable_note`] added (for the report; `show` prints the prompt).
pub(crate) fn unavailable_servers(system: &str) -> Vec<(String, String)> {
    system
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(NOTE_OPENS)?;
            let (server, why) = rest.split_once(NOTE_MIDDLE)?;
            Some((server.to_owned(), why.strip_suffix(").")?.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_notes_are_read_back_from_the_prompt() {
        let mut prompt = "You read notes.\nNote: the tools of MCP server `x` are fine.".to_owned();
        prompt.push_str(&unavailable_note(
            "fs",
            "MCP server `fs` did not answer `initialize` within 1s",
        ));
        prompt.push_str(&unavailable_note("web", "cannot connect (refused)"));
        assert_eq!(
            unavailable_servers(&prompt),
            [
                (
                    "fs".to_owned(),
                    "MCP server `fs` did not answer `initialize` within 1s".to_owned()
                ),
                ("web".to_owned(), "cannot connect (refused)".to_owned()),
            ]
        );
        assert!(unavailable_servers("no notes").is_empty());
    }
}
