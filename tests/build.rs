//! `--cfg real_llm` when `ORCHESTRA_REAL_LLM=1`: the tests that call real models run then; without
//! it they are reported as ignored (not as passed).
//!
//! The test that renders a report in a headless Chromium needs one: `$CHROMIUM`, else `chromium`
//! on the PATH, else Debian's package, installed here on first use (`apt-get install chromium`,
//! as root or through passwordless `sudo`, one install at a time under a file lock). This writes
//! `OUT_DIR/chromium.rs`: the test with the browser's path, or — when there is none and the
//! install failed — the test marked ignored with the reason, which `cargo test` prints.
//!
//! The same for the MCP conformance test: `.ci/mcp-conformance install` puts the official suite
//! (`@modelcontextprotocol/conformance`) and the Node.js 22 it needs (npm's `node` package) under
//! `~/.cache/orchestra-test/conformance` once; this writes `OUT_DIR/conformance.rs`: the test, or
//! the test marked ignored with the reason the install failed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(real_llm)");
    println!("cargo::rerun-if-env-changed=ORCHESTRA_REAL_LLM");
    if std::env::var_os("ORCHESTRA_REAL_LLM").is_some_and(|v| v == "1") {
        println!("cargo::rustc-cfg=real_llm");
    }

    println!("cargo::rerun-if-env-changed=CHROMIUM");
    println!("cargo::rerun-if-env-changed=PATH");
    let test = match chromium() {
        Ok(path) => {
            // Run again (and reinstall) when it goes away.
            println!("cargo::rerun-if-changed={}", path.display());
            // For the other browser tests (`tests/e2e/browser.rs`): one place finds or installs it.
            println!(
                "cargo::rustc-env=ORCHESTRA_TEST_CHROMIUM={}",
                path.display()
            );
            format!("browser_test!(found {:?});\n", path.display().to_string())
        }
        Err(why) => {
            // A path that does not exist: cargo runs this again on every build, so the next
            // build tries the install again.
            println!("cargo::rerun-if-changed=/usr/bin/chromium");
            println!("cargo::warning=the headless Chromium report test is ignored: {why}");
            println!("cargo::rustc-env=ORCHESTRA_TEST_CHROMIUM_MISSING={why}");
            format!("browser_test!(ignored {why:?});\n")
        }
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("chromium.rs"), test).expect("OUT_DIR is writable");
    std::fs::write(out.join("conformance.rs"), conformance()).expect("OUT_DIR is writable");
}

/// The MCP conformance test, its suite installed by `.ci/mcp-conformance install`; or the test
/// ignored with the reason it cannot be.
fn conformance() -> String {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let script = manifest.join("../.ci/mcp-conformance");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::rerun-if-env-changed=ORCHESTRA_CONFORMANCE_DIR");
    let installed = Command::new(&script)
        .arg("install")
        .output()
        .map_err(|e| format!("cannot run .ci/mcp-conformance: {e}"))
        .and_then(|out| {
            if out.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            Err(format!(
                "`.ci/mcp-conformance install` failed ({}): {last}",
                out.status
            ))
        });
    match installed {
        Ok(()) => "conformance_test!(found);\n".to_owned(),
        Err(why) => {
            // A path that does not exist: the next build tries the install again.
            println!("cargo::rerun-if-changed=/nonexistent/orchestra-conformance");
            println!("cargo::warning=the MCP conformance test is ignored: {why}");
            format!("conformance_test!(ignored {why:?});\n")
        }
    }
}

/// The Chromium to render with, installed if need be; or why there is none.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("CHROMIUM={} is not a file", p.display()))
        };
    }
    if let Some(p) = on_path("chromium") {
        return Ok(p);
    }
    install()?;
    on_path("chromium")
        .ok_or_else(|| "apt-get installed chromium, but `chromium` is not on the PATH".to_owned())
}

/// `name` in a directory of the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Installs Debian's `chromium` with apt-get, once: under a lock that parallel builds (other
/// checkouts, other target directories) share, after which the first one's install is seen.
fn install() -> Result<(), String> {
    let Some(apt) = on_path("apt-get") else {
        return Err("chromium is missing and there is no apt-get to install it with".to_owned());
    };
    let root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").map_err(|e| format!("cannot read /proc/self: {e}"))?,
    ) == 0;
    let sudo = match (root, on_path("sudo")) {
        (true, _) => None,
        (false, Some(s)) => Some(s),
        (false, None) => {
            return Err("chromium is missing, and installing it needs root or sudo".to_owned());
        }
    };
    let dir = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cache/orchestra-test"))
        .unwrap_or_else(|| std::env::temp_dir().join("orchestra-test"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = dir.join("apt.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if on_path("chromium").is_some() {
        return Ok(());
    }
    let apt_get = |args: &[&str]| -> Result<(), String> {
        let mut cmd = match &sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("-n").arg(&apt);
                c
            }
            None => Command::new(&apt),
        };
        // Waits for another apt (any program's) rather than failing on its lock.
        cmd.args(["-o", "DPkg::Lock::Timeout=600", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", apt.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!(
            "`apt-get {}` failed ({}): {last}",
            args.join(" "),
            out.status
        ))
    };
    let install = ["install", "-y", "--no-install-recommends", "chromium"];
    // Package lists may be missing or stale on a fresh machine: update them once, then retry.
    apt_get(&install).or_else(|_| {
        apt_get(&["update"])?;
        apt_get(&install)
    })?;
    println!("cargo::warning=installed Debian's chromium (apt-get) for the headless report test");
    Ok(())
}
