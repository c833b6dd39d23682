//! A headless Chromium for the tests that look at pages as a browser shows them: `$CHROMIUM`,
//! else `chromium` on the PATH, else Debian's package installed on first use (`apt-get install
//! chromium`, as root). A machine where none can be had fails the test, naming why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use super::common::PATIENCE;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = on_path("chromium") {
        return Ok(p);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get could not be run ({e}): install Debian's `chromium`"))
    };
    apt(&["update", "-q"])?;
    let ok = apt(&["install", "-y", "-q", "chromium"])?;
    if !ok.success() {
        return Err(format!("`apt-get install chromium` failed ({ok})"));
    }
    on_path("chromium")
        .ok_or_else(|| "apt-get installed chromium, but it is not on the PATH".into())
}

/// The browser, found or installed once per test run.
pub(crate) fn chromium() -> &'static Path {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find) {
        Ok(p) => p,
        Err(why) => panic!("no headless Chromium for this test: {why}"),
    }
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=PATH`) once the
/// page's scripts had `budget_ms` of virtual time; its stdout.
pub(crate) fn headless(url: &str, args: &[&str], budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--window-size=1400,1300",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish with {url} within {PATIENCE:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    reader.join().unwrap()
}
