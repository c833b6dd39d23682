//! A real PostgreSQL server for tests (feature `testing`): started on first use, shared by the
//! test binary, a fresh database per test, stopped when the binary ends.
//!
//! - **Install.** `initdb` and `pg_ctl` are found under `/usr/lib/postgresql/*/bin` (the newest
//!   version), else on `PATH`. When they are missing, Debian's `postgresql` package is
//!   installed with `apt-get` (as root), under a file lock so that test binaries starting
//!   together install it once; apt keeps it for the next runs.
//! - **Server.** `initdb` on a temp dir, then `pg_ctl start` on a free loopback port, with its
//!   Unix socket in the temp dir. PostgreSQL refuses to run as root, so when the tests do, it
//!   runs as `nobody`, which owns the temp dir. The superuser `postgres` has a random password
//!   and TCP connections must give it (`scram-sha-256`), so tests exercise passwords.
//! - **Stop.** A watchdog process (a shell in a process group of its own) waits for the test
//!   binary to exit, however it exits, then shuts the server down and removes the temp dir:
//!   nothing of a run is left for the next one.
//!
//! - **TLS.** [`start_tls_server`] starts another server with `ssl = on` and the certificate a
//!   test made, taking TCP connections over TLS only.
//!
//! [`server`] returns why no server could be had, and callers fail the test with it: a test
//! that needs PostgreSQL never passes without one.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A running test server.
#[derive(Debug)]
pub struct TestServer {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The password of the superuser `postgres`.
    pub password: String,
    /// The temp dir holding its data directory, log and socket.
    pub dir: PathBuf,
    /// `pg_ctl`'s options that start it (port, socket, settings), for [`TestServer::start`].
    options: String,
    /// Where `pg_ctl` is, and who runs it.
    bin: PathBuf,
    owner: Option<(u32, u32)>,
}

/// The server of this test binary, started on first use; or why there is none.
pub fn server() -> Result<&'static TestServer, String> {
    static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| start(None).map_err(|e| format!("no PostgreSQL server for the tests: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// The certificate of a TLS server: the chain (PEM, the server's certificate first) and its
/// private key (PEM).
#[derive(Debug)]
pub struct ServerCert {
    /// The certificate chain, PEM.
    pub chain: String,
    /// The private key, PEM.
    pub key: String,
}

/// Starts another server, with `ssl = on` and `cert`, which TCP clients must reach over TLS
/// (`hostssl` in its `pg_hba.conf`); it is stopped when the test binary ends. Its Unix socket
/// takes plain connections.
pub fn start_tls_server(cert: &ServerCert) -> Result<TestServer, String> {
    start(Some(cert)).map_err(|e| format!("no PostgreSQL TLS server for the tests: {e}"))
}

/// Starts a server of the caller's own (not shared with other tests), which it may stop and
/// start again ([`TestServer::stop`], [`TestServer::start`]); it is stopped when the test
/// binary ends.
pub fn start_own_server() -> Result<TestServer, String> {
    start(None).map_err(|e| format!("no PostgreSQL server for the test: {e}"))
}

/// A fresh, empty database on the test server: its URL, with the password in it.
///
/// # Panics
///
/// When there is no server or the database cannot be created (the test cannot run).
pub fn fresh_database() -> String {
    let server = server().unwrap_or_else(|e| panic!("{e}"));
    let name = server
        .create_database()
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    server.url(&name)
}

impl TestServer {
    /// The URL of database `db`, with the password.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The URL of database `db` without a password (give it in `PGPASSWORD`).
    pub fn url_without_password(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected), as an administrator
    /// or a crash of its machine would; [`TestServer::start`] starts it again on the same port.
    pub fn stop(&self) -> Result<(), String> {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        pg_run(
            &self.bin,
            &self.dir,
            self.owner,
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "stop"],
        )
    }

    /// Starts the server again after [`TestServer::stop`], with the same data and port.
    pub fn start(&self) -> Result<(), String> {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        pg_run(
            &self.bin,
            &self.dir,
            self.owner,
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                "log",
                "-w",
                "-t",
                "60",
                "-o",
                &self.options,
                "start",
            ],
        )
    }

    /// Creates a database with a name unique to this process and returns the name.
    pub fn create_database(&self) -> Result<String, String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| e.to_string())?;
        Ok(name)
    }
}

/// The directory of `initdb` and `pg_ctl`, if PostgreSQL is installed.
fn bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_tools(d))
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `initdb` and `pg_ctl`, installing Debian's `postgresql` package when they are missing.
fn ensure_installed() -> Result<PathBuf, String> {
    if let Some(dir) = bin_dir() {
        return Ok(dir);
    }
    if !is_root() {
        return Err(
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH) \
             and installing it needs root: run `apt-get install -y postgresql`"
                .to_owned(),
        );
    }
    let cache = std::env::var_os("HOME")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(".cache/orchestra-test");
    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let lock_path = cache.join("postgres-install.lock");
    let lock = fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another test binary may have installed it while this one waited for the lock.
    if let Some(dir) = bin_dir() {
        return Ok(dir);
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let install = ["install", "-y", "--no-install-recommends", "postgresql"];
    let mut out = apt(&install).map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !out.status.success() {
        // The package lists may be missing (a fresh container): fetch them and try again.
        let _ = apt(&["update"]);
        out = apt(&install).map_err(|e| format!("cannot run apt-get: {e}"))?;
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "`apt-get install postgresql` failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    bin_dir().ok_or_else(|| "apt-get installed postgresql but no initdb was found".to_owned())
}

/// The uid and gid of `name` in `/etc/passwd`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("pw{:016x}", h.finish())
}

fn start(tls: Option<&ServerCert>) -> Result<TestServer, String> {
    let bin = ensure_installed()?;
    let owner = if is_root() {
        Some(user_ids("nobody").ok_or("tests run as root and there is no user `nobody`")?)
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("orchestra-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?
        .keep();
    let io = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| io("chmod", e))?;
    let password = random_password();
    let pwfile = dir.join("pw");
    fs::File::create(&pwfile)
        .and_then(|mut f| writeln!(f, "{password}"))
        .map_err(|e| io("write the password file", e))?;
    if let Some((uid, gid)) = owner {
        for p in [&dir, &pwfile] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| io("chown", e))?;
        }
    }
    let run = |program: &str, args: &[&str]| pg_run(&bin, &dir, owner, program, args);
    let data = dir.join("data");
    let data_s = data.to_string_lossy().into_owned();
    run(
        "initdb",
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--pwfile=pw",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
    )?;
    let tls_options = match tls {
        Some(cert) => tls_files(&dir, &data, cert, owner)?,
        None => String::new(),
    };
    let mut last = String::new();
    // A free port may be taken by someone else before the server binds it: try a few.
    for _ in 0..5 {
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200{tls_options}",
            dir.display()
        );
        match run(
            "pg_ctl",
            &[
                "-D", &data_s, "-l", "log", "-w", "-t", "60", "-o", &options, "start",
            ],
        ) {
            Ok(()) => {
                watchdog(&dir, &data)?;
                return Ok(TestServer {
                    port,
                    password,
                    dir,
                    options,
                    bin,
                    owner,
                });
            }
            Err(e) => last = e,
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Err(last)
}

/// Runs PostgreSQL's `program` (`initdb`, `pg_ctl`) of `bin` in `dir` as `owner`; its failure
/// with the end of the server's log.
fn pg_run(
    bin: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
    program: &str,
    args: &[&str],
) -> Result<(), String> {
    let mut cmd = Command::new(bin.join(program));
    cmd.args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let log = fs::read_to_string(dir.join("log")).unwrap_or_default();
    Err(format!(
        "{program} failed ({}): {}{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        if log.is_empty() { "" } else { "; server log: " },
        log.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
    ))
}

/// Writes `cert` into `dir` (the key readable by the server only, as PostgreSQL demands) and
/// makes TCP connections use TLS; returns the server's options for it.
fn tls_files(
    dir: &Path,
    data: &Path,
    cert: &ServerCert,
    owner: Option<(u32, u32)>,
) -> Result<String, String> {
    let io = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    fs::write(&crt, &cert.chain).map_err(|e| io("write the certificate", e))?;
    fs::write(&key, &cert.key).map_err(|e| io("write the key", e))?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).map_err(|e| io("chmod", e))?;
    if let Some((uid, gid)) = owner {
        for p in [&crt, &key] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| io("chown", e))?;
        }
    }
    // Only TLS over TCP: a client that asks for none is refused, not served in plain text.
    let hba = data.join("pg_hba.conf");
    fs::write(
        &hba,
        "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .map_err(|e| io("write pg_hba.conf", e))?;
    Ok(format!(
        " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        crt.display(),
        key.display()
    ))
}

/// Starts the process that stops the server and removes `dir` once this process has exited.
fn watchdog(dir: &Path, data: &Path) -> Result<(), String> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         pm=$(head -n 1 '{pidfile}' 2>/dev/null); \
         if [ -n \"$pm\" ]; then kill -QUIT \"$pm\" 2>/dev/null; \
           while kill -0 \"$pm\" 2>/dev/null; do sleep 0.2; done; fi; \
         rm -rf '{dir}'",
        pid = std::process::id(),
        pidfile = data.join("postmaster.pid").display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the server's watchdog: {e}"))
}
