//! `--cfg real_llm` when `ORCHESTRA_REAL_LLM=1`: the tests that call real models run then; without
//! it they are reported as ignored (not as passed). `--cfg chromium` when a Chromium is there
//! (`$CHROMIUM`, or `chromium` on the PATH; `.ci/run` installs Debian's): the test that renders a
//! report in it runs then; without one it is reported as ignored.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(real_llm)");
    println!("cargo::rerun-if-env-changed=ORCHESTRA_REAL_LLM");
    if std::env::var_os("ORCHESTRA_REAL_LLM").is_some_and(|v| v == "1") {
        println!("cargo::rustc-cfg=real_llm");
    }
    println!("cargo::rustc-check-cfg=cfg(chromium)");
    println!("cargo::rerun-if-env-changed=CHROMIUM");
    println!("cargo::rerun-if-env-changed=PATH");
    let found = match std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file()),
    };
    // Rebuilt when it goes away; `.ci/run` sets CHROMIUM once it installed one.
    if let Some(p) = &found {
        println!("cargo::rerun-if-changed={}", p.display());
    }
    if found.is_some() {
        println!("cargo::rustc-cfg=chromium");
    }
}
