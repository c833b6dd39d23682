//! The compiler's entry point: find and read the pipeline and `orchestra.yaml`, then resolve and
//! check everything, collecting as many diagnostics as possible in one pass.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use orchestra_prompts::{LayerLoader, TemplateScope};
use orchestra_spec::{
    Diagnostic, Discovery, PipelineSpec, ProjectConfig, SourceFile, Span, Spanned, display_path,
    find_project_file, parse_yaml, read_source,
};

use crate::agents::{AgentCtx, Setting};
use crate::compiled::Compiled;
use crate::conditions::{ConditionResolver, ExprScope, ResolvedCondition};
use crate::providers::{self, Declarer};
use crate::state::Channels;
use crate::workspace::{self, ToolIndex};
use crate::{analysis, edges, fields};

/// What the compiler needs to know about its surroundings.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The current directory: relative paths are resolved against it and paths in messages are
    /// shown relative to it.
    pub cwd: PathBuf,
    /// The user's Orchestra directory (normally `$ORCHESTRA_HOME` or `~/.orchestra`), the last
    /// discovery level.
    pub home: Option<PathBuf>,
    /// Conditions implemented by functions registered through the library API.
    pub registered_conditions: Vec<String>,
    /// Tools registered through the library API (`name` or `repo:name`).
    pub registered_tools: Vec<String>,
}

/// Compiles the pipeline at `pipeline`. On failure, returns every error found (and the
/// warnings), sorted by file and position; on success the warnings are in
/// [`Compiled::warnings`].
pub fn load(pipeline: &Path, opts: &LoadOptions) -> Result<Compiled, Vec<Diagnostic>> {
    load_called(pipeline, opts, &[])
}

/// [`load`] of a pipeline called (`call:`) by the pipelines of `callers`, outermost first.
pub(crate) fn load_called(
    pipeline: &Path,
    opts: &LoadOptions,
    callers: &[PathBuf],
) -> Result<Compiled, Vec<Diagnostic>> {
    let path = normalize(&opts.cwd.join(pipeline));
    let source = read_source(&path, display_path(&path, &opts.cwd)).map_err(|d| vec![d])?;
    let spec: PipelineSpec = parse_yaml(&source, "pipeline").map_err(|d| vec![d])?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let project_file = find_project_file(&dir).or_else(|| find_project_file(&opts.cwd));
    let (project, project_source) = match &project_file {
        Some(p) => {
            let src = read_source(p, display_path(p, &opts.cwd)).map_err(|d| vec![d])?;
            let cfg: ProjectConfig = parse_yaml(&src, "project").map_err(|d| vec![d])?;
            (cfg, Some(src))
        }
        None => (ProjectConfig::default(), None),
    };
    let project_root = project_file
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| opts.cwd.clone(), Path::to_path_buf);
    compile(
        Input {
            spec,
            source,
            pipeline_path: path,
            project,
            project_source,
            project_file,
            project_root,
        },
        opts,
        callers,
    )
}

/// A pipeline and its project, read and parsed.
struct Input {
    spec: PipelineSpec,
    source: SourceFile,
    pipeline_path: PathBuf,
    project: ProjectConfig,
    project_source: Option<SourceFile>,
    project_file: Option<PathBuf>,
    project_root: PathBuf,
}

fn compile(
    input: Input,
    opts: &LoadOptions,
    callers: &[PathBuf],
) -> Result<Compiled, Vec<Diagnostic>> {
    let Input {
        spec,
        source: src,
        pipeline_path,
        project,
        project_source,
        project_file,
        project_root,
    } = input;
    let mut diags: Vec<Diagnostic> = Vec::new();
    let pipeline_dir = pipeline_path
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();

    if !valid_pipeline_name(&spec.name) {
        diags.push(
            Diagnostic::error(format!("invalid pipeline name `{}`", spec.name.value))
                .at(&src, spec.name.span)
                .with_label("it becomes part of git branch names")
                .with_help(
                    "use letters, digits, `-`, `_` and `.`, starting with a letter or digit",
                ),
        );
    }
    if let Some(psrc) = &project_source {
        for sp in &project.search_paths {
            if !project_root.join(sp).is_dir() {
                diags.push(
                    Diagnostic::warning(format!("search path `{sp}` is not a directory"))
                        .at(psrc, find_span(psrc, sp))
                        .with_label("nothing will be found there")
                        .with_help("search paths are relative to the directory of orchestra.yaml"),
                );
            }
        }
    }
    let discovery = Discovery::new(
        &pipeline_dir,
        Some((&project_root, &project.search_paths)),
        opts.home.clone(),
    );

    // Providers and defaults.
    let pipeline_decl = Declarer {
        source: &src,
        path: &pipeline_path,
        dir: &pipeline_dir,
    };
    let project_decl = project_source
        .as_ref()
        .zip(project_file.as_deref())
        .map(|(s, p)| {
            (
                &project.providers,
                Declarer {
                    source: s,
                    path: p,
                    dir: &project_root,
                },
            )
        });
    let provider_map = providers::merge((&spec.providers, pipeline_decl), project_decl);
    let default_provider = setting(
        (spec.defaults.provider.as_ref(), &src),
        (project.defaults.provider.as_ref(), project_source.as_ref()),
    );
    let default_model = setting(
        (spec.defaults.model.as_ref(), &src),
        (project.defaults.model.as_ref(), project_source.as_ref()),
    );

    // State, inputs, workspace.
    fields::check_state(&spec, &src, &mut diags);
    let inputs = crate::inputs::resolve(&spec, &src, &mut diags);
    let channels = Channels::new(&spec.state);
    let state_names: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
    crate::outputs::check_outputs(&spec, &src, &state_names, &mut diags);
    let input_names: Vec<String> = spec.inputs.keys().map(str::to_owned).collect();
    let repos = workspace::repos(&spec, &src, &project_root, &mut diags);
    let mcp_servers = crate::mcp::resolve(
        (&spec.mcp_servers, &src, &pipeline_path),
        project_source
            .as_ref()
            .zip(project_file.as_ref())
            .map(|(s, p)| (&project.mcp_servers, s, p)),
        &spec,
        &mut diags,
    );
    let tools = ToolIndex::build(&spec, &src, &opts.registered_tools, &mut diags)
        .with_mcp_servers(mcp_servers.keys().cloned().collect());

    // Agents.
    let mut loader = LayerLoader::new(&discovery, &opts.cwd);
    let mut ctx = AgentCtx {
        spec: &spec,
        src: &src,
        pipeline_path: &pipeline_path,
        loader: &mut loader,
        scope: TemplateScope {
            state: &state_names,
            inputs: &input_names,
            item: false,
        },
        providers: &provider_map,
        default_provider,
        default_model,
        tools: &tools,
        checked: HashSet::new(),
        models: Vec::new(),
        opts,
        callers,
        project_root: &project_root,
    };
    let agents: Vec<_> = spec
        .agents
        .iter()
        .enumerate()
        .map(|(i, (name, span, a))| ctx.resolve(i, name, span, a, &mut diags))
        .collect();
    for entry in provider_map.values() {
        if entry.from_pipeline
            || agents
                .iter()
                .any(|a| a.model.provider == entry.resolved.name)
        {
            providers::check(entry, &mut diags);
        }
    }
    providers::check_prices(&spec.prices, &src, &agents, &provider_map, &mut diags);

    // Edges, conditions, whole-graph checks.
    let index: HashMap<&str, usize> = spec
        .agents
        .keys()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let mut resolver = ConditionResolver::new(&discovery, &opts.cwd, &opts.registered_conditions);
    let scope = ExprScope {
        state: &state_names,
        inputs: &input_names,
    };
    let errors_before = error_count(&diags);
    let (mut topology, conditions) =
        edges::build(&spec, &src, &index, &mut resolver, scope, &mut diags);
    topology.on_error = edges::on_error(&spec, &src, &index, &mut diags);
    crate::foreach::check(&spec, &src, &channels, &agents, &mut diags);
    if error_count(&diags) == errors_before {
        analysis::analyze(&spec, &src, &mut topology, &agents, &mut diags);
    }
    let conditions: IndexMap<String, ResolvedCondition> = conditions
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    if error_count(&diags) == errors_before {
        crate::joins::condition_subsets(&spec, &src, &topology, &conditions, &mut diags);
    }

    let diags = sorted(diags, &src, project_source.as_ref());
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let providers: IndexMap<_, _> = provider_map
        .into_iter()
        .map(|(k, e)| (k, e.resolved))
        .collect();
    let mut prices = spec.prices;
    prices.merge_missing_from(&project.prices);
    Ok(Compiled {
        name: spec.name.value.clone(),
        source: src,
        pipeline_path,
        project,
        project_root,
        project_file,
        topology: Arc::new(topology),
        agents,
        providers,
        repos,
        conditions,
        channels: Arc::new(channels),
        inputs,
        limits: spec.limits,
        prices,
        shell_tools: spec.workspace.tools,
        description: spec.description,
        outputs: spec.outputs,
        mcp_servers,
        warnings: diags,
    })
}

/// The pipeline's setting if given, else the project's.
fn setting<'a>(
    pipeline: (Option<&'a Spanned<String>>, &'a SourceFile),
    project: (Option<&'a Spanned<String>>, Option<&'a SourceFile>),
) -> Setting<'a> {
    match pipeline {
        (Some(v), src) => Some((v, src)),
        (None, _) => project.0.zip(project.1),
    }
}

fn error_count(diags: &[Diagnostic]) -> usize {
    diags.iter().filter(|d| d.is_error()).count()
}

/// Sorts by file (the pipeline first, then orchestra.yaml, then others by path) and position,
/// and drops exact repeats (a layer file used by several agents is checked once per use).
fn sorted(
    mut diags: Vec<Diagnostic>,
    pipeline: &SourceFile,
    project: Option<&SourceFile>,
) -> Vec<Diagnostic> {
    let rank = |d: &Diagnostic| match &d.source {
        Some(s) if s.path == pipeline.path => (0, PathBuf::new()),
        Some(s) if project.is_some_and(|p| p.path == s.path) => (1, PathBuf::new()),
        Some(s) => (2, s.path.clone()),
        None => (3, PathBuf::new()),
    };
    diags.sort_by(|a, b| {
        let sa = a.span.unwrap_or_default();
        let sb = b.span.unwrap_or_default();
        rank(a)
            .cmp(&rank(b))
            .then(sa.line.cmp(&sb.line))
            .then(sa.col.cmp(&sb.col))
    });
    let mut seen: HashSet<(String, Option<String>, Option<String>)> = HashSet::new();
    diags.retain(|d| seen.insert((d.message.clone(), d.location(), d.label.clone())));
    diags
}

/// Branch-safe: letters, digits, `-`, `_`, `.`; starts with a letter or digit; no `..`.
fn valid_pipeline_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..")
        && !name.ends_with(".lock")
}

/// The span of the first occurrence of `needle` in `src` (for values read without spans).
fn find_span(src: &SourceFile, needle: &str) -> Span {
    let Some(offset) = src.text.find(needle) else {
        return Span::default();
    };
    let before = &src.text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Span {
        line: u32::try_from(line).unwrap_or(0),
        col: u32::try_from(col).unwrap_or(0),
        offset,
        len: needle.len(),
    }
}

/// Removes `.` components and folds `..` lexically (no symlink resolution).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
