//! PostgreSQL URLs: what they show of themselves (never the password) and the client
//! configuration they give, completed from the `PG*` variables as libpq does (`PGHOST`,
//! `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`), and the one
//! parameter of orchestra's own, `pool_size` (how many connections a process may open).

use std::str::FromStr;
use std::time::Duration;

use postgres::Config;
use postgres::config::Host;

/// What stands for a password in URLs that are shown.
const MASK: &str = "***";

/// The most connections `pool_size` may ask for.
pub const MAX_POOL_SIZE: usize = 64;

/// Whether `value` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case).
pub fn is_postgres_url(value: &str) -> bool {
    value.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    })
}

/// `url` with its password masked, wherever it is given: `user:PASSWORD@` before the host, or a
/// `password=` parameter of the query string. Everything else is kept, so the URL still names
/// the server, the user and the database.
pub fn mask_password(url: &str) -> String {
    rewrite(url, Some(MASK))
}

/// `url` without its password (for a command to print, run with `PGPASSWORD`).
pub fn without_password(url: &str) -> String {
    rewrite(url, None)
}

/// `url` with its password replaced by `mask`, or removed.
fn rewrite(url: &str, mask: Option<&str>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user info ends at the last `@` (a password with an unencoded `/` or `?` is still
    // masked whole); the query string starts at the first `?` after it.
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                if let Some(mask) = mask {
                    out.push(':');
                    out.push_str(mask);
                }
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            let params: Vec<String> = query
                .split('&')
                .filter_map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        mask.map(|m| format!("{k}={m}"))
                    }
                    _ => Some(p.to_owned()),
                })
                .collect();
            if !params.is_empty() {
                out.push('?');
                out.push_str(&params.join("&"));
            }
        }
        None => out.push_str(after),
    }
    out
}

/// The server a configuration connects to, as people name it: `host:port`, or the socket
/// file of a Unix-domain socket directory.
pub(crate) fn server(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(dir)) => format!("{}/.s.PGSQL.{port}", dir.display()),
        None => match config.get_hostaddrs().first() {
            Some(addr) => format!("{addr}:{port}"),
            None => format!("localhost:{port}"),
        },
    }
}

/// The `PG*` variables of libpq that fill in what a URL leaves out (`PGPASSWORD` is
/// [`PgOptions::password`](crate::PgOptions)). Empty variables count as unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgEnv {
    /// `PGHOST`: host names, or a Unix-socket directory (starting with `/`), comma-separated.
    pub host: Option<String>,
    /// `PGPORT`: the port (comma-separated with several hosts).
    pub port: Option<String>,
    /// `PGUSER`: the user (default: the login name).
    pub user: Option<String>,
    /// `PGDATABASE`: the database (default: the user's name).
    pub dbname: Option<String>,
    /// `PGSSLMODE`: `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`.
    pub sslmode: Option<String>,
    /// `PGSSLROOTCERT`: the root certificates' PEM file, or `system`.
    pub sslrootcert: Option<String>,
}

impl PgEnv {
    /// The variables of this process.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            host: var("PGHOST"),
            port: var("PGPORT"),
            user: var("PGUSER"),
            dbname: var("PGDATABASE"),
            sslmode: var("PGSSLMODE"),
            sslrootcert: var("PGSSLROOTCERT"),
        }
    }
}

/// Why a URL and the environment give no client configuration. The messages are reasons for
/// [`StoreError::Unreachable`](orchestra_store::StoreError): they never hold the password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The URL does not parse (rust-postgres's reason).
    #[error("the URL is not a valid PostgreSQL URL ({0})")]
    Url(postgres::Error),
    /// A value of the URL or of a `PG*` variable is not one of its kind.
    #[error("invalid {key} `{value}` (from {origin}): {expected}")]
    Value {
        key: &'static str,
        value: String,
        origin: &'static str,
        expected: &'static str,
    },
}

/// How much of the server's certificate is checked (`sslmode`, as libpq names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate unchecked.
    Prefer,
    /// TLS or no connection, certificate unchecked (checked like `VerifyCa` when a root
    /// certificate file is given, as libpq does).
    Require,
    /// TLS, with a certificate signed by a trusted root.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted root and naming the host.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str, origin: &'static str) -> Result<Self, ConfigError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConfigError::Value {
                    key: "sslmode",
                    value: value.to_owned(),
                    origin,
                    expected: "give disable, prefer, require, verify-ca or verify-full",
                });
            }
        })
    }
}

/// What TLS a connection uses: the mode and where the root certificates come from
/// (`sslrootcert`: a PEM file, `system`, or unset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<String>,
}

/// The client configuration of `url`, its TLS and its `pool_size` if it gives one, like libpq:
/// what the URL leaves out comes from `env`, the password from the URL else `password` (the
/// caller passes `PGPASSWORD`).
/// Without a host, the server's Unix socket in `/run/postgresql`, `/var/run/postgresql` or
/// `/tmp` when one is there, else `localhost`. A connect timeout is set when the URL gives
/// none, so an unreachable server is reported instead of waited for.
pub(crate) fn config(
    url: &str,
    password: Option<&str>,
    env: &PgEnv,
    connect_timeout: Duration,
) -> Result<(Config, Tls, Option<usize>), ConfigError> {
    // rust-postgres knows neither `verify-*`, `sslrootcert` nor `pool_size`, and gives a host
    // without a port 5432 before it reads a `port` parameter: they are taken out here.
    let (url, params) = take_params(url);
    let pool_size = params.pool_size.as_deref().map(pool_size).transpose()?;
    let ports = |value: &str, origin| {
        value
            .split(',')
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::Value {
                key: "port",
                value: value.to_owned(),
                origin,
                expected: "give a port number",
            })
    };
    let ports = match (&params.port, &env.port) {
        (Some(url_ports), _) => ports(url_ports, "the URL")?,
        (None, Some(env_ports)) => ports(env_ports, "PGPORT")?,
        (None, None) => Vec::new(),
    };
    let url = with_ports(&url, &ports);
    let mut config = Config::from_str(&url).map_err(ConfigError::Url)?;
    if config.get_ports().is_empty() {
        for port in &ports {
            config.port(*port);
        }
    }
    if config.get_hosts().is_empty() {
        match &env.host {
            Some(hosts) => hosts.split(',').for_each(|h| {
                config.host(h.trim());
            }),
            // With only `hostaddr`, that address is the server.
            None if !config.get_hostaddrs().is_empty() => {}
            None => {
                let port = config.get_ports().first().copied().unwrap_or(5432);
                match default_socket_dir(port) {
                    Some(dir) => config.host_path(dir),
                    None => config.host("localhost"),
                };
            }
        }
    }
    if config.get_user().is_none()
        && let Some(user) = &env.user
    {
        config.user(user);
    }
    if config.get_dbname().is_none()
        && let Some(dbname) = &env.dbname
    {
        config.dbname(dbname);
    }
    if config.get_password().is_none()
        && let Some(password) = password
    {
        config.password(password);
    }
    let mode = match (params.sslmode, &env.sslmode) {
        (Some(mode), _) => SslMode::parse(&mode, "the URL")?,
        (None, Some(mode)) => SslMode::parse(mode, "PGSSLMODE")?,
        (None, None) => SslMode::Prefer,
    };
    // PostgreSQL never speaks TLS on a Unix socket, and libpq does not ask it to.
    let only_sockets = !config.get_hosts().is_empty()
        && config.get_hostaddrs().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
    config.ssl_mode(match mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        _ if only_sockets => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("orchestra");
    }
    let root_cert = params.sslrootcert.or_else(|| env.sslrootcert.clone());
    Ok((config, Tls { mode, root_cert }, pool_size))
}

/// A `pool_size` of the URL: a number of connections from 1 to [`MAX_POOL_SIZE`].
fn pool_size(value: &str) -> Result<usize, ConfigError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
        .ok_or_else(|| ConfigError::Value {
            key: "pool_size",
            value: value.to_owned(),
            origin: "the URL",
            expected: "give a number of connections from 1 to 64",
        })
}

/// The parameters of a URL that are read here, not by rust-postgres (percent-decoded; the last
/// one wins, as in libpq).
#[derive(Debug, Default)]
struct Params {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    port: Option<String>,
    pool_size: Option<String>,
}

/// `url` without its `sslmode`, `sslrootcert`, `port` and `pool_size` parameters, and their
/// values.
fn take_params(url: &str) -> (String, Params) {
    let mut params = Params::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), params);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let slot = match p.split_once('=') {
                Some(("sslmode", v)) => (&mut params.sslmode, v),
                Some(("sslrootcert", v)) => (&mut params.sslrootcert, v),
                Some(("port", v)) => (&mut params.port, v),
                Some(("pool_size", v)) => (&mut params.pool_size, v),
                _ => return true,
            };
            *slot.0 = Some(percent_decode(slot.1));
            false
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, params)
}

/// `url` with `ports` (the i-th, else the first) given to each of its hosts that has none.
fn with_ports(url: &str, ports: &[u16]) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let hosts_at = before_query.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, after) = before_query.split_at(hosts_at);
    let (hosts, path) = after.split_at(after.find('/').unwrap_or(after.len()));
    if hosts.is_empty() {
        return url.to_owned();
    }
    let hosts: Vec<String> = hosts
        .split(',')
        .enumerate()
        .map(|(i, host)| {
            let has_port = match host.strip_prefix('[') {
                Some(v6) => v6.split_once(']').is_some_and(|(_, r)| r.starts_with(':')),
                None => host.contains(':'),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) if !has_port => format!("{host}:{port}"),
                _ => host.to_owned(),
            }
        })
        .collect();
    format!("{scheme}://{userinfo}{}{path}{query}", hosts.join(","))
}

/// `%XX` escapes decoded (a malformed one is kept as it is).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of the local server's Unix socket for `port`, where libpq looks by default.
fn default_socket_dir(port: u16) -> Option<&'static str> {
    ["/run/postgresql", "/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|dir| {
            std::path::Path::new(dir)
                .join(format!(".s.PGSQL.{port}"))
                .exists()
        })
}

#[cfg(test)]
mod tests;
