//! When retries run out, the error names the last attempt's cause — the status, the URL and
//! the start of the body, or "connection refused" with the URL — and never the key.

use orchestra_providers::{Message, ProviderError};

use crate::server::{Reply, Server};
use crate::{KEY, everything_about, provider, request};

fn openai(base: &str, extra: &str) -> String {
    format!("kind: openai\napi_key_env: TEST_KEY\napi_base: {base}\n{extra}")
}

#[tokio::test]
async fn exhausted_retries_name_the_status_url_and_body() {
    let page = "<html><body>502 Bad Gateway: upstream llama-server is not answering</body></html>";
    let reply = || Reply::Raw {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        body: page.into(),
    };
    let server = Server::start(vec![reply(), reply(), reply()]).await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/v1", server.url());
    let p = provider("local", &openai(&base, "max_retries: 2\n"), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "local answered HTTP 502 from {base}/chat/completions: {page} (gave up after 2 retries)"
        )
    );
    assert_eq!((e.status(), e.retries()), (Some(502), 2));
    assert_eq!(server.requests().len(), 3);
    assert!(!everything_about(&e).contains(KEY));
}

#[tokio::test]
async fn a_closed_port_says_connection_refused_and_where() {
    // Nothing listens on the port once the listener is dropped.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{addr}/v1");
    let p = provider("local", &openai(&base, "max_retries: 1\n"), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "connection to local at {base}/chat/completions failed: connection refused (gave up after 1 retry)"
        )
    );
    assert!(matches!(e.last_attempt(), ProviderError::Connection { .. }));
    assert!(std::error::Error::source(e.last_attempt()).is_some());
    assert!(!everything_about(&e).contains(KEY));
}

#[tokio::test]
async fn credentials_in_the_url_are_not_shown() {
    let server = Server::start(vec![Reply::Json(
        401,
        serde_json::json!({"error": {"type": "authentication_error", "message": "bad key"}}),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://user:{KEY}@{}/v1", server.addr);
    let p = provider("local", &openai(&base, ""), dir.path());
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "local answered HTTP 401 from {}/v1/chat/completions: authentication_error: bad key",
            server.url()
        )
    );
    assert!(!everything_about(&e).contains(KEY));
}
