//! Building a drive's servers from YAML, as a pipeline would declare them.

use std::path::Path;
use std::sync::Arc;

use orchestra_mcp::McpServers;
use orchestra_spec::{McpServerSpec, SourceFile, SpannedMap, parse_yaml};

/// The servers of `yaml` (an `mcp_servers:` map), run in `cwd`, `${VAR}`s from `vars`.
pub fn servers(yaml: &str, cwd: &Path, vars: &[(&str, &str)]) -> McpServers {
    let src = SourceFile::new("test.yaml", yaml);
    let map: SpannedMap<McpServerSpec> = parse_yaml(&src, "mcp_servers").unwrap();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env =
        Arc::new(move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
    McpServers::new(
        map.iter().map(|(k, _, v)| (k.to_owned(), v.clone())),
        cwd,
        env,
    )
}

/// A string that appears in no other process's command line.
pub fn marker(what: &str) -> String {
    format!(
        "orchestra-mcp-test-{what}-{}-{}",
        std::process::id(),
        nanos()
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A multi-threaded runtime, as the CLI uses.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
