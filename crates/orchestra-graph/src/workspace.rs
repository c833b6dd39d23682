//! The workspace: repositories (paths, write access) and the tool index — built-in tools of every
//! repository, shell tools, registered tools — against which agents' tool references resolve.

use std::path::Path;

use indexmap::IndexMap;
use orchestra_spec::{
    BUILTIN_TOOLS, Diagnostic, PipelineSpec, ShellToolIssue, ShellToolSpec, SourceFile, Span,
    Spanned, closest,
};

use crate::compiled::{ResolvedRepo, ToolKind, ToolRef};

/// Every tool an agent may name, by full name.
#[derive(Debug, Default)]
pub(crate) struct ToolIndex {
    tools: IndexMap<String, ToolRef>,
    /// MCP servers: `SERVER:TOOL` and `SERVER:*` resolve against their names (their tools are
    /// known only once a server runs: `compile --probe`).
    mcp: Vec<String>,
}

/// Whether `name` is usable as a repo, tool or similar identifier.
pub(crate) fn is_ident(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Resolves the repositories of the workspace and checks their paths.
pub(crate) fn repos(
    spec: &PipelineSpec,
    src: &SourceFile,
    project_root: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Vec<ResolvedRepo> {
    let mut out = Vec::new();
    for (name, key_span, repo) in spec.workspace.repos.iter() {
        if !is_ident(name) {
            diags.push(
                Diagnostic::error(format!("invalid repository name `{name}`"))
                    .at(src, key_span)
                    .with_label("use letters, digits, `-` and `_` (tools are named `repo:tool`)"),
            );
        }
        let url = remote_url(name, repo, src, project_root, diags);
        let path = match (&repo.path, &url) {
            (Some(p), _) => project_root.join(&p.value),
            (None, Some(_)) => project_root.join(CLONES_DIR).join(name),
            (None, None) => {
                diags.push(
                    Diagnostic::error(format!("repository `{name}` has neither `path:` nor `url:`"))
                        .at(src, key_span)
                        .with_label("where is it?")
                        .with_help("give `path:` (a directory of the project) or `url:` (a git remote to clone)"),
                );
                project_root.to_path_buf()
            }
        };
        // A remote's clone is made on first use; a `path:` of one is checked then.
        if let (Some(p), None) = (&repo.path, &url) {
            check_local_path(name, repo.write, p, &path, src, project_root, diags);
        }
        out.push(ResolvedRepo {
            name: name.to_owned(),
            path,
            write: repo.write,
            url,
            on_conflict: repo.on_conflict,
            description: repo.description.clone(),
        });
    }
    out
}

/// Where the clone of a repository with `url:` and no `path:` goes, under the project root.
pub(crate) const CLONES_DIR: &str = ".orchestra/clones";

/// Checks the directory of a repository without `url:`.
fn check_local_path(
    name: &str,
    write: bool,
    given: &Spanned<String>,
    path: &Path,
    src: &SourceFile,
    project_root: &Path,
    diags: &mut Vec<Diagnostic>,
) {
    if !path.is_dir() {
        diags.push(
            Diagnostic::error(format!(
                "the path of repository `{name}` is not a directory: `{}`",
                given.value
            ))
            .at(src, given.span)
            .with_label("no such directory")
            .with_help(format!(
                "repository paths are relative to the project root `{}`",
                project_root.display()
            )),
        );
    } else if write && !in_git_repo(path) {
        diags.push(
            Diagnostic::error(format!("writable repository `{name}` is not a git repository"))
                .at(src, given.span)
                .with_label("no `.git` here or above")
                .with_help("agents' changes are kept on git session branches: run `git init` there, or set `write: false`"),
        );
    }
}

/// The `url:` of a repository, checked: only writable repositories have one, and a remote
/// given as a relative path is made absolute against the project root.
fn remote_url(
    name: &str,
    repo: &orchestra_spec::RepoSpec,
    src: &SourceFile,
    project_root: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let url = repo.url.as_ref()?;
    let value = url.value.trim();
    if value.is_empty() {
        diags.push(
            Diagnostic::error(format!("the `url:` of repository `{name}` is empty"))
                .at(src, url.span)
                .with_label(
                    "a git remote: a path to a bare repository, file://, ssh:// or https://",
                ),
        );
        return None;
    }
    if !repo.write {
        diags.push(
            Diagnostic::error(format!(
                "repository `{name}` has `url:` but not `write: true`"
            ))
            .at(src, url.span)
            .with_label("remotes are cloned for session branches only")
            .with_help("set `write: true`, or give the local clone as `path:` instead"),
        );
        return None;
    }
    Some(absolute_remote(value, project_root))
}

/// A remote as git understands it from any directory: a URL (`scheme://...`) or an scp-like
/// `host:path` is kept; a filesystem path is made absolute against the project root.
pub(crate) fn absolute_remote(url: &str, project_root: &Path) -> String {
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, _)| !host.contains('/') && host.len() > 1);
    if url.contains("://") || scp_like || Path::new(url).is_absolute() {
        return url.to_owned();
    }
    project_root.join(url).display().to_string()
}

fn in_git_repo(path: &Path) -> bool {
    path.ancestors().any(|d| d.join(".git").exists())
}

impl ToolIndex {
    /// Built-ins of every repository, the shell tools and the registered tools.
    pub(crate) fn build(
        spec: &PipelineSpec,
        src: &SourceFile,
        registered: &[String],
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut index = ToolIndex::default();
        for (repo, _, _) in spec.workspace.repos.iter() {
            for (tool, writes) in BUILTIN_TOOLS {
                index.insert(Some(repo), tool, ToolKind::Builtin { writes });
            }
        }
        let repo_names: Vec<&str> = spec.workspace.repos.keys().collect();
        let mut lines: IndexMap<String, u32> = IndexMap::new();
        for tool in &spec.workspace.tools {
            let name = &tool.name;
            if !is_ident(name) {
                diags.push(
                    Diagnostic::error(format!("invalid tool name `{}`", name.value))
                        .at(src, name.span)
                        .with_label("use letters, digits, `-` and `_`"),
                );
                continue;
            }
            if let Some(repo) = &tool.repo
                && !spec.workspace.repos.contains_key(repo)
            {
                diags.push(
                    Diagnostic::error(format!("unknown repository `{}`", repo.value))
                        .at(src, repo.span)
                        .with_label("not a repository of `workspace.repos`")
                        .with_suggestions(repo, repo_names.iter().copied())
                        .with_help(known("repositories", &repo_names)),
                );
                continue;
            }
            let repo = tool.repo.as_ref().map(|r| r.value.as_str());
            let full = full_name(repo, name);
            if let Some(line) = lines.get(&full) {
                diags.push(
                    Diagnostic::error(format!("duplicate tool `{full}`"))
                        .at(src, name.span)
                        .with_label(format!("already defined on line {line}")),
                );
                continue;
            }
            if repo.is_some() && BUILTIN_TOOLS.iter().any(|(b, _)| *b == name.value) {
                diags.push(
                    Diagnostic::error(format!(
                        "shell tool `{full}` has the name of a built-in tool"
                    ))
                    .at(src, name.span)
                    .with_label("every repository already has this tool")
                    .with_help("choose another name"),
                );
                continue;
            }
            if repo.is_none() && registered.contains(&name.value) {
                diags.push(
                    Diagnostic::error(format!(
                        "shell tool `{full}` has the name of a registered tool"
                    ))
                    .at(src, name.span)
                    .with_label(
                        "a tool with this name is registered by the program running the pipeline",
                    ),
                );
                continue;
            }
            check_command(tool, src, diags);
            lines.insert(full, name.span.line);
            index.insert(
                repo,
                name,
                ToolKind::Shell {
                    spec: Box::new(tool.clone()),
                },
            );
        }
        for r in registered {
            let (repo, tool) = match r.split_once(':') {
                Some((repo, tool)) => (Some(repo), tool),
                None => (None, r.as_str()),
            };
            if !index.tools.contains_key(r) {
                index.insert(repo, tool, ToolKind::Registered);
            }
        }
        index
    }

    /// Lets agents name the tools of these MCP servers.
    pub(crate) fn with_mcp_servers(mut self, names: Vec<String>) -> Self {
        self.mcp = names;
        self
    }

    fn insert(&mut self, repo: Option<&str>, tool: &str, kind: ToolKind) {
        let name = full_name(repo, tool);
        self.tools.insert(
            name.clone(),
            ToolRef {
                name,
                repo: repo.map(str::to_owned),
                tool: tool.to_owned(),
                kind,
            },
        );
    }

    /// Resolves an agent's tool reference.
    pub(crate) fn resolve(
        &self,
        r: &Spanned<String>,
        spec: &PipelineSpec,
        src: &SourceFile,
    ) -> Result<ToolRef, Diagnostic> {
        if let Some(t) = self.tools.get(&r.value) {
            if let (Some(repo), ToolKind::Builtin { writes: true }) = (&t.repo, &t.kind)
                && !spec.workspace.repos.get(repo).is_some_and(|x| x.write)
            {
                return Err(Diagnostic::error(format!(
                    "`{}` needs a writable repository",
                    r.value
                ))
                .at(src, r.span)
                .with_label(format!("repository `{repo}` is read-only"))
                .with_help(format!(
                    "set `write: true` on repository `{repo}` to let agents change it"
                )));
            }
            return Ok(t.clone());
        }
        let all: Vec<&str> = self.tools.keys().map(String::as_str).collect();
        let base = |msg: String| Diagnostic::error(msg).at(src, r.span);
        match r.value.split_once(':') {
            Some((server, tool)) if self.mcp.iter().any(|s| s == server) => {
                if !crate::mcp::valid_tool_pattern(tool) {
                    return Err(
                        base(format!("invalid tool `{tool}` of MCP server `{server}`"))
                            .with_label(
                                "expected a tool name (letters, digits, `_`, `-`, `.`) or `*`",
                            )
                            .with_help(format!(
                                "`{server}:*` gives the agent every tool of the server"
                            )),
                    );
                }
                Ok(ToolRef {
                    name: r.value.clone(),
                    repo: None,
                    tool: tool.to_owned(),
                    kind: ToolKind::Mcp {
                        server: server.to_owned(),
                    },
                })
            }
            Some((repo, tool))
                if !self.mcp.is_empty() && !spec.workspace.repos.contains_key(repo) =>
            {
                let repos: Vec<&str> = spec.workspace.repos.keys().collect();
                let scopes: Vec<&str> = repos
                    .iter()
                    .copied()
                    .chain(self.mcp.iter().map(String::as_str))
                    .collect();
                let d = base(format!(
                    "unknown repository or MCP server `{repo}` in tool `{}`",
                    r.value
                ))
                .with_label("not a repository of `workspace.repos` nor a server of `mcp_servers`");
                let mut help = format!(
                    "{}; MCP servers: {}",
                    known("repositories", &repos),
                    self.mcp.join(", ")
                );
                if let Some(best) = closest(repo, scopes.iter().copied()).first() {
                    help = format!("did you mean `{best}:{tool}`? ({help})");
                }
                Err(d.with_help(help))
            }
            Some((repo, tool)) if !spec.workspace.repos.contains_key(repo) => {
                let repos: Vec<&str> = spec.workspace.repos.keys().collect();
                let mut d = base(format!("unknown repository `{repo}` in tool `{}`", r.value))
                    .with_label("not a repository of `workspace.repos`");
                let fixed: Vec<String> = closest(repo, repos.iter().copied())
                    .into_iter()
                    .map(|rp| format!("{rp}:{tool}"))
                    .filter(|f| self.tools.contains_key(f))
                    .collect();
                d = match fixed.as_slice() {
                    [] => d.with_suggestions(repo, repos.iter().copied()),
                    [one, ..] => d.with_help(format!("did you mean `{one}`?")),
                };
                Err(d.with_help(known("repositories", &repos)))
            }
            Some((repo, tool)) => {
                let in_repo: Vec<&ToolRef> = self
                    .tools
                    .values()
                    .filter(|t| t.repo.as_deref() == Some(repo))
                    .collect();
                let short: Vec<&str> = in_repo.iter().map(|t| t.tool.as_str()).collect();
                let full: Vec<&str> = in_repo.iter().map(|t| t.name.as_str()).collect();
                let mut d = base(format!("unknown tool `{tool}` in repository `{repo}`"))
                    .with_label("no built-in or shell tool has this name");
                // Compare tool names without the shared `repo:` prefix, which would make every
                // tool of the repository look alike.
                if let Some(best) = closest(tool, short.iter().copied()).first() {
                    d = d.with_help(format!("did you mean `{repo}:{best}`?"));
                }
                Err(d.with_help(known(&format!("tools of `{repo}`"), &full)))
            }
            None => {
                let mut d = base(format!("unknown tool `{}`", r.value))
                    .with_label("no unscoped shell tool or registered tool has this name");
                let scoped: Vec<&str> = all
                    .iter()
                    .copied()
                    .filter(|f| f.split_once(':').is_some_and(|(_, t)| t == r.value))
                    .collect();
                if scoped.is_empty() {
                    d = d.with_suggestions(&r.value, all.iter().copied());
                } else {
                    d = d.with_help(format!(
                        "tools of a repository are named `repo:tool`: did you mean `{}`?",
                        scoped[0]
                    ));
                }
                Err(d)
            }
        }
    }
}

fn full_name(repo: Option<&str>, tool: &str) -> String {
    match repo {
        Some(r) => format!("{r}:{tool}"),
        None => tool.to_owned(),
    }
}

fn known(what: &str, names: &[&str]) -> String {
    if names.is_empty() && what == "repositories" {
        "there are no repositories: declare them under `workspace.repos`".to_owned()
    } else if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

/// The span of `element` inside the flow or block sequence starting at `seq`: its first
/// occurrence after `seq` (quoted or not); `seq` itself when it cannot be found nearby.
fn element_span(src: &SourceFile, seq: Span, element: &str) -> Span {
    let text = &src.text;
    let Some(rest) = text.get(seq.offset..) else {
        return seq;
    };
    let window = rest.char_indices().nth(4096).map_or(rest.len(), |(i, _)| i);
    let Some(found) = rest[..window].find(element) else {
        return seq;
    };
    let offset = seq.offset + found;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Span {
        line: u32::try_from(line).unwrap_or(seq.line),
        col: u32::try_from(col).unwrap_or(seq.col),
        offset,
        len: element.len(),
    }
}

/// Reports the shell tool's breaches of the argument rule
/// ([`ShellToolSpec::check_command`], which the tools crate applies too, so a pipeline that
/// compiles also loads) with their spans.
fn check_command(tool: &ShellToolSpec, src: &SourceFile, diags: &mut Vec<Diagnostic>) {
    let Err(issues) = tool.check_command() else {
        return;
    };
    let cmd = &tool.command;
    let at = |element: &str| element_span(src, cmd.span, element);
    let arg_span = |arg: &str| {
        tool.args
            .iter()
            .find(|(n, _, _)| *n == arg)
            .map_or(cmd.span, |(_, span, _)| span)
    };
    let tname = &tool.name.value;
    let args: Vec<&str> = tool.args.keys().collect();
    for issue in issues {
        let d = match &issue {
            ShellToolIssue::EmptyCommand => {
                Diagnostic::error(format!("the command of tool `{tname}` is empty"))
                    .at(src, cmd.span)
                    .with_label("expected the program, then its arguments")
            }
            ShellToolIssue::ProgramNotFixed => {
                Diagnostic::error(format!("the program of tool `{tname}` must be fixed text"))
                    .at(src, cmd.span)
                    .with_label("the first element of `command` is the program to run")
                    .with_help("arguments from the model can only be later elements")
            }
            ShellToolIssue::UndeclaredArg { element, arg, .. } => {
                Diagnostic::error(format!("tool `{tname}` uses undeclared argument `{arg}`"))
                    .at(src, at(element))
                    .with_label(format!("`{element}` names no argument in `args:`"))
                    .with_suggestions(arg, args.iter().copied())
                    .with_help(format!(
                        "declare it: `args: {{ {arg}: {{ type: string }} }}`"
                    ))
            }
            ShellToolIssue::SplicedArg { element, arg } => Diagnostic::error(format!(
                "argument `{arg}` is spliced into `{element}` in tool `{tname}`"
            ))
            .at(src, at(element))
            .with_label("a placeholder must be a whole element of `command`")
            .with_help(format!("write `\"{{{{{arg}}}}}\"` as its own element; its value is passed as one argv entry, never spliced into a string")),
            ShellToolIssue::NeverPassed { arg } => Diagnostic::error(format!(
                "argument `{arg}` of tool `{tname}` is never passed"
            ))
            .at(src, arg_span(arg))
            .with_label("used neither in `command` nor as `env`")
            .with_help(format!("add `\"{{{{{arg}}}}}\"` to the command, or `env: VAR` to pass it in an environment variable")),
            ShellToolIssue::InvalidArgEnv { arg, name } => Diagnostic::error(format!(
                "argument `{arg}` of tool `{tname}` has an invalid `env`"
            ))
            .at(src, arg_span(arg))
            .with_label(format!("`{name}` is not a valid environment variable name")),
            ShellToolIssue::InvalidEnv { key } => {
                let span = tool
                    .env
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .map_or(tool.name.span, |(_, span, _)| span);
                Diagnostic::error(format!("tool `{tname}` sets an invalid environment variable"))
                    .at(src, span)
                    .with_label(format!("`{key}` cannot be set"))
            }
            other => Diagnostic::error(format!("invalid shell tool `{tname}`: {other}"))
                .at(src, cmd.span),
        };
        diags.push(d);
    }
}
