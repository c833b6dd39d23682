//! Who may use an HTTP server of orchestra (the web UI, `orchestra mcp --http`): on a loopback
//! address a loopback `Host` (no DNS rebinding), on any other address the token it printed,
//! and an `Origin` naming the server itself ([`Origins`] says when one is needed).

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

/// The checks in front of every route of a server listening on one address.
#[derive(Debug, Clone)]
pub struct Access {
    token: Option<Arc<str>>,
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
            loopback,
            origins,
        }
    }

    /// The token requests must carry, when the address is not a loopback one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
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
        "this server needs the token it printed: open the URL it printed, or send `Authorization: Bearer TOKEN`",
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
}
