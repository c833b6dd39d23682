//! The command provider with real subprocesses.

use std::time::{Duration, Instant};

use orchestra_providers::{Message, ProviderError, StopReason};

use crate::{Collected, provider, request};

fn yaml(argv: &[&str], extra: &str) -> String {
    let items: Vec<String> = argv
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    format!("kind: command\ncommand: [{}]\n{extra}", items.join(", "))
}

#[tokio::test]
async fn the_prompt_goes_in_as_an_argument() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "codex",
        &yaml(
            &[
                "sh",
                "-c",
                "printf 'model=%s\\n%s\\n' \"$1\" \"$2\"",
                "sh",
                "{{model}}",
                "{{prompt}}",
            ],
            "",
        ),
        dir.path(),
    );
    let seen = Collected::default();
    let out = p
        .chat(
            &request("a", vec![Message::user("Review; the diff & $(rm -rf /)")]),
            Some(&seen.sink()),
        )
        .await
        .unwrap();
    assert_eq!(
        out.text(),
        "model=test-model\nYou are a careful reviewer.\n\nReview; the diff & $(rm -rf /)"
    );
    assert_eq!(seen.text().trim_end(), out.text());
    assert_eq!(out.stop, StopReason::EndTurn);
    assert!(out.usage.input_tokens > 0 && out.usage.output_tokens > 0);
    assert_eq!(out.model, "test-model");
}

#[tokio::test]
async fn the_prompt_goes_in_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "cli",
        &yaml(&["sh", "-c", "tr a-z A-Z"], "stdin: true\n"),
        dir.path(),
    );
    let big = "x".repeat(300_000);
    let out = p
        .chat(&request("a", vec![Message::user(big.as_str())]), None)
        .await
        .unwrap();
    let text = out.text();
    assert!(
        text.starts_with("YOU ARE A CAREFUL REVIEWER.\n\nXXX"),
        "{}",
        &text[..40]
    );
    assert_eq!(
        text.len(),
        "You are a careful reviewer.\n\n".len() + big.len()
    );
}

#[tokio::test]
async fn a_failing_command_reports_its_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "cli",
        &yaml(
            &[
                "sh",
                "-c",
                "echo working; echo 'fatal: no credentials' >&2; exit 3",
                "{{prompt}}",
            ],
            "",
        ),
        dir.path(),
    );
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`sh` (provider `cli`) exited with code 3; stderr: fatal: no credentials"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_slow_command_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "cli",
        &yaml(&["sleep", "120"], "stdin: true\ntimeout: 200ms\n"),
        dir.path(),
    );
    let start = Instant::now();
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    // Not waited for: the command would have run for two minutes.
    assert!(start.elapsed() < Duration::from_secs(120));
    assert!(matches!(e, ProviderError::CommandTimeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "`sleep` (provider `cli`) timed out after 200ms"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        "cli",
        &yaml(&["orchestra-no-such-program-xyz", "{{prompt}}"], ""),
        dir.path(),
    );
    let e = p
        .chat(&request("a", vec![Message::user("go")]), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot run `orchestra-no-such-program-xyz` for provider `cli`"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[tokio::test]
async fn the_agent_runs_in_the_directory_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("worktree");
    std::fs::create_dir_all(&work).unwrap();
    let spec = crate::spec(&yaml(&["sh", "-c", "cat >/dev/null; pwd"], "stdin: true\n"));
    let opts = orchestra_providers::BuildOptions {
        workdir: Some(work.clone()),
        ..crate::fast()
    };
    let p = orchestra_providers::build_with("cli", &spec, dir.path(), &crate::env, &opts).unwrap();
    let out = p
        .chat(&request("a", vec![Message::user("hi")]), None)
        .await
        .unwrap();
    assert_eq!(
        out.text().trim(),
        work.canonicalize().unwrap().display().to_string()
    );
}
