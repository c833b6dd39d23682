//! The page app: one HTML page, its scripts (the views, the actions) and its style sheet,
//! embedded in the binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Ui;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const ACTIONS: &str = include_str!("../assets/actions.js");
const INSPECT: &str = include_str!("../assets/inspect.js");
const STYLE: &str = include_str!("../assets/app.css");

/// Nothing is loaded from elsewhere: scripts, styles, images and connections are this
/// server's own.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/actions.js",
            get(|| async { asset("text/javascript; charset=utf-8", ACTIONS) }),
        )
        .route(
            "/inspect.js",
            get(|| async { asset("text/javascript; charset=utf-8", INSPECT) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
