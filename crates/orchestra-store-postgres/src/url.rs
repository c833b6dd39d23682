//! PostgreSQL URLs: what they show of themselves (never the password) and the client
//! configuration they give, with the password from `PGPASSWORD` when the URL has none.

use std::str::FromStr;
use std::time::Duration;

use postgres::Config;
use postgres::config::Host;

/// What stands for a password in URLs that are shown.
const MASK: &str = "***";

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
        None => format!("localhost:{port}"),
    }
}

/// The client configuration of `url`. The password is the URL's, else `password` (the caller
/// passes `PGPASSWORD`); a connect timeout is set when the URL gives none, so an unreachable
/// server is reported instead of waited for.
pub(crate) fn config(
    url: &str,
    password: Option<&str>,
    connect_timeout: Duration,
) -> Result<Config, postgres::Error> {
    let mut config = Config::from_str(url)?;
    if config.get_password().is_none()
        && let Some(password) = password
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("orchestra");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_they_are() {
        let cases = [
            (
                "postgres://me:s3cret@db.example:5433/o",
                "postgres://me:***@db.example:5433/o",
            ),
            ("postgres://me@db/o", "postgres://me@db/o"),
            ("postgresql://db/o", "postgresql://db/o"),
            (
                "postgres://me:p@ss/w?rd@db/o?sslmode=disable",
                "postgres://me:***@db/o?sslmode=disable",
            ),
            (
                "postgres://db/o?user=me&password=s3cret&application_name=x",
                "postgres://db/o?user=me&password=***&application_name=x",
            ),
            (
                "postgres://me:s3cret@db/o?PASSWORD=again",
                "postgres://me:***@db/o?PASSWORD=***",
            ),
        ];
        for (url, shown) in cases {
            let masked = mask_password(url);
            assert_eq!(masked, shown);
            assert!(!masked.contains("s3cret") && !masked.contains("ss/w?rd"));
        }
    }

    #[test]
    fn passwords_can_be_removed() {
        assert_eq!(
            without_password("postgres://me:s3cret@db:5433/o?password=x&sslmode=disable"),
            "postgres://me@db:5433/o?sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://db/o?password=x"),
            "postgres://db/o"
        );
        assert_eq!(without_password("postgres://me@db/o"), "postgres://me@db/o");
    }

    #[test]
    fn postgres_urls_are_recognised_by_scheme() {
        assert!(is_postgres_url("postgres://db/o"));
        assert!(is_postgres_url("PostgreSQL://db/o"));
        assert!(!is_postgres_url("sqlite://o.db"));
        assert!(!is_postgres_url("postgres.db"));
    }

    #[test]
    fn the_password_comes_from_the_url_before_the_environment() {
        let t = Duration::from_secs(3);
        let c = config("postgres://me:url-pw@h:6000/o", Some("env-pw"), t).unwrap();
        assert_eq!(c.get_password(), Some(&b"url-pw"[..]));
        let c = config("postgres://me@h:6000/o", Some("env-pw"), t).unwrap();
        assert_eq!(c.get_password(), Some(&b"env-pw"[..]));
        assert_eq!(c.get_connect_timeout(), Some(&t));
        assert_eq!(server(&c), "h:6000");
        let c = config("postgres://me@h/o?connect_timeout=7", None, t).unwrap();
        assert_eq!(c.get_password(), None);
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(server(&c), "h:5432");
    }
}
