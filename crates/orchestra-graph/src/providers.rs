//! Providers: merging the pipeline's over the project's, checking each kind has the settings it
//! needs, and resolving an agent's model alias against a provider's `models`.

use std::path::Path;

use indexmap::IndexMap;
use orchestra_spec::{
    Diagnostic, PriceSpec, ProviderKind, ProviderSpec, SourceFile, Span, SpannedMap,
};

use crate::compiled::{ModelChoice, ResolvedAgent, ResolvedProvider};

/// A provider and where it was declared, for diagnostics.
#[derive(Debug)]
pub(crate) struct ProviderEntry<'a> {
    pub(crate) resolved: ResolvedProvider,
    pub(crate) source: &'a SourceFile,
    pub(crate) key_span: Span,
    pub(crate) from_pipeline: bool,
}

/// Warns about a pipeline's `prices:` entry keyed by a model alias that no agent uses as a
/// model name: prices are looked up by model name, so it would apply to nothing.
pub(crate) fn check_prices(
    prices: &SpannedMap<PriceSpec>,
    src: &SourceFile,
    agents: &[ResolvedAgent],
    providers: &IndexMap<String, ProviderEntry<'_>>,
    diags: &mut Vec<Diagnostic>,
) {
    for (key, span, _) in prices.iter() {
        if agents.iter().any(|a| a.model.model.as_deref() == Some(key)) {
            continue;
        }
        let meant: Vec<String> = providers
            .values()
            .filter_map(|e| {
                let p = &e.resolved;
                p.spec
                    .models
                    .get(key)
                    .map(|m| format!("`{m}` (provider `{}`)", p.name))
            })
            .collect();
        if meant.is_empty() {
            continue;
        }
        diags.push(
            Diagnostic::warning(format!(
                "the price of `{key}` applies to no agent: `{key}` is a model alias, and prices \
                 are given by model name"
            ))
            .at(src, span)
            .with_help(format!(
                "give the model's name instead: {}",
                meant.join(", ")
            )),
        );
    }
}

/// The file declaring a set of providers: its text, real path and directory (relative
/// `responses:` paths resolve against the directory).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Declarer<'a> {
    pub(crate) source: &'a SourceFile,
    pub(crate) path: &'a Path,
    pub(crate) dir: &'a Path,
}

/// The pipeline's providers, then the project's that the pipeline does not redefine.
pub(crate) fn merge<'a>(
    pipeline: (&SpannedMap<ProviderSpec>, Declarer<'a>),
    project: Option<(&SpannedMap<ProviderSpec>, Declarer<'a>)>,
) -> IndexMap<String, ProviderEntry<'a>> {
    let mut out = IndexMap::new();
    let mut add = |map: &SpannedMap<ProviderSpec>, d: Declarer<'a>, from_pipeline: bool| {
        for (name, span, spec) in map.iter() {
            if out.contains_key(name) {
                continue;
            }
            let responses = spec.responses.as_ref().map(|r| d.dir.join(&r.value));
            out.insert(
                name.to_owned(),
                ProviderEntry {
                    resolved: ResolvedProvider {
                        name: name.to_owned(),
                        spec: spec.clone(),
                        declared_in: d.path.to_path_buf(),
                        responses,
                    },
                    source: d.source,
                    key_span: span,
                    from_pipeline,
                },
            );
        }
    };
    add(pipeline.0, pipeline.1, true);
    if let Some((map, d)) = project {
        add(map, d, false);
    }
    out
}

/// Checks that a provider has what its kind needs.
pub(crate) fn check(entry: &ProviderEntry<'_>, diags: &mut Vec<Diagnostic>) {
    let p = &entry.resolved;
    let spec = &p.spec;
    let src = entry.source;
    let name = &p.name;
    match spec.kind.value {
        ProviderKind::Command => match &spec.command {
            None => diags.push(
                Diagnostic::error(format!("provider `{name}` of kind `command` has no `command`"))
                    .at(src, entry.key_span)
                    .with_label("`command:` is required for this kind")
                    .with_help("e.g. `command: [\"codex\", \"exec\", \"{{prompt}}\"]` (or `stdin: true` to send the prompt on stdin)"),
            ),
            Some(cmd) if cmd.value.is_empty() || cmd.value[0].trim().is_empty() => diags.push(
                Diagnostic::error(format!("the `command` of provider `{name}` is empty"))
                    .at(src, cmd.span)
                    .with_label("expected the program, then its arguments"),
            ),
            Some(cmd) => {
                let passes_prompt = cmd.value.iter().any(|a| a.contains("{{prompt}}"));
                if !passes_prompt && !spec.stdin {
                    diags.push(
                        Diagnostic::warning(format!("provider `{name}` never passes the prompt to its command"))
                            .at(src, cmd.span)
                            .with_label("no `{{prompt}}` argument")
                            .with_help("add a `{{prompt}}` argument, or set `stdin: true`"),
                    );
                }
            }
        },
        ProviderKind::Scripted => match (&spec.responses, &p.responses) {
            (Some(r), Some(path)) if !path.is_file() => diags.push(
                Diagnostic::error(format!("responses file `{}` not found", r.value))
                    .at(src, r.span)
                    .with_label("no such file")
                    .with_help(format!(
                        "the path is relative to the directory of {}",
                        src.path.display()
                    )),
            ),
            (None, _) => diags.push(
                Diagnostic::error(format!("provider `{name}` of kind `scripted` has no `responses`"))
                    .at(src, entry.key_span)
                    .with_label("`responses:` is required for this kind")
                    .with_help("e.g. `responses: fixtures/NAME.responses.yaml`"),
            ),
            _ => {}
        },
        ProviderKind::Anthropic | ProviderKind::Openai => {
            if let Some(base) = &spec.api_base
                && let Err(why) = orchestra_spec::check_api_base(&base.value)
            {
                diags.push(
                    Diagnostic::error(format!(
                        "invalid `api_base` `{}` of provider `{name}`",
                        base.value
                    ))
                    .at(src, base.span)
                    .with_label(why)
                    .with_help("e.g. `api_base: \"http://127.0.0.1:11434/v1\"`"),
                );
            }
        }
    }
    if spec.kind.value != ProviderKind::Command
        && let Some(cmd) = &spec.command
    {
        diags.push(
            Diagnostic::warning(format!("`command` is ignored by provider `{name}`"))
                .at(src, cmd.span)
                .with_label(format!(
                    "only used by `kind: command`, this is `{}`",
                    kind_name(spec.kind.value)
                )),
        );
    }
    if spec.kind.value != ProviderKind::Command
        && let Some(f) = &spec.format
    {
        diags.push(
            Diagnostic::warning(format!("`format` is ignored by provider `{name}`"))
                .at(src, f.span)
                .with_label(format!(
                    "only used by `kind: command`, this is `{}`",
                    kind_name(spec.kind.value)
                )),
        );
    }
    if spec.kind.value != ProviderKind::Scripted
        && let Some(r) = &spec.responses
    {
        diags.push(
            Diagnostic::warning(format!("`responses` is ignored by provider `{name}`"))
                .at(src, r.span)
                .with_label(format!(
                    "only used by `kind: scripted`, this is `{}`",
                    kind_name(spec.kind.value)
                )),
        );
    }
}

/// The name of a provider kind as written in YAML.
pub fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Openai => "openai",
        ProviderKind::Command => "command",
        ProviderKind::Scripted => "scripted",
    }
}

/// Resolves `requested` (an alias or a literal model name) on `provider`
/// ([`ProviderSpec::resolve_model`]).
pub(crate) fn choose_model(provider: &ResolvedProvider, requested: Option<&str>) -> ModelChoice {
    let (model, alias) = match requested.map(|r| provider.spec.resolve_model(r)) {
        Some((model, alias)) => (Some(model.to_owned()), alias.map(str::to_owned)),
        None => (None, None),
    };
    ModelChoice {
        provider: provider.name.clone(),
        kind: provider.spec.kind.value,
        model,
        alias,
        requested: requested.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestra_spec::parse_yaml;
    use std::path::PathBuf;

    fn providers(yaml: &str) -> SpannedMap<ProviderSpec> {
        parse_yaml(&SourceFile::new("p.yaml", yaml), "pipeline").unwrap()
    }

    #[test]
    fn pipeline_providers_win_and_models_resolve() {
        let src = SourceFile::new("p.yaml", "");
        let proj_src = SourceFile::new("orchestra.yaml", "");
        let pipe = providers("a: { kind: openai, models: { smart: gpt-x } }\n");
        let proj = providers(
            "a: { kind: anthropic }\nb: { kind: anthropic, models: { worker: claude-w } }\n",
        );
        let dir = PathBuf::from("/p");
        let merged = merge(
            (
                &pipe,
                Declarer {
                    source: &src,
                    path: Path::new("/p/p.yaml"),
                    dir: &dir,
                },
            ),
            Some((
                &proj,
                Declarer {
                    source: &proj_src,
                    path: Path::new("/o.yaml"),
                    dir: &dir,
                },
            )),
        );
        assert_eq!(merged.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(merged["a"].resolved.spec.kind.value, ProviderKind::Openai);
        assert!(!merged["b"].from_pipeline);
        let m = choose_model(&merged["b"].resolved, Some("worker"));
        assert_eq!(
            (m.model.as_deref(), m.alias.as_deref()),
            (Some("claude-w"), Some("worker"))
        );
        let m = choose_model(&merged["b"].resolved, Some("claude-literal"));
        assert_eq!(
            (m.model.as_deref(), m.alias),
            (Some("claude-literal"), None)
        );
    }

    #[test]
    fn kinds_need_their_settings() {
        let text = "c: { kind: command }\ns: { kind: scripted, responses: nope.yaml }\nx: { kind: command, command: [echo, hi] }\no: { kind: openai, api_base: \"http://h/v1\", format: codex-jsonl }\n";
        let src = SourceFile::new("p.yaml", text);
        let map = providers(text);
        let dir = tempfile::tempdir().unwrap();
        let merged = merge(
            (
                &map,
                Declarer {
                    source: &src,
                    path: Path::new("p.yaml"),
                    dir: dir.path(),
                },
            ),
            None,
        );
        let mut diags = Vec::new();
        for e in merged.values() {
            check(e, &mut diags);
        }
        let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "p.yaml:1:1: provider `c` of kind `command` has no `command`",
                "p.yaml:2:33: responses file `nope.yaml` not found",
                "p.yaml:3:30: provider `x` never passes the prompt to its command",
                "p.yaml:4:53: `format` is ignored by provider `o`",
            ]
        );
    }
}
