//! The real MCP servers the tests use, installed once from npm and PyPI by
//! `.ci/mcp-test-servers` (cached under `~/.cache/orchestra-test/mcp`, or
//! `$ORCHESTRA_TEST_CACHE/mcp`). Shared by orchestra-mcp's tests and the end-to-end tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the installed servers are.
#[derive(Debug)]
pub struct McpInstall {
    pub dir: PathBuf,
}

impl McpInstall {
    /// `node_modules/.bin/NAME`.
    pub fn npm_bin(&self, name: &str) -> PathBuf {
        self.dir.join("node_modules/.bin").join(name)
    }
    /// The venv's `bin/NAME`.
    pub fn venv_bin(&self, name: &str) -> PathBuf {
        self.dir.join("venv/bin").join(name)
    }
}

/// The installed servers; installs them on first use. When they cannot be installed, the test
/// fails with the reason (npm and PyPI are reachable wherever the tests run: a failure to
/// install is a fault to see, never a test passed without running).
pub fn mcp_install() -> &'static McpInstall {
    static INSTALL: OnceLock<Result<McpInstall, String>> = OnceLock::new();
    let got = INSTALL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|d| d.join(".ci/mcp-test-servers").is_file())
            .map(Path::to_path_buf)
            .ok_or("cannot find .ci/mcp-test-servers above the crate")?;
        let cache = std::env::var_os("ORCHESTRA_TEST_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orchestra-test"))
            })
            .ok_or("neither ORCHESTRA_TEST_CACHE nor HOME is set")?;
        let dir = cache.join("mcp");
        let out = std::process::Command::new(root.join(".ci/mcp-test-servers"))
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run .ci/mcp-test-servers: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "installing the MCP test servers failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(McpInstall { dir })
    });
    match got {
        Ok(i) => i,
        Err(reason) => panic!("{reason}"),
    }
}

/// Processes alive now (not zombies) whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Waits (up to 10 s) until no live process has `marker` in its command line; the ones left.
pub fn wait_gone(marker: &str) -> Vec<u32> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = processes_with(marker);
        if left.is_empty() || std::time::Instant::now() > until {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Live processes (not zombies) whose working directory is `dir` or under it.
pub fn processes_in(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if zombie || pid == std::process::id() {
            continue;
        }
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c.starts_with(&dir)) {
            out.push(pid);
        }
    }
    out
}

/// Waits (up to 10 s) until no live process runs in `dir`; the ones left.
pub fn wait_none_in(dir: &Path) -> Vec<u32> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = processes_in(dir);
        if left.is_empty() || std::time::Instant::now() > until {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
