//! The built-in tools every repository has: `read-file`, `list-files`, `search-code`,
//! `get-git-diff`, and `write-file` for writable repositories. Their arguments are Rust structs
//! whose JSON Schema (generated once per process) is what the model sees.

mod diff;
mod list;
mod read;
mod search;
mod walk;
mod write;

use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::confine::{Confined, RepoRoot};
use crate::error::ToolFailure;
use crate::func::schema_of;
use crate::registry::{BoxFuture, CallCtx, Tool, blocking, parse_args};

/// Which built-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BuiltinKind {
    ReadFile,
    ListFiles,
    SearchCode,
    GetGitDiff,
    WriteFile,
}

impl BuiltinKind {
    /// Every built-in, in the order they are registered.
    pub(crate) const ALL: [BuiltinKind; 5] = [
        BuiltinKind::ReadFile,
        BuiltinKind::ListFiles,
        BuiltinKind::SearchCode,
        BuiltinKind::GetGitDiff,
        BuiltinKind::WriteFile,
    ];

    /// The tool name after `repo:`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BuiltinKind::ReadFile => "read-file",
            BuiltinKind::ListFiles => "list-files",
            BuiltinKind::SearchCode => "search-code",
            BuiltinKind::GetGitDiff => "get-git-diff",
            BuiltinKind::WriteFile => "write-file",
        }
    }

    /// Whether the tool changes the repository (registered for writable repositories only).
    pub(crate) fn writes(self) -> bool {
        self == BuiltinKind::WriteFile
    }
}

/// Arguments of `read-file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadFileArgs {
    /// Path of the file, relative to the repository root (e.g. `src/main.rs`).
    pub(crate) path: String,
    /// First line to return, 1-based (default 1).
    #[serde(default)]
    pub(crate) start_line: Option<u64>,
    /// Last line to return, inclusive (default: the end of the file).
    #[serde(default)]
    pub(crate) end_line: Option<u64>,
}

/// Arguments of `list-files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListFilesArgs {
    /// Directory to list, relative to the repository root (default: the root).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// List every file below the directory instead of its direct entries (default false).
    #[serde(default)]
    pub(crate) recursive: Option<bool>,
    /// Most entries to return (default 1000, at most 10000).
    #[serde(default)]
    pub(crate) max: Option<u32>,
}

/// Arguments of `search-code`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchCodeArgs {
    /// Text to find. Matched literally unless `regex` is true.
    pub(crate) pattern: String,
    /// Treat `pattern` as a regular expression (Rust `regex` syntax; default false).
    #[serde(default)]
    pub(crate) regex: Option<bool>,
    /// Match without regard to letter case (default false).
    #[serde(default)]
    pub(crate) ignore_case: Option<bool>,
    /// File or directory to search, relative to the repository root (default: the root).
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// Most matching lines to return (default 100, at most 1000).
    #[serde(default)]
    pub(crate) max_results: Option<u32>,
}

/// Arguments of `get-git-diff`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GitDiffArgs {
    /// Revision to diff from (a branch, tag, commit or `HEAD~2`). Default: `HEAD`.
    #[serde(default)]
    pub(crate) base: Option<String>,
    /// Revision to diff to. Default: the working tree, including uncommitted and new files.
    /// Requires `base`.
    #[serde(default)]
    pub(crate) head: Option<String>,
    /// Only show changes to this file or directory (relative to the repository root).
    #[serde(default)]
    pub(crate) path: Option<String>,
}

/// Arguments of `write-file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteFileArgs {
    /// Path of the file, relative to the repository root. Missing parent directories are created.
    pub(crate) path: String,
    /// The complete new content of the file.
    pub(crate) content: String,
}

fn cached<T: JsonSchema>(cell: &'static OnceLock<Value>) -> Value {
    cell.get_or_init(schema_of::<T>).clone()
}

/// A built-in tool bound to a repository.
#[derive(Debug)]
pub(crate) struct Builtin {
    repo: Arc<RepoRoot>,
    kind: BuiltinKind,
}

impl Builtin {
    pub(crate) fn new(repo: Arc<RepoRoot>, kind: BuiltinKind) -> Self {
        Builtin { repo, kind }
    }

    fn run(&self, args: Value, ctx: &CallCtx) -> Result<String, ToolFailure> {
        let repo = Confined::open(&self.repo)?;
        match self.kind {
            BuiltinKind::ReadFile => read::run(&repo, parse_args(args)?, ctx),
            BuiltinKind::ListFiles => list::run(&repo, parse_args(args)?, ctx),
            BuiltinKind::SearchCode => search::run(&repo, parse_args(args)?, ctx),
            BuiltinKind::GetGitDiff => diff::run(&repo, parse_args(args)?, ctx),
            BuiltinKind::WriteFile => write::run(&repo, parse_args(args)?, ctx),
        }
    }
}

impl Tool for Builtin {
    fn description(&self) -> String {
        let r = &self.repo.name;
        match self.kind {
            BuiltinKind::ReadFile => format!(
                "Read a text file of repository `{r}`. Returns its text; for long files give \
                 `start_line`/`end_line` (1-based, inclusive). Paths are relative to the \
                 repository root."
            ),
            BuiltinKind::ListFiles => format!(
                "List a directory of repository `{r}` (directories end with `/`), or with \
                 `recursive: true` every file below it. Paths are relative to the repository \
                 root and sorted; `.git` and files ignored by git are left out."
            ),
            BuiltinKind::SearchCode => format!(
                "Search the text files of repository `{r}` for a string (or a regular \
                 expression with `regex: true`). Returns one `path:line: text` line per match."
            ),
            BuiltinKind::GetGitDiff => format!(
                "Show a unified diff of repository `{r}`. Without arguments: uncommitted changes \
                 (including new files) against HEAD. With `base`: from `base` to the working \
                 tree. With `base` and `head`: between the two revisions."
            ),
            BuiltinKind::WriteFile => format!(
                "Write a text file of repository `{r}`: creates it (and missing parent \
                 directories) or replaces its content. Paths are relative to the repository root."
            ),
        }
    }

    fn parameters(&self) -> Value {
        static READ: OnceLock<Value> = OnceLock::new();
        static LIST: OnceLock<Value> = OnceLock::new();
        static SEARCH: OnceLock<Value> = OnceLock::new();
        static DIFF: OnceLock<Value> = OnceLock::new();
        static WRITE: OnceLock<Value> = OnceLock::new();
        match self.kind {
            BuiltinKind::ReadFile => cached::<ReadFileArgs>(&READ),
            BuiltinKind::ListFiles => cached::<ListFilesArgs>(&LIST),
            BuiltinKind::SearchCode => cached::<SearchCodeArgs>(&SEARCH),
            BuiltinKind::GetGitDiff => cached::<GitDiffArgs>(&DIFF),
            BuiltinKind::WriteFile => cached::<WriteFileArgs>(&WRITE),
        }
    }

    fn call(self: Arc<Self>, args: Value, ctx: CallCtx) -> BoxFuture<Result<String, ToolFailure>> {
        Box::pin(blocking(move || self.run(args, &ctx)))
    }
}

/// Whether the start of a file looks binary (a NUL byte in the first 8 KiB).
pub(crate) fn looks_binary(head: &[u8]) -> bool {
    head.iter().take(8192).any(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/pipeline-yaml.md documents every argument of every built-in tool, with its type
    /// and whether it is required, and gives an example call.
    #[test]
    fn every_argument_is_documented() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipeline-yaml.md"),
        )
        .unwrap();
        for kind in BuiltinKind::ALL {
            let schema = match kind {
                BuiltinKind::ReadFile => schema_of::<ReadFileArgs>(),
                BuiltinKind::ListFiles => schema_of::<ListFilesArgs>(),
                BuiltinKind::SearchCode => schema_of::<SearchCodeArgs>(),
                BuiltinKind::GetGitDiff => schema_of::<GitDiffArgs>(),
                BuiltinKind::WriteFile => schema_of::<WriteFileArgs>(),
            };
            let head = format!("`R:{}` —", kind.name());
            let start = docs
                .lines()
                .position(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("no section starts with {head}"));
            let section: Vec<&str> = docs
                .lines()
                .skip(start + 1)
                .take_while(|l| !l.starts_with("`R:") && !l.starts_with('#'))
                .collect();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let props = schema["properties"].as_object().unwrap();
            for (name, prop) in props {
                let ty = match &prop["type"] {
                    Value::String(t) => t.as_str(),
                    // `Option<T>`: ["T", "null"]
                    Value::Array(ts) => ts
                        .iter()
                        .find_map(|t| t.as_str().filter(|t| *t != "null"))
                        .unwrap(),
                    other => panic!("{head} `{name}`: type {other}"),
                };
                let row = section
                    .iter()
                    .find(|l| l.starts_with(&format!("| `{name}` |")))
                    .unwrap_or_else(|| panic!("{head}: argument `{name}` is not documented"));
                assert!(
                    row.contains(&format!("| {ty} |")),
                    "{head} `{name}` is a {ty}: {row}"
                );
                assert_eq!(
                    row.contains("| required |"),
                    required.contains(&name.as_str()),
                    "{head} `{name}`: {row}"
                );
            }
            let rows = section.iter().filter(|l| l.starts_with("| `")).count();
            assert_eq!(
                rows,
                props.len(),
                "{head}: documented arguments that do not exist"
            );
            let example = section
                .iter()
                .find_map(|l| l.strip_prefix("Example: `"))
                .and_then(|l| l.strip_suffix('`'))
                .unwrap_or_else(|| panic!("{head} has no example"));
            let example: Value = serde_json::from_str(example).unwrap();
            for key in example.as_object().unwrap().keys() {
                assert!(props.contains_key(key), "{head}: example uses `{key}`");
            }
        }
    }

    #[test]
    fn schemas_describe_the_arguments() {
        let read = schema_of::<ReadFileArgs>();
        assert_eq!(read["type"], "object");
        assert_eq!(read["required"], serde_json::json!(["path"]));
        assert_eq!(read["additionalProperties"], false);
        let diff = schema_of::<GitDiffArgs>();
        assert!(
            diff.get("required")
                .is_none_or(|r| r == &serde_json::json!([]))
        );
    }

    #[test]
    fn binary_sniffing() {
        assert!(looks_binary(b"abc\0def"));
        assert!(!looks_binary("plain text ü".as_bytes()));
    }
}
