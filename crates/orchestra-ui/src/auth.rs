//! Who may use an HTTP server of orchestra (the web UI, `orchestra mcp --http`): on a loopback
//! address a loopback `Host` (no DNS rebinding), on any other address the token it printed
//! (or the one the user set, on every address: [`UserToken`]), and an `Origin` naming the
//! server itself ([`Origins`] says when one is needed).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The cookie that carries the token once `?token=` was given.
const COOKIE: &str = "orchestra_token";

/// When a request must carry an `Origin` naming this server (`http://` + its `Host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origins {
    /// Every request other than GET and HEAD must carry one: the server's own page app sends
    /// it, a page elsewhere cannot (the web UI).
    ChangesFromOwnPage,
    /// A request that carries one must name this server; programs send none, a page of another
    /// site is refused (the MCP spec's rule for HTTP servers).
    WhenPresent,
}

/// The fewest characters a token the user sets may have.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token the user chose (`ORCHESTRA_UI_TOKEN`, `ORCHESTRA_MCP_TOKEN`), so that a client's
/// configuration outlives a restart: checked to be long enough and to fit in a header, a
/// cookie and a URL unchanged. Its `Debug` does not show it.
#[derive(Clone)]
pub struct UserToken(Arc<str>);

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken(..)")
    }
}

/// Why a token the user set is refused (`var` names where it came from).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Fewer than [`MIN_TOKEN_LEN`] characters.
    #[error("{var} is too short: a token needs at least {MIN_TOKEN_LEN} characters, it has {len}")]
    TooShort {
        /// Where the token came from.
        var: &'static str,
        /// How many characters it has.
        len: usize,
    },
    /// A character other than ASCII letters, digits and `-._~+/=`.
    #[error(
        "{var} holds {found:?} at character {at}: a token may hold only ASCII letters, digits and `-._~+/=`"
    )]
    BadChar {
        /// Where the token came from.
        var: &'static str,
        /// The first character refused.
        found: char,
        /// Its position, from 1.
        at: usize,
    },
}

impl UserToken {
    /// `value` as a token, read from `var` (named in the error).
    ///
    /// # Errors
    /// When it is shorter than [`MIN_TOKEN_LEN`] or holds a character that does not fit in an
    /// `Authorization: Bearer` header (RFC 6750's token68: ASCII letters, digits, `-._~+/=`).
    pub fn parse(var: &'static str, value: &str) -> Result<UserToken, TokenError> {
        if let Some((i, found)) = value
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(*c)))
        {
            return Err(TokenError::BadChar {
                var,
                found,
                at: i + 1,
            });
        }
        if value.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                var,
                len: value.len(),
            });
        }
        Ok(UserToken(Arc::from(value)))
    }
}

/// The checks in front of every route of a server listening on one address.
#[derive(Debug, Clone)]
pub struct Access {
    token: Option<Arc<str>>,
    /// Whether the token is the user's (never printed) rather than one made at start.
    users: bool,
    loopback: bool,
    origins: Origins,
}

impl Access {
    /// The checks for a server on `addr`: on a non-loopback address a new random token (128
    /// bits) is required (see [`Access::token`]).
    pub fn new(addr: SocketAddr, origins: Origins) -> Access {
        let loopback = addr.ip().is_loopback();
        let token = (!loopback).then(|| Arc::from(new_token()));
        Access {
            token,
            users: false,
            loopback,
            origins,
        }
    }

    /// The checks with the user's `token` in place of a random one: required on every
    /// address, loopback ones included.
    pub fn with_user_token(mut self, token: UserToken) -> Access {
        self.token = Some(token.0);
        self.users = true;
        self
    }

    /// The token requests must carry, when the address is not a loopback one or the user set
    /// one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The token to print: the one made at start, never the user's.
    pub fn printable_token(&self) -> Option<&str> {
        self.token.as_deref().filter(|_| !self.users)
    }

    /// Whether the user's token is in use.
    pub fn user_token(&self) -> bool {
        self.users
    }
}

/// The middleware (`axum::middleware::from_fn_with_state(access, check)`): 403 for a host or
/// origin it refuses, 401 without the token where one is required, else the route.
pub async fn check(State(access): State<Access>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if access.loopback && !is_loopback_host(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers requests for 127.0.0.1 or localhost only",
        );
    }
    let origin_needed = match access.origins {
        Origins::ChangesFromOwnPage => !matches!(*req.method(), Method::GET | Method::HEAD),
        Origins::WhenPresent => headers.contains_key(header::ORIGIN),
    };
    if origin_needed && !same_origin(headers, host) {
        return refuse(
            StatusCode::FORBIDDEN,
            match access.origins {
                Origins::ChangesFromOwnPage => {
                    "a request that changes something must come from this server's own page (Origin)"
                }
                Origins::WhenPresent => "requests from another site's page are refused (Origin)",
            },
        );
    }
    let Some(token) = access.token.as_deref() else {
        return next.run(req).await;
    };
    if bearer(headers).is_some_and(|t| equal(t, token))
        || cookie(headers).is_some_and(|t| equal(t, token))
    {
        return next.run(req).await;
    }
    if query_token(req.uri().query()).is_some_and(|t| equal(&t, token)) {
        let mut resp = next.run(req).await;
        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = cookie.parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return resp;
    }
    let mut resp = refuse(
        StatusCode::UNAUTHORIZED,
        "this server needs its token (the one it printed, or the one set for it): open the URL with `?token=TOKEN`, or send `Authorization: Bearer TOKEN`",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"orchestra\""),
    );
    resp
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `Origin` is present and names `host` (`http://HOST`).
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    !host.is_empty() && origin.strip_prefix("http://") == Some(host)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_owned)
}

/// Equal, in a time that does not depend on where they differ.
fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// 32 random hex digits (128 bits).
fn new_token() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1:7878",
            "localhost",
            "LOCALHOST:80",
            "[::1]:7878",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "evil.example:7878",
            "10.0.0.1",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "ab"));
        assert_eq!(query_token(Some("a=1&token=xyz")), Some("xyz".to_owned()));
        assert_eq!(query_token(Some("tokens=xyz")), None);
    }

    #[test]
    fn user_tokens_are_checked() {
        let ok = UserToken::parse("T", "abcdefghijklmnop").unwrap();
        assert_eq!(format!("{ok:?}"), "UserToken(..)");
        assert!(UserToken::parse("T", "A-b_c.d~e+f/g=0123").is_ok());
        assert_eq!(
            UserToken::parse("T", "short").unwrap_err(),
            TokenError::TooShort { var: "T", len: 5 }
        );
        let e = UserToken::parse("T", "abcdefgh ijklmnopq").unwrap_err();
        assert_eq!(
            e.to_string(),
            "T holds ' ' at character 9: a token may hold only ASCII letters, digits and `-._~+/=`"
        );
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let access = Access::new(addr, Origins::WhenPresent);
        assert_eq!(access.token(), None);
        let access = access.with_user_token(ok);
        assert_eq!(access.token(), Some("abcdefghijklmnop"));
        assert_eq!(access.printable_token(), None);
        assert!(access.user_token());
    }
}
