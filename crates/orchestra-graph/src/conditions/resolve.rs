//! Resolving condition names at compile time: a rule file found by discovery (parsed, its
//! expressions compiled and their names checked), an executable, or a registered function.

use std::collections::HashMap;
use std::path::Path;

use orchestra_spec::{
    ConditionFile, Diagnostic, Discovery, Names, SourceFile, Span, Spanned, display_path,
    parse_yaml, read_source,
};

use super::{ConditionSource, EXPR_VARS, ResolvedCondition, Rule, RuleSet, detail, environment};

/// A rule file as parsed, kept for span-accurate checks against each edge using it.
#[derive(Debug)]
struct Parsed {
    source: SourceFile,
    file: ConditionFile,
}

/// Resolves condition names, reading each file once and reporting its problems once.
#[derive(Debug)]
pub(crate) struct ConditionResolver<'a> {
    discovery: &'a Discovery,
    cwd: &'a Path,
    registered: &'a [String],
    resolved: HashMap<String, Lookup>,
    parsed: HashMap<String, Parsed>,
}

/// The outcome of looking a condition up.
#[derive(Clone, Debug)]
enum Lookup {
    Found(ResolvedCondition),
    /// Nothing has that name: every reference is an error.
    Missing,
    /// A file was found but is unusable; its problems were reported once.
    Broken,
}

/// Names a rule expression may use: state channels and declared inputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExprScope<'a> {
    pub(crate) state: &'a [String],
    pub(crate) inputs: &'a [String],
}

impl<'a> ConditionResolver<'a> {
    pub(crate) fn new(discovery: &'a Discovery, cwd: &'a Path, registered: &'a [String]) -> Self {
        ConditionResolver {
            discovery,
            cwd,
            registered,
            resolved: HashMap::new(),
            parsed: HashMap::new(),
        }
    }

    /// Resolves the condition `name` written in `pipeline`; `None` if unusable (reported).
    pub(crate) fn resolve(
        &mut self,
        name: &Spanned<String>,
        pipeline: &SourceFile,
        scope: ExprScope<'_>,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<ResolvedCondition> {
        let lookup = match self.resolved.get(&name.value) {
            Some(done) => done.clone(),
            None => {
                let l = self.lookup(name, pipeline, scope, diags);
                self.resolved.insert(name.value.clone(), l.clone());
                l
            }
        };
        match lookup {
            Lookup::Found(c) => Some(c),
            Lookup::Missing => {
                diags.push(self.not_found(name, pipeline));
                None
            }
            Lookup::Broken => None,
        }
    }

    fn lookup(
        &mut self,
        name: &Spanned<String>,
        pipeline: &SourceFile,
        scope: ExprScope<'_>,
        diags: &mut Vec<Diagnostic>,
    ) -> Lookup {
        let n = name.value.as_str();
        if n.is_empty() || n.contains(['/', '\\']) || n.starts_with('.') {
            diags.push(
                Diagnostic::error(format!("invalid condition name `{n}`"))
                    .at(pipeline, name.span)
                    .with_label(
                        "a condition name is a file name in `conditions/`, without extension",
                    ),
            );
            return Lookup::Broken;
        }
        if self.registered.iter().any(|r| r == n) {
            return Lookup::Found(ResolvedCondition {
                name: n.to_owned(),
                source: ConditionSource::Registered,
            });
        }
        let rel = Path::new("conditions").join(format!("{n}.yaml"));
        if let Some(found) = self.discovery.find(&rel) {
            let shown = display_path(&found.path, self.cwd);
            let source = match read_source(&found.path, shown) {
                Ok(s) => s,
                Err(d) => {
                    diags.push(d);
                    return Lookup::Broken;
                }
            };
            let file: ConditionFile = match parse_yaml(&source, "condition") {
                Ok(f) => f,
                Err(d) => {
                    diags.push(d);
                    return Lookup::Broken;
                }
            };
            let ok = check_rules(&file, &source, scope, diags);
            let set = RuleSet {
                path: found.path.clone(),
                level: found.level,
                description: file.description.clone(),
                rules: file
                    .rules
                    .iter()
                    .map(|r| Rule {
                        when: r.when.value.clone(),
                        to: r.to.iter().map(str::to_owned).collect(),
                        line: r.when.span.line,
                    })
                    .collect(),
                default: file.default.iter().map(str::to_owned).collect(),
            };
            self.parsed.insert(n.to_owned(), Parsed { source, file });
            if !ok {
                return Lookup::Broken;
            }
            return Lookup::Found(ResolvedCondition {
                name: n.to_owned(),
                source: ConditionSource::Rules(set),
            });
        }
        let dir = Path::new("conditions");
        if let Some(found) = self
            .discovery
            .find_with(dir, |p| is_candidate(p, n) && is_executable(p))
        {
            return Lookup::Found(ResolvedCondition {
                name: n.to_owned(),
                source: ConditionSource::Executable {
                    path: found.path,
                    level: found.level,
                },
            });
        }
        if let Some(found) = self.discovery.find_with(dir, |p| is_candidate(p, n)) {
            diags.push(
                Diagnostic::error(format!("condition `{n}` is not executable"))
                    .at(pipeline, name.span)
                    .with_label(format!(
                        "found `{}`, which is not executable",
                        display_path(&found.path, self.cwd).display()
                    ))
                    .with_help(format!(
                        "make it executable (`chmod +x {}`), or write the rules in `conditions/{n}.yaml`",
                        display_path(&found.path, self.cwd).display()
                    )),
            );
            return Lookup::Broken;
        }
        Lookup::Missing
    }

    fn not_found(&self, name: &Spanned<String>, pipeline: &SourceFile) -> Diagnostic {
        let n = name.value.as_str();
        let dir = Path::new("conditions");
        let mut known = self.discovery.names_in(dir, "yaml");
        for (_, root) in self.discovery.roots() {
            if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.extension().and_then(|x| x.to_str()) != Some("yaml")
                        && is_executable(&p)
                        && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                    {
                        known.push(stem.to_owned());
                    }
                }
            }
        }
        known.extend(self.registered.iter().cloned());
        known.sort();
        known.dedup();
        let looked: Vec<String> = self
            .discovery
            .roots()
            .iter()
            .map(|(level, root)| {
                format!(
                    "{} ({level})",
                    display_path(&root.join(dir).join(format!("{n}.yaml")), self.cwd).display()
                )
            })
            .collect();
        Diagnostic::error(format!("unknown condition `{n}`"))
            .at(pipeline, name.span)
            .with_label("no rule file, executable or registered function has this name")
            .with_suggestions(n, known.iter().map(String::as_str))
            .with_help(format!(
                "looked for: {} (or an executable `conditions/{n}` / `conditions/{n}.*` there)",
                looked.join(", ")
            ))
    }

    /// Checks that every target the rules of condition `name` can return is in `to`, the
    /// targets of an edge written at `edge_line` of `pipeline`.
    pub(crate) fn check_targets(
        &self,
        name: &str,
        to: &Names,
        pipeline: &SourceFile,
        edge_line: u32,
        diags: &mut Vec<Diagnostic>,
    ) {
        let Some(parsed) = self.parsed.get(name) else {
            return;
        };
        let rule_targets = parsed.file.rules.iter().flat_map(|r| r.to.items.iter());
        for target in rule_targets.chain(parsed.file.default.items.iter()) {
            if !to.contains(&target.value) {
                diags.push(
                    Diagnostic::error(format!(
                        "condition `{name}` can choose `{}`, which is not a target of the edge",
                        target.value
                    ))
                    .at(&parsed.source, target.span)
                    .with_label(format!(
                        "not in `to:` of the edge at {}:{edge_line}",
                        pipeline.path.display()
                    ))
                    .with_suggestions(&target.value, to.iter())
                    .with_help(format!(
                        "the edge's targets are: {}",
                        to.iter().collect::<Vec<_>>().join(", ")
                    )),
                );
            }
        }
    }
}

/// Checks a rule file's expressions and names; returns whether it is usable.
fn check_rules(
    file: &ConditionFile,
    source: &SourceFile,
    scope: ExprScope<'_>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let before = diags.len();
    if file.default.is_empty() {
        diags.push(
            Diagnostic::error("`default` of a condition cannot be empty")
                .at(source, file.default.span)
                .with_label("name the target(s) used when no rule matches"),
        );
    }
    let env = environment();
    for rule in &file.rules {
        if rule.to.is_empty() {
            diags.push(
                Diagnostic::error("a rule needs at least one target")
                    .at(source, rule.to.span)
                    .with_label("empty `to:`"),
            );
        }
        let expr = match env.compile_expression(&rule.when.value) {
            Ok(e) => e,
            Err(e) => {
                let span = expr_span(source, rule.when.span, e.range());
                diags.push(
                    Diagnostic::error(format!("invalid condition expression: {}", detail(&e)))
                        .at(source, span)
                        .with_label("minijinja expression syntax error")
                        .with_help("a rule is a minijinja expression over `state`, `inputs` and `loops`, e.g. `state.verdict == \"revise\" and loops < 2`"),
                );
                continue;
            }
        };
        for u in orchestra_prompts::unknown_callables(&env, &rule.when.value, true) {
            let span = expr_span(
                source,
                rule.when.span,
                Some(u.offset..u.offset + u.name.len()),
            );
            diags.push(
                Diagnostic::error(format!(
                    "unknown {} `{}` in condition",
                    u.kind.as_str(),
                    u.name
                ))
                .at(source, span)
                .with_label(format!("no such {}", u.kind.as_str()))
                .with_help(orchestra_prompts::UNKNOWN_CALLABLE_HELP),
            );
        }
        let mut vars: Vec<String> = expr.undeclared_variables(true).into_iter().collect();
        vars.sort();
        for var in vars {
            // `state.tests.exit_code` is checked as `state.tests` (as in task templates): what
            // lies below a channel is data.
            let (root, field) = match var.split_once('.') {
                Some((r, f)) => (r, Some(f.split('.').next().unwrap_or(f))),
                None => (var.as_str(), None),
            };
            let at = rule.when.value.find(&var).map(|i| i..i + var.len());
            let span = expr_span(source, rule.when.span, at);
            match (root, field) {
                ("state", Some(f)) if !scope.state.iter().any(|s| s == f) => diags.push(
                    Diagnostic::error(format!("unknown state field `{f}` in condition"))
                        .at(source, span)
                        .with_label("not a state channel of this pipeline")
                        .with_suggestions(f, scope.state.iter().map(String::as_str))
                        .with_help(format!("state channels: {}", scope.state.join(", "))),
                ),
                ("inputs", Some(f)) if !scope.inputs.iter().any(|s| s == f) => diags.push(
                    Diagnostic::error(format!("unknown input `{f}` in condition"))
                        .at(source, span)
                        .with_label("not declared in the pipeline's `inputs:`")
                        .with_suggestions(f, scope.inputs.iter().map(String::as_str)),
                ),
                (r, _) if EXPR_VARS.contains(&r) || ["range", "dict", "namespace"].contains(&r) => {}
                (r, _) => diags.push(
                    Diagnostic::error(format!("unknown variable `{r}` in condition"))
                        .at(source, span)
                        .with_label("not defined")
                        .with_suggestions(r, EXPR_VARS)
                        .with_help("a rule sees `state`, `inputs` and `loops` (how many loops the edge has taken)"),
                ),
            }
        }
    }
    diags[before..].iter().all(|d| !d.is_error())
}

/// The span of part `range` (byte offsets within the expression) of an expression written at
/// `span`, when it is on the expression's first line; else the whole expression.
fn expr_span(source: &SourceFile, span: Span, range: Option<std::ops::Range<usize>>) -> Span {
    let Some(r) = range else {
        return span;
    };
    let quoted = source
        .text
        .get(span.offset..)
        .is_some_and(|t| t.starts_with(['"', '\'']));
    let start = span.offset + usize::from(quoted) + r.start;
    let line_end = source.text[span.offset.min(source.text.len())..]
        .find('\n')
        .map_or(source.text.len(), |i| span.offset + i);
    if start > line_end || !source.text.is_char_boundary(start) {
        return span;
    }
    let col_chars = source.text[span.offset..start].chars().count();
    Span {
        line: span.line,
        col: span.col + u32::try_from(col_chars).unwrap_or(0),
        offset: start,
        len: r.len().min(line_end.saturating_sub(start)).max(1),
    }
}

/// Whether `p` is `NAME` or `NAME.ext` (other than a YAML file).
fn is_candidate(p: &Path, name: &str) -> bool {
    let ext = p.extension().and_then(|x| x.to_str());
    !matches!(ext, Some("yaml" | "yml")) && p.file_stem().and_then(|s| s.to_str()) == Some(name)
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}
