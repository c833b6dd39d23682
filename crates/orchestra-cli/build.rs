//! Link-time layout of the release binary, for memory.
//!
//! Most of a run's resident memory is the binary's code, and a page fault maps 64 KiB of code
//! around the faulting address. The functions a run executes (about 2 MB) are spread over the
//! whole `.text` (10 MB), so nearly all of it becomes resident. `hot-functions.txt` (made by
//! `bench/hot-functions.sh`) lists them; the linker puts them next to each other. Names it does
//! not find (functions renamed or gone since the file was made) are skipped.
//!
//! Relative relocations are packed (DT_RELR): otherwise the loader reads 600 KB of them at
//! every start.
//!
//! Both only apply to release builds for x86_64 Linux with glibc, linked by rust-lld (the
//! default there since Rust 1.90), and not when a linker is configured: the options are lld's.
//! `ORCHESTRA_PLAIN_LINK=1` turns both off.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-changed=hot-functions.rustc");
    println!("cargo:rerun-if-env-changed=ORCHESTRA_PLAIN_LINK");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let linker_configured = env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|k| var("CARGO_ENCODED_RUSTFLAGS").contains(k));
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || env::var_os("ORCHESTRA_PLAIN_LINK").is_some_and(|v| v != "0")
        || linker_configured
        || !rustc_links_with_lld()
    {
        return;
    }
    let dir = Path::new(&var("CARGO_MANIFEST_DIR")).to_path_buf();
    let order = dir.join("hot-functions.txt");
    // Symbol names carry hashes that change with the compiler: a list made by another one
    // matches nothing, and the binary's code is laid out as if there were none.
    if let Ok(made_by) = std::fs::read_to_string(dir.join("hot-functions.rustc")) {
        let now = rustc_version();
        if made_by.trim() != now.trim() {
            println!(
                "cargo:warning=hot-functions.txt was made with `{}`, this is `{}`: run bench/hot-functions.sh to lay out the release binary for its memory",
                made_by.trim(),
                now.trim()
            );
        }
    }
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// `rustc --version` of the compiler building this, e.g. "rustc 1.95.0 (59807616e 2026-04-14)".
fn rustc_version() -> String {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// Rust 1.90 and later link x86_64-unknown-linux-gnu with rust-lld.
fn rustc_links_with_lld() -> bool {
    let text = rustc_version();
    // "rustc 1.95.0 (...)"
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

/// Whether this machine's glibc loads packed relative relocations (2.36 and later).
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}
