//! A headless Chromium for the tests that look at pages as a browser shows them: the one
//! `tests/build.rs` found or installed on first use.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::common::PATIENCE;

/// The browser `tests/build.rs` found or installed (`$CHROMIUM`, `chromium` on the PATH, or
/// Debian's package installed with apt-get on the first build); a machine where none could be
/// had fails the test, naming why.
pub(crate) fn chromium() -> &'static Path {
    match option_env!("ORCHESTRA_TEST_CHROMIUM") {
        Some(p) => Path::new(p),
        None => panic!(
            "no headless Chromium for this test: {}",
            option_env!("ORCHESTRA_TEST_CHROMIUM_MISSING").unwrap_or("tests/build.rs found none")
        ),
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
