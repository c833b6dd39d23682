//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, npm, run on npm's
//! Node.js 22 by `.ci/mcp-conformance`) against `orchestra mcp --http`: its server scenarios
//! pass, but for those of `tests/mcp/conformance-expected-failures.yaml` — and those fail for
//! the reason written there (a method of a capability orchestra does not declare, or a tool of
//! the suite's reference server), not for another. The suite is installed by `tests/build.rs`;
//! when it cannot be, this test is ignored with the reason.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::common::{tests_dir, workspace_root};
use super::mcp_http::Served;
use super::readme::Repo;

macro_rules! conformance_test {
    (found) => {
        #[test]
        fn the_mcp_conformance_suite_passes_what_applies_to_orchestra() {
            conformance();
        }
    };
    (ignored $why:literal) => {
        #[test]
        #[ignore = $why]
        fn the_mcp_conformance_suite_passes_what_applies_to_orchestra() {
            panic!("{}", $why);
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/conformance.rs"));

/// The scenarios that must pass (each one's every check).
const PASSING: [&str; 5] = [
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

fn conformance() {
    let repo = Repo::new();
    let served = Served::start(&repo, "127.0.0.1:0");
    let out = tempfile::tempdir().unwrap();
    let ran = Command::new(workspace_root().join(".ci/mcp-conformance"))
        .args(["run", &served.url])
        .arg(out.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && said.contains("Baseline check passed"),
        "{}\n--- stdout\n{said}\n--- stderr\n{}\n--- server stderr\n{}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr),
        served.stderr.lock().unwrap()
    );

    let baseline: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(tests_dir().join("mcp/conformance-expected-failures.yaml"))
            .unwrap(),
    )
    .unwrap();
    let expected: Vec<&str> = baseline["server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for scenario in PASSING {
        let checks = checks(out.path(), scenario);
        assert!(!checks.is_empty(), "{scenario} ran no check");
        for c in &checks {
            assert_eq!(c["status"], "SUCCESS", "{scenario}: {c}");
        }
    }
    for scenario in expected {
        let failed: Vec<Value> = checks(out.path(), scenario)
            .into_iter()
            .filter(|c| c["status"] == "FAILURE")
            .collect();
        assert!(
            !failed.is_empty(),
            "{scenario} is listed as failing but did not fail"
        );
        for c in failed {
            let why = c["errorMessage"].as_str().unwrap_or("");
            // -32601: a method of a capability orchestra does not declare; -32602 "tool not
            // found": a tool of the suite's reference server.
            assert!(
                why.contains("MCP error -32601: ")
                    || why.contains("MCP error -32602: tool not found"),
                "{scenario} failed for another reason than the baseline's: {c}"
            );
        }
    }
}

/// The checks of `scenario` in the suite's output directory (`server-SCENARIO-TIME/checks.json`).
fn checks(out: &Path, scenario: &str) -> Vec<Value> {
    let prefix = format!("server-{scenario}-2");
    let dir = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no result of {scenario} in {}", out.display()));
    let text = std::fs::read_to_string(dir.join("checks.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}
