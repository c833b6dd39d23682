//! Diagnostics about input files: what is wrong, where (file:line:col and the span), and what
//! would fix it. Rendering shows the source line with the offending span underlined.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::span::Span;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The input cannot be used.
    Error,
    /// The input works but is probably not what was meant.
    Warning,
}

/// A source file as read, kept so diagnostics can show its lines.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as it should be shown to the user.
    pub path: PathBuf,
    /// The file's text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// Creates a source file.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// One problem found in the input.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, lowercase, e.g. "unknown agent `critc`".
    pub message: String,
    /// The file it is about, with its text when it was read.
    pub source: Option<SourceFile>,
    /// Where in the file.
    pub span: Option<Span>,
    /// A short note under the underlined span, e.g. "not an agent of this pipeline".
    pub label: Option<String>,
    /// Hints: "did you mean ...", what was expected, where files were looked for.
    pub help: Vec<String>,
}

impl Diagnostic {
    /// An error with a message only.
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            source: None,
            span: None,
            label: None,
            help: Vec::new(),
        }
    }

    /// A warning with a message only.
    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// Points the diagnostic at a span of a file.
    pub fn at(mut self, source: &SourceFile, span: Span) -> Self {
        self.source = Some(source.clone());
        self.span = span.is_known().then_some(span);
        self
    }

    /// Names the file without a position.
    pub fn in_file(mut self, source: &SourceFile) -> Self {
        self.source = Some(source.clone());
        self
    }

    /// Adds the label shown under the span.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }

    /// Adds "did you mean ..." for the closest candidates, if any is close.
    pub fn with_suggestions<'a>(
        mut self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        if let Some(h) = did_you_mean(name, candidates) {
            self.help.push(h);
        }
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` (or `file`), if the diagnostic has a file.
    pub fn location(&self) -> Option<String> {
        let src = self.source.as_ref()?;
        Some(match self.span {
            Some(s) => format!("{}:{}:{}", src.path.display(), s.line, s.col),
            None => src.path.display().to_string(),
        })
    }

    /// Renders the diagnostic the way the CLI prints it:
    ///
    /// ```text
    /// error: unknown agent `critc`
    ///   --> pipelines/x.yaml:12:15
    ///    |
    /// 12 |   - { from: critc, to: END }
    ///    |             ^^^^^ not an agent of this pipeline
    ///    |
    ///    = help: did you mean `critic`?
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}: {}", self.message);
        let line_text = match (&self.source, self.span) {
            (Some(src), Some(span)) => line_of(&src.text, span.line),
            _ => None,
        };
        let gutter = match (self.span, &line_text) {
            (Some(s), Some(_)) => s.line.to_string().len(),
            _ => 1,
        };
        let pad = " ".repeat(gutter);
        if let Some(loc) = self.location() {
            let _ = writeln!(out, "{pad}--> {loc}");
        }
        if let (Some(span), Some(text)) = (self.span, line_text) {
            let col = usize::try_from(span.col.max(1) - 1).unwrap_or(0);
            let shown: String = text
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            let avail = shown.chars().count().saturating_sub(col).max(1);
            let width = span_width(text, col, span.len).clamp(1, avail);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", span.line, shown.trim_end());
            let marker = format!("{}{}", " ".repeat(col), "^".repeat(width));
            match &self.label {
                Some(l) => {
                    let _ = writeln!(out, "{pad} | {marker} {l}");
                }
                None => {
                    let _ = writeln!(out, "{pad} | {marker}");
                }
            }
        } else if let Some(l) = &self.label {
            let _ = writeln!(out, "{pad} = note: {l}");
        }
        for h in &self.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

/// The 1-based line `n` of `text`.
fn line_of(text: &str, n: u32) -> Option<&str> {
    let idx = usize::try_from(n).ok()?.checked_sub(1)?;
    text.lines().nth(idx)
}

/// Width in characters of a span of `len` bytes starting at character column `col` of `line`.
fn span_width(line: &str, col: usize, len: usize) -> usize {
    let start = line.char_indices().nth(col).map_or(line.len(), |(i, _)| i);
    let end = (start + len).min(line.len());
    let end = (end..=line.len())
        .find(|&e| line.is_char_boundary(e))
        .unwrap_or(line.len());
    line[start..end].chars().count()
}

/// "did you mean `a`?" (or "`a` or `b`") for the candidates close to `name`, best first.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let close = closest(name, candidates);
    match close.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => {
            let quoted: Vec<String> = many.iter().map(|c| format!("`{c}`")).collect();
            Some(format!("did you mean one of {}?", quoted.join(", ")))
        }
    }
}

/// Up to three candidates similar to `name` (Jaro-Winkler above 0.8, or one containing the
/// other), best first.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let lname = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != name)
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let mut score = strsim::jaro_winkler(&lname, &lc);
            if lc == lname {
                score = 1.0;
            } else if lname.len() >= 3 && (lc.contains(&lname) || lname.contains(&lc)) {
                score = score.max(0.85);
            }
            (score > 0.8).then_some((score, c))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

/// A path shown relative to `base` when it lies under it.
pub fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let cands = [
            "security-reviewer",
            "architecture-reviewer",
            "critic",
            "synthesizer",
        ];
        assert_eq!(closest("critc", cands), vec!["critic"]);
        assert_eq!(closest("securty-reviewer", cands)[0], "security-reviewer");
        assert!(closest("banana", cands).is_empty());
        assert_eq!(
            did_you_mean("synthesiser", cands).as_deref(),
            Some("did you mean `synthesizer`?")
        );
    }

    #[test]
    fn renders_the_line_with_a_caret_under_the_span() {
        let src = SourceFile::new("p.yaml", "name: x\nagents:\n  a: { rolee: r }\n");
        let d = Diagnostic::error("unknown key `rolee`")
            .at(
                &src,
                Span {
                    line: 3,
                    col: 8,
                    offset: 17,
                    len: 5,
                },
            )
            .with_label("not a key of an agent")
            .with_help("did you mean `role`?");
        assert_eq!(
            d.render(),
            "error: unknown key `rolee`\n --> p.yaml:3:8\n  |\n3 |   a: { rolee: r }\n  |        ^^^^^ not a key of an agent\n  = help: did you mean `role`?\n"
        );
    }
}
