//! Scripted answers may be minijinja templates over the conversation so far, so offline runs can
//! talk about the real input: `{{ diff_files }}` are the files of the git diffs that tools
//! returned, `{{ tool_results }}` the tool results' texts, plus `agent`, `run` and `turn`.

use minijinja::{Environment, UndefinedBehavior, context};

use crate::types::{Block, ChatRequest};

/// Whether `text` needs rendering.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders a scripted answer against the request.
pub(crate) fn render(text: &str, req: &ChatRequest, turn: usize) -> Result<String, String> {
    let tool_results: Vec<String> = req
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|b| match b {
            Block::ToolResult { content, .. } => Some(content.clone()),
            _ => None,
        })
        .collect();
    let diff_files = diff_files(&tool_results);
    let mut env: Environment<'_> = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.render_str(
        text,
        context! {
            agent => req.agent.clone(),
            run => req.run_index,
            turn,
            tool_results,
            diff_files,
        },
    )
    .map_err(|e| {
        format!(
            "the scripted answer of `{}` is not a valid template: {e}",
            req.agent
        )
    })
}

/// Files named by `diff --git a/X b/X` headers, in order of first appearance.
pub(crate) fn diff_files(texts: &[String]) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for text in texts {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("diff --git ")
                && let Some((_, b)) = rest.split_once(" b/")
            {
                let name = b.trim().to_owned();
                if !name.is_empty() && !files.contains(&name) {
                    files.push(name);
                }
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, Role};

    #[test]
    fn answers_can_name_the_files_of_a_diff() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-x\n+y\ndiff --git a/README.md b/README.md\n";
        let req = ChatRequest {
            agent: "rev".into(),
            run_index: 1,
            model: "".into(),
            system: "".into(),
            messages: vec![
                Message::user("go"),
                Message {
                    role: Role::User,
                    content: vec![Block::ToolResult {
                        tool_use_id: "c".into(),
                        content: diff.into(),
                        is_error: false,
                    }],
                },
            ],
            tools: vec![],
            max_tokens: None,
            temperature: None,
            workdir: None,
        };
        let out = render(
            r#"{"file": {{ diff_files[0] | default("none") | tojson }}, "n": {{ diff_files | length }}, "who": "{{ agent }}/{{ run }}"}"#,
            &req,
            2,
        )
        .unwrap();
        assert_eq!(out, r#"{"file": "src/a.rs", "n": 2, "who": "rev/1"}"#);
        let err = render("{{ nope }}", &req, 0).unwrap_err();
        assert!(err.contains("`rev`"), "{err}");
    }
}
