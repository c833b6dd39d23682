//! Building providers from settings: keys from the environment, limits checked.

use orchestra_providers::{ProviderError, build};

use crate::{KEY, env, spec};

fn fails(yaml: &str) -> ProviderError {
    let dir = tempfile::tempdir().unwrap();
    build("p", &spec(yaml), dir.path(), &env).unwrap_err()
}

#[test]
fn a_missing_key_names_the_variable() {
    let e = fails("kind: anthropic\napi_key_env: NOT_SET_ANYWHERE\n");
    assert_eq!(
        e.to_string(),
        "environment variable `NOT_SET_ANYWHERE` (the API key of provider `p`) is not set"
    );
    let e = fails("kind: openai\napi_key_env: NOT_SET_ANYWHERE\napi_base: http://127.0.0.1:9/v1\n");
    assert!(matches!(e, ProviderError::MissingKey { .. }));
}

#[test]
fn keys_are_only_read_from_the_named_variable() {
    let e = fails("kind: anthropic\n");
    assert!(e.to_string().contains("needs `api_key_env`"), "{e}");
    let e = fails("kind: openai\n");
    assert!(e.to_string().contains("needs `api_key_env`"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = build(
        "p",
        &spec("kind: anthropic\napi_key_env: TEST_KEY\n"),
        dir.path(),
        &env,
    )
    .unwrap();
    assert!(!format!("{p:?}").contains(KEY));
}

#[test]
fn settings_outside_the_apis_limits_are_refused() {
    let e = fails("kind: anthropic\napi_key_env: TEST_KEY\ntemperature: 1.5\n");
    assert_eq!(
        e.to_string(),
        "provider `p` is misconfigured: `temperature` must be between 0 and 1 for this provider, not 1.5"
    );
    let e = fails("kind: openai\napi_base: http://x/v1\nmax_tokens: 0\n");
    assert!(
        e.to_string().ends_with("`max_tokens` must be at least 1"),
        "{e}"
    );
    let e = fails("kind: openai\napi_base: ftp://x/v1\n");
    assert!(e.to_string().contains("http:// or https://"), "{e}");
}

#[test]
fn command_and_scripted_need_their_settings() {
    let e = fails("kind: command\n");
    assert!(e.to_string().contains("needs `command:`"), "{e}");
    let e = fails("kind: command\ncommand: [codex, exec]\n");
    assert!(e.to_string().contains("no `{{prompt}}` argument"), "{e}");
    let e = fails("kind: scripted\n");
    assert!(e.to_string().contains("needs `responses:`"), "{e}");
}
