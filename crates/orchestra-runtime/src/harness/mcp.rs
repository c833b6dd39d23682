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

    /// The tools offered to the model in this run: the plan's, then its MCP tools. A server
    /// that cannot start (or lacks a named tool) fails the run, naming the server: node
    /// retries and `on_error` apply, and the next attempt starts it again.
    pub(super) async fn agent_tools(
        &self,
        call: &NodeCall,
        plan: &AgentPlan,
    ) -> Result<Vec<ToolDef>, NodeError> {
        if plan.mcp.is_empty() {
            return Ok(plan.tools.clone());
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
        match Box::pin(servers.definitions(&plan.mcp)).await {
            Ok(mcp) => {
                let mut tools = plan.tools.clone();
                tools.extend(mcp);
                Ok(tools)
            }
            Err(e) => {
                let message = format!("agent `{}`: {e}", call.agent);
                self.events.emit(Event::Warning {
                    message: message.clone(),
                });
                Err(NodeError::Retryable(message))
            }
        }
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
