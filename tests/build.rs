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
//!
//! The test that drives `orchestra mcp` with the official MCP Python SDK needs it: installed
//! here on first use (`python3 -m venv` and `pip install mcp==PY_MCP jsonschema`) into a venv
//! cached in `~/.cache/orchestra-test/py-mcp`, one install at a time under a file lock. This
//! writes `OUT_DIR/py_mcp.rs`: the test with the venv's python, or ignored with the reason.
//!
//! With `CI` set (not empty), a browser or SDK that cannot be had fails the build, naming why:
//! on CI every test runs, none is ignored for want of something.
//!
//! The web UI's tests that click and type need chromedriver too (`$CHROMEDRIVER`, else
//! `chromedriver` on the PATH, else Debian's `chromium-driver`, installed the same way); without
//! it they are ignored (`--cfg no_chromedriver`) and the build warns why.

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
            missing_on_ci("a headless Chromium", &why);
            // A path that does not exist: cargo runs this again on every build, so the next
            // build tries the install again.
            println!("cargo::rerun-if-changed=/usr/bin/chromium");
            println!("cargo::warning=the headless Chromium report test is ignored: {why}");
            println!("cargo::rustc-env=ORCHESTRA_TEST_CHROMIUM_MISSING={why}");
            format!("browser_test!(ignored {why:?});\n")
        }
    };
    // The web UI's browser tests that click and type drive the browser through chromedriver
    // (WebDriver over loopback HTTP): Debian's `chromium-driver`, installed the same way.
    println!("cargo::rustc-check-cfg=cfg(no_chromedriver)");
    println!("cargo::rerun-if-env-changed=CHROMEDRIVER");
    match chromedriver() {
        Ok(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            println!(
                "cargo::rustc-env=ORCHESTRA_TEST_CHROMEDRIVER={}",
                path.display()
            );
        }
        Err(why) => {
            println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
            println!("cargo::warning=the web UI's chromedriver tests are ignored: {why}");
            println!("cargo::rustc-cfg=no_chromedriver");
        }
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("chromium.rs"), test).expect("OUT_DIR is writable");
    std::fs::write(out.join("conformance.rs"), conformance()).expect("OUT_DIR is writable");

    println!("cargo::rerun-if-env-changed=HOME");
    println!("cargo::rustc-check-cfg=cfg(py_mcp_missing)");
    let test = match python_mcp_sdk() {
        Ok(python) => {
            println!(
                "cargo::rustc-env=ORCHESTRA_TEST_PY_MCP={}",
                python.display()
            );
            // Run again (and reinstall) when the venv goes away.
            println!("cargo::rerun-if-changed={}", python.display());
            format!(
                "python_sdk_test!(found {:?});\n",
                python.display().to_string()
            )
        }
        Err(why) => {
            missing_on_ci("the MCP Python SDK", &why);
            println!("cargo::rustc-cfg=py_mcp_missing");
            // Its marker does not exist: the next build tries the install again.
            println!(
                "cargo::rerun-if-changed={}",
                cache_dir().join("py-mcp").join(ready_marker()).display()
            );
            println!("cargo::warning=the MCP Python SDK test of `orchestra mcp` is ignored: {why}");
            format!(
                "python_sdk_test!(ignored {:?});\n",
                format!("the MCP Python SDK cannot be installed here: {why}")
            )
        }
    };
    std::fs::write(out.join("py_mcp.rs"), test).expect("OUT_DIR is writable");
}

/// On CI (`CI` set and not empty) a test must not be ignored for want of `what`: the build
/// fails, naming why it is missing.
fn missing_on_ci(what: &str, why: &str) {
    println!("cargo::rerun-if-env-changed=CI");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        #[expect(
            clippy::print_stderr,
            reason = "a build script fails by saying why on stderr"
        )]
        {
            eprintln!("error: CI is set, and the tests need {what}: {why}");
        }
        std::process::exit(1);
    }
}

/// Where installs are cached: `~/.cache/orchestra-test` (or the temp dir's `orchestra-test`
/// without a HOME).
fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".cache/orchestra-test"))
        .unwrap_or_else(|| std::env::temp_dir().join("orchestra-test"))
}

/// The MCP Python SDK version `tests/mcp/client.py` is written for.
const PY_MCP: &str = "2.3.0";

/// The file that says the venv holds this SDK version.
fn ready_marker() -> String {
    format!(".ready-{PY_MCP}")
}

/// The python of a venv with the MCP Python SDK (and `jsonschema`), installed once per
/// machine under a lock that parallel builds share; or why it could not be.
fn python_mcp_sdk() -> Result<PathBuf, String> {
    let dir = cache_dir().join("py-mcp");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let python = dir.join("venv/bin/python");
    let ready = dir.join(ready_marker());
    if ready.exists() && python.exists() {
        return Ok(python);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = said
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect();
        Err(format!(
            "`{what}` failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    };
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(dir.join("venv")),
        "python3 -m venv",
    )?;
    let sdk = format!("mcp=={PY_MCP}");
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &sdk,
            "jsonschema",
        ]),
        &format!("pip install {sdk} jsonschema"),
    )?;
    File::create(&ready).map_err(|e| format!("cannot create {}: {e}", ready.display()))?;
    println!(
        "cargo::warning=installed the MCP Python SDK ({sdk}, pip) for the `orchestra mcp` test"
    );
    Ok(python)
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
    install("chromium", "chromium")?;
    on_path("chromium")
        .ok_or_else(|| "apt-get installed chromium, but `chromium` is not on the PATH".to_owned())
}

/// The chromedriver of that Chromium (`$CHROMEDRIVER`, `chromedriver` on the PATH, or Debian's
/// `chromium-driver` installed if need be); or why there is none.
fn chromedriver() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("CHROMEDRIVER={} is not a file", p.display()))
        };
    }
    if let Some(p) = on_path("chromedriver") {
        return Ok(p);
    }
    install("chromium-driver", "chromedriver")?;
    on_path("chromedriver").ok_or_else(|| {
        "apt-get installed chromium-driver, but `chromedriver` is not on the PATH".to_owned()
    })
}

/// `name` in a directory of the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Installs Debian's `package` (which puts `program` on the PATH) with apt-get, once: under a
/// lock that parallel builds (other checkouts, other target directories) share, after which the
/// first one's install is seen.
fn install(package: &str, program: &str) -> Result<(), String> {
    let Some(apt) = on_path("apt-get") else {
        return Err(format!(
            "{program} is missing and there is no apt-get to install it with"
        ));
    };
    let root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").map_err(|e| format!("cannot read /proc/self: {e}"))?,
    ) == 0;
    let sudo = match (root, on_path("sudo")) {
        (true, _) => None,
        (false, Some(s)) => Some(s),
        (false, None) => {
            return Err(format!(
                "{program} is missing, and installing it needs root or sudo"
            ));
        }
    };
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = dir.join("apt.lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if on_path(program).is_some() {
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
    let install = ["install", "-y", "--no-install-recommends", package];
    // Package lists may be missing or stale on a fresh machine: update them once, then retry.
    apt_get(&install).or_else(|_| {
        apt_get(&["update"])?;
        apt_get(&install)
    })?;
    println!(
        "cargo::warning=installed Debian's {package} (apt-get) for the headless browser tests"
    );
    Ok(())
}
