//! Integration tests of orchestra-providers: the HTTP clients against a real local server, the
//! command provider with real subprocesses, the scripted provider with real files.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly too"
)]

mod anthropic;
mod anthropic_cache;
mod build;
mod cli_agents;
mod command;
mod errors;
mod faults;
mod gate;
mod limited;
mod openai;
mod real_llm;
mod scripted;
mod server;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestra_providers::{
    BuildOptions, ChatRequest, Message, Provider, ProviderError, ToolDef, build_with,
};
use orchestra_spec::{ProviderSpec, SourceFile, parse_yaml};
use serde_json::json;

/// The fake API key the HTTP tests use; it must never show up in an error.
pub const KEY: &str = "sk-test-very-secret-key-0123456789";

/// Fast backoff so retry tests take milliseconds.
pub fn fast() -> BuildOptions {
    BuildOptions {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
        ..BuildOptions::default()
    }
}

/// A provider spec from YAML.
pub fn spec(yaml: &str) -> ProviderSpec {
    parse_yaml(&SourceFile::new("p.yaml", yaml), "provider").unwrap()
}

/// Environment lookup that knows only `TEST_KEY`.
pub fn env(var: &str) -> Option<String> {
    (var == "TEST_KEY").then(|| KEY.to_owned())
}

/// Builds a provider with fast backoff.
pub fn provider(name: &str, yaml: &str, dir: &Path) -> Arc<dyn Provider> {
    build_with(name, &spec(yaml), dir, &env, &fast()).unwrap()
}

/// A request with one `app:read-file` tool.
pub fn request(agent: &str, messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        agent: agent.into(),
        run_index: 0,
        model: "test-model".into(),
        system: "You are a careful reviewer.".into(),
        messages,
        tools: vec![ToolDef {
            name: "app:read-file".into(),
            description: "Read a file of the app repository.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"]
            }),
        }],
        max_tokens: None,
        temperature: None,
        workdir: None,
        vars: Default::default(),
    }
}

/// Collects streamed text.
#[derive(Debug, Default)]
pub struct Collected(pub Mutex<String>);

impl Collected {
    pub fn sink(&self) -> impl Fn(&str) + Send + Sync + '_ {
        |t: &str| self.0.lock().unwrap().push_str(t)
    }
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Display and Debug of an error and of its whole source chain.
pub fn everything_about(e: &ProviderError) -> String {
    let mut out = format!("{e}\n{e:?}\n");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(&format!("{s}\n{s:?}\n"));
        src = s.source();
    }
    out
}
