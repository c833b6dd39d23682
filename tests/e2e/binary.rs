//! The `orchestra` binary under test, fresh from the workspace's sources.
//!
//! Cargo tells only the package that owns a binary where it is (`CARGO_BIN_EXE_*`), and this
//! crate is not that package. So the first test that needs the binary runs `cargo build
//! --workspace --bins --tests` (the cargo running the tests, the same profile and target
//! directory), once per test process, and every test uses the path cargo reports for
//! `orchestra`. The whole workspace with its tests is selected so that dependencies get the
//! same features as under `cargo test --workspace`: everything but the binary is then already
//! built (`-p orchestra-cli` alone would build the dependencies a second time, with fewer
//! features). `ORCHESTRA_TEST_BIN=PATH` tests a binary built elsewhere instead (a release
//! build, say).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::common::workspace_root;

/// The path of the `orchestra` binary to test (built on first use).
pub(crate) fn orchestra_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ORCHESTRA_TEST_BIN") {
        Some(path) => PathBuf::from(path),
        None => build(),
    })
}

/// Builds the binary with the cargo that runs the tests and returns its path.
fn build() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--tests"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(profile) = profile() {
        cmd.args(["--profile", &profile]);
    }
    // What cargo set for this test process is not in the environment of the `cargo test` that
    // built everything: build scripts that watch these (ring's `rerun-if-env-changed`) would
    // run again and rebuild all that depends on them, twice per run of the suite.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_for_tests) {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "`cargo build --workspace --bins --tests` failed: see its output above"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == "orchestra"
                && msg["profile"]["test"] == false
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the orchestra executable it built")
}

/// Whether cargo sets the variable `key` for the test processes it runs (and not for itself).
fn set_by_cargo_for_tests(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

/// The cargo profile this test binary was built with when it is not the default one, read from
/// where it lives (`target/PROFILE_DIR/deps/e2e-HASH`): `debug` is the default (`dev`, `test`
/// for test targets), other directories are named after their profile (`release`, ...).
fn profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.file_name()?.to_str()?;
    (dir != "debug").then(|| dir.to_owned())
}
