//! Prompt layers: the four kinds, where their files live, and loading them through discovery
//! into [`ResolvedLayer`]s that remember which file (and which discovery level) won.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use orchestra_spec::{
    Diagnostic, Discovery, Found, LayerRef, Level, SourceFile, Span, Spanned, display_path,
    parse_yaml, read_source,
};
use serde::{Deserialize, Serialize};

/// The kinds of prompt layer, in the order they are concatenated into the system prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// What the agent is for (`prompts/roles/`).
    Role,
    /// Whose expertise it brings (`prompts/personas/`).
    Persona,
    /// How it talks (`prompts/personalities/`).
    Personality,
    /// What to do now: a minijinja template over `state`, `inputs` and `agent` (`prompts/tasks/`).
    Task,
}

impl LayerKind {
    /// All kinds, in composition order.
    pub const ALL: [LayerKind; 4] = [
        LayerKind::Role,
        LayerKind::Persona,
        LayerKind::Personality,
        LayerKind::Task,
    ];

    /// The agent key that selects this layer (`role`, `persona`, ...).
    pub fn key(self) -> &'static str {
        match self {
            LayerKind::Role => "role",
            LayerKind::Persona => "persona",
            LayerKind::Personality => "personality",
            LayerKind::Task => "task",
        }
    }

    /// The directory holding layer files of this kind, relative to a discovery root.
    pub fn dir(self) -> &'static str {
        match self {
            LayerKind::Role => "prompts/roles",
            LayerKind::Persona => "prompts/personas",
            LayerKind::Personality => "prompts/personalities",
            LayerKind::Task => "prompts/tasks",
        }
    }

    /// The file a named layer is looked for at, relative to a discovery root.
    pub fn rel_path(self, name: &str) -> PathBuf {
        Path::new(self.dir()).join(format!("{name}.yaml"))
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A prompt layer with its text loaded and its origin recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedLayer {
    /// Which layer this is.
    pub kind: LayerKind,
    /// The layer file's name (`reviewer`), or `None` for a layer written inline in the pipeline.
    pub name: Option<String>,
    /// The layer's text (for the task layer: the template source).
    pub text: String,
    /// The layer's description, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file the text was read from: the layer file, or the pipeline for an inline layer.
    pub path: PathBuf,
    /// The discovery level the layer file was found at; `None` for an inline layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The 1-based line of `path` where the text starts (0 when unknown); template errors are
    /// reported relative to it.
    pub line: u32,
}

impl ResolvedLayer {
    /// Whether the layer was written inline in the pipeline.
    pub fn is_inline(&self) -> bool {
        self.name.is_none()
    }

    /// The file line holding line `template_line` (1-based) of the text.
    pub fn file_line(&self, template_line: usize) -> u32 {
        let extra = u32::try_from(template_line.saturating_sub(1)).unwrap_or(0);
        if self.line == 0 {
            0
        } else {
            self.line.saturating_add(extra)
        }
    }
}

/// A layer file's contents, with the position of its text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFileRaw {
    text: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A layer file read and parsed once.
#[derive(Clone, Debug)]
struct LoadedFile {
    found: Found,
    text: String,
    description: Option<String>,
    line: u32,
    /// False when the file exists but could not be read or parsed (already reported).
    usable: bool,
}

/// Loads prompt layers through discovery, reading each file once and reporting its problems once.
#[derive(Debug)]
pub struct LayerLoader<'a> {
    discovery: &'a Discovery,
    cwd: &'a Path,
    files: HashMap<(LayerKind, String), Option<LoadedFile>>,
    sources: HashMap<PathBuf, SourceFile>,
}

impl<'a> LayerLoader<'a> {
    /// A loader searching `discovery`; paths in messages are shown relative to `cwd`.
    pub fn new(discovery: &'a Discovery, cwd: &'a Path) -> Self {
        LayerLoader {
            discovery,
            cwd,
            files: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// Resolves the layer `layer` of kind `kind`, written in `pipeline` (whose real path is
    /// `pipeline_path`). Problems are pushed to `diags`; `None` means the layer is unusable.
    pub fn resolve(
        &mut self,
        kind: LayerKind,
        layer: &Spanned<LayerRef>,
        pipeline: &SourceFile,
        pipeline_path: &Path,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<ResolvedLayer> {
        match &layer.value {
            LayerRef::Inline(file) => {
                self.sources
                    .entry(pipeline_path.to_path_buf())
                    .or_insert_with(|| pipeline.clone());
                Some(ResolvedLayer {
                    kind,
                    name: None,
                    text: file.text.clone(),
                    description: file.description.clone(),
                    path: pipeline_path.to_path_buf(),
                    level: None,
                    line: inline_text_line(&pipeline.text, layer.span),
                })
            }
            LayerRef::Named(name) => {
                if let Some(d) = check_layer_name(kind, name) {
                    diags.push(d.at(pipeline, layer.span));
                    return None;
                }
                let key = (kind, name.clone());
                if !self.files.contains_key(&key) {
                    let loaded = self.load(kind, name, diags);
                    self.files.insert(key.clone(), loaded);
                }
                match self.files.get(&key) {
                    Some(Some(file)) if file.usable => Some(ResolvedLayer {
                        kind,
                        name: Some(name.clone()),
                        text: file.text.clone(),
                        description: file.description.clone(),
                        path: file.found.path.clone(),
                        level: Some(file.found.level.clone()),
                        line: file.line,
                    }),
                    Some(Some(_)) => None,
                    _ => {
                        diags.push(self.not_found(kind, name, pipeline, layer.span));
                        None
                    }
                }
            }
        }
    }

    /// The source file a resolved layer's text was read from (for diagnostics).
    pub fn source_of(&self, layer: &ResolvedLayer) -> Option<&SourceFile> {
        self.sources.get(&layer.path)
    }

    /// Reads and parses the file of layer `name`; `None` when missing or invalid (reported).
    fn load(
        &mut self,
        kind: LayerKind,
        name: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<LoadedFile> {
        let found = self.discovery.find(&kind.rel_path(name))?;
        let shown = display_path(&found.path, self.cwd);
        let source = match read_source(&found.path, shown) {
            Ok(s) => s,
            Err(d) => {
                diags.push(d);
                return Some(empty_file(found));
            }
        };
        self.sources.insert(found.path.clone(), source.clone());
        match parse_yaml::<LayerFileRaw>(&source, "prompt layer") {
            Ok(raw) => Some(LoadedFile {
                found,
                line: raw.text.span.line,
                text: raw.text.value,
                description: raw.description,
                usable: true,
            }),
            Err(d) => {
                diags.push(d);
                Some(empty_file(found))
            }
        }
    }

    /// "prompt layer not found", with where it was looked for and similar names.
    fn not_found(
        &self,
        kind: LayerKind,
        name: &str,
        pipeline: &SourceFile,
        span: Span,
    ) -> Diagnostic {
        let rel = kind.rel_path(name);
        let mut d = Diagnostic::error(format!("unknown {kind} `{name}`"))
            .at(pipeline, span)
            .with_label(format!("no file `{}` was found", rel.display()));
        let names = self.discovery.names_in(Path::new(kind.dir()), "yaml");
        d = d.with_suggestions(name, names.iter().map(String::as_str));
        let looked: Vec<String> = self
            .discovery
            .roots()
            .iter()
            .map(|(level, root)| {
                format!(
                    "{} ({level})",
                    display_path(&root.join(&rel), self.cwd).display()
                )
            })
            .collect();
        d.with_help(format!("looked for: {}", looked.join(", ")))
    }
}

/// A placeholder for a file that exists but could not be used (its problem was reported).
fn empty_file(found: Found) -> LoadedFile {
    LoadedFile {
        found,
        text: String::new(),
        description: None,
        line: 0,
        usable: false,
    }
}

/// Layer names are file stems: no path separators, no parent references.
fn check_layer_name(kind: LayerKind, name: &str) -> Option<Diagnostic> {
    let bad = name.is_empty()
        || name.contains(['/', '\\'])
        || name.starts_with('.')
        || name.chars().any(char::is_control);
    bad.then(|| {
        Diagnostic::error(format!("invalid {kind} name `{name}`"))
            .with_label("a layer name is a file name without `.yaml`")
            .with_help(format!(
                "name a file in `{}/`, e.g. `{kind}: my-{kind}`, or write the layer inline as `{{ text: ... }}`",
                kind.dir()
            ))
    })
}

/// The line where the `text:` of an inline layer starting at `span` begins.
fn inline_text_line(source: &str, span: Span) -> u32 {
    if !span.is_known() {
        return 0;
    }
    let Some(rest) = source.get(span.offset..) else {
        return span.line;
    };
    let Some(at) = rest.find("text:") else {
        return span.line;
    };
    let before = &rest[..at];
    let newlines = u32::try_from(before.matches('\n').count()).unwrap_or(0);
    let after = rest[at + "text:".len()..]
        .lines()
        .next()
        .unwrap_or("")
        .trim_start();
    let block = after.starts_with('|') || after.starts_with('>');
    span.line + newlines + u32::from(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Discovery) {
        let tmp = tempfile::tempdir().unwrap();
        let roles = tmp.path().join("prompts/roles");
        std::fs::create_dir_all(&roles).unwrap();
        std::fs::write(
            roles.join("reviewer.yaml"),
            "description: reviews\ntext: |\n  You review code.\n  Carefully.\n",
        )
        .unwrap();
        std::fs::write(roles.join("broken.yaml"), "txt: oops\n").unwrap();
        let d = Discovery::new(tmp.path(), None, None);
        (tmp, d)
    }

    fn named(n: &str) -> Spanned<LayerRef> {
        Spanned::new(
            LayerRef::Named(n.into()),
            Span {
                line: 1,
                col: 7,
                offset: 6,
                len: n.len(),
            },
        )
    }

    #[test]
    fn loads_a_named_layer_with_its_level_and_line() {
        let (tmp, d) = setup();
        let mut loader = LayerLoader::new(&d, tmp.path());
        let pipe = SourceFile::new("p.yaml", "role: reviewer\n");
        let mut diags = Vec::new();
        let l = loader
            .resolve(
                LayerKind::Role,
                &named("reviewer"),
                &pipe,
                Path::new("p.yaml"),
                &mut diags,
            )
            .unwrap();
        assert!(diags.is_empty());
        assert_eq!(l.text, "You review code.\nCarefully.\n");
        assert_eq!(l.level, Some(Level::Pipeline));
        assert_eq!(l.line, 3);
        assert_eq!(l.file_line(2), 4);
        assert_eq!(l.description.as_deref(), Some("reviews"));
    }

    #[test]
    fn missing_layer_says_where_it_looked_and_suggests() {
        let (tmp, d) = setup();
        let mut loader = LayerLoader::new(&d, tmp.path());
        let pipe = SourceFile::new("p.yaml", "role: reviewr\n");
        let mut diags = Vec::new();
        let r = loader.resolve(
            LayerKind::Role,
            &named("reviewr"),
            &pipe,
            Path::new("p.yaml"),
            &mut diags,
        );
        assert!(r.is_none());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "unknown role `reviewr`");
        assert!(
            diags[0]
                .help
                .contains(&"did you mean `reviewer`?".to_owned())
        );
        assert!(diags[0].help[1].starts_with("looked for: prompts/roles/reviewr.yaml"));
    }

    #[test]
    fn a_broken_file_is_reported_once() {
        let (tmp, d) = setup();
        let mut loader = LayerLoader::new(&d, tmp.path());
        let pipe = SourceFile::new("p.yaml", "role: broken\n");
        let mut diags = Vec::new();
        for _ in 0..2 {
            assert!(
                loader
                    .resolve(
                        LayerKind::Role,
                        &named("broken"),
                        &pipe,
                        Path::new("p.yaml"),
                        &mut diags
                    )
                    .is_none()
            );
        }
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].message, "unknown key `txt`");
    }

    #[test]
    fn inline_layers_point_into_the_pipeline() {
        let text = "agents:\n  a:\n    task:\n      text: |\n        Do {{ x }}\n";
        let span = Span {
            line: 4,
            col: 7,
            offset: text.find("text:").unwrap(),
            len: 1,
        };
        assert_eq!(inline_text_line(text, span), 5);
        let flow = "agents: { a: { task: { text: \"hi\" } } }\n";
        let span = Span {
            line: 1,
            col: 22,
            offset: 21,
            len: 1,
        };
        assert_eq!(inline_text_line(flow, span), 1);
    }

    #[test]
    fn layer_names_cannot_be_paths() {
        let (tmp, d) = setup();
        let mut loader = LayerLoader::new(&d, tmp.path());
        let pipe = SourceFile::new("p.yaml", "role: ../x\n");
        let mut diags = Vec::new();
        assert!(
            loader
                .resolve(
                    LayerKind::Role,
                    &named("../x"),
                    &pipe,
                    Path::new("p.yaml"),
                    &mut diags
                )
                .is_none()
        );
        assert_eq!(diags[0].message, "invalid role name `../x`");
    }
}
