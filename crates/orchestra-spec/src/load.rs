//! Reading YAML files into spec types, with limits (size, depth, aliases) and errors that point at
//! file:line:col.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostic, SourceFile, closest};
use crate::span::Span;

/// Largest YAML file read (4 MiB). Bigger files are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Deepest nesting of YAML collections accepted.
pub const MAX_DEPTH: usize = 64;
/// Most alias uses (`*name`) accepted in one file.
pub const MAX_ALIASES: usize = 1_000;
/// Most parser events (roughly: scalars and collection starts/ends) in one file, aliases
/// expanded; this is what stops "billion laughs" alias bombs.
pub const MAX_EVENTS: usize = 2_000_000;

/// Reads a UTF-8 text file of at most [`MAX_FILE_BYTES`]; `shown` is the path used in messages.
pub fn read_source(path: &Path, shown: impl Into<PathBuf>) -> Result<SourceFile, Diagnostic> {
    let shown = shown.into();
    let fail =
        |what: String| Diagnostic::error(format!("cannot read `{}`: {what}", shown.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(io_reason(&e)))?;
    if meta.is_dir() {
        return Err(fail("it is a directory".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is {} bytes, more than the limit of {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(io_reason(&e)))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            // Shown where it is, in the text with the bad bytes replaced (the same up to there).
            let valid = e.utf8_error().valid_up_to();
            let lossy = SourceFile::new(
                shown.clone(),
                String::from_utf8_lossy(e.as_bytes()).into_owned(),
            );
            let before = &lossy.text[..valid];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let span = Span {
                line: u32::try_from(before.matches('\n').count() + 1).unwrap_or(u32::MAX),
                col: u32::try_from(before[line_start..].chars().count() + 1).unwrap_or(u32::MAX),
                offset: valid,
                len: '\u{fffd}'.len_utf8(),
            };
            return Err(fail("it is not UTF-8 text".into())
                .at(&lossy, span)
                .with_label("this byte is not UTF-8")
                .with_help("save the file as UTF-8"));
        }
    };
    Ok(SourceFile::new(shown, text))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Parses a YAML document of `source` into `T`. `what` names the kind of file in messages
/// ("pipeline", "condition", ...).
pub fn parse_yaml<T: DeserializeOwned>(source: &SourceFile, what: &str) -> Result<T, Diagnostic> {
    let blank = source
        .text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Err(Diagnostic::error(format!("the {what} file is empty")).in_file(source));
    }
    let budget = serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        max_aliases: MAX_ALIASES,
        max_events: MAX_EVENTS,
    };
    let options = serde_saphyr::options! {
        with_snippet: false,
        budget: budget,
    };
    serde_saphyr::from_str_with_options::<T>(&source.text, options)
        .map_err(|e| diagnostic_from_yaml(&e, source, what))
}

/// Turns a YAML parse/deserialize error into a diagnostic with a position and hints.
fn diagnostic_from_yaml(err: &serde_saphyr::Error, source: &SourceFile, what: &str) -> Diagnostic {
    use serde_saphyr::Error as E;
    let span = err.location().map(Span::from_location).unwrap_or_default();
    let base = |msg: String| Diagnostic::error(msg).at(source, span);
    match err.without_snippet() {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut d = base(format!("unknown key `{field}`"))
                .with_label(format!("not a key of this {}", context_word(what)));
            if let [first, ..] = closest(field, expected.iter().copied()).as_slice() {
                d = d.with_help(format!("did you mean `{first}`?"));
            }
            d.with_help(format!("expected one of: {}", expected.join(", ")))
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let mut d = base(format!("unknown value `{variant}`"));
            if let [first, ..] = closest(variant, expected.iter().copied()).as_slice() {
                d = d.with_help(format!("did you mean `{first}`?"));
            }
            d.with_help(format!("expected one of: {}", expected.join(", ")))
        }
        E::SerdeMissingField { field, .. } => {
            base(format!("missing key `{field}`")).with_label(format!("`{field}` is required here"))
        }
        E::DuplicateMappingKey { key: Some(key), .. } => base(format!("duplicate key `{key}`"))
            .with_label("already given above in the same mapping"),
        E::InvalidScalar { ty, .. } => base(format!("expected {}", scalar_word(ty))),
        E::Unexpected { expected, .. } => base(match *expected {
            "mapping start" => "expected a mapping (`key: value` entries) here".to_owned(),
            "sequence start" => "expected a list here".to_owned(),
            other => format!("expected {other}"),
        }),
        other => {
            let text = strip_location(&other.render());
            base(reword(&text, what))
        }
    }
}

/// Describes a scalar type of serde-saphyr's "invalid u32" errors in words.
fn scalar_word(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "bool" => "`true` or `false`".into(),
        "char" => "a single character".into(),
        other => format!("a value of type {other}"),
    }
}

fn context_word(what: &str) -> &str {
    match what {
        "pipeline" => "part of the pipeline",
        _ => what,
    }
}

/// Removes serde-saphyr's " at line X, column Y" suffix (the position is shown separately).
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(", column ") => msg[..i].to_owned(),
        _ => msg.to_owned(),
    }
}

/// Makes parser jargon readable.
fn reword(msg: &str, what: &str) -> String {
    if msg.contains("budget breached") || msg.contains("recursion limit exceeded") {
        if msg.contains("Depth") || msg.contains("recursion") {
            return format!(
                "the {what} file is nested too deeply (the limit is {MAX_DEPTH} levels)"
            );
        }
        if msg.contains("Alias") || msg.contains("Events") || msg.contains("Nodes") {
            return format!(
                "the {what} file expands to too much data (aliases or size over the limit of {MAX_EVENTS} events); alias bombs are refused"
            );
        }
        return format!("the {what} file is too large ({msg})");
    }
    if msg.to_lowercase().contains("alias") && msg.to_lowercase().contains("limit") {
        return format!("the {what} file uses too many aliases: {msg}");
    }
    msg.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineSpec;

    fn parse(text: &str) -> Result<PipelineSpec, Diagnostic> {
        parse_yaml(&SourceFile::new("p.yaml", text), "pipeline")
    }

    #[test]
    fn unknown_key_names_position_and_suggests() {
        let err = parse("name: p\nagents:\n  a: { rolee: r }\ngraph: []\n").unwrap_err();
        assert_eq!(err.message, "unknown key `rolee`");
        assert_eq!(err.location().as_deref(), Some("p.yaml:3:8"));
        assert_eq!(err.help[0], "did you mean `role`?");
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut y = String::from(
            "name: p\ngraph: []\nagents: {}\nlimits:\n  x0: &a0 [1,1,1,1,1,1,1,1,1,1]\n",
        );
        for i in 1..12 {
            y.push_str(&format!(
                "  x{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(",")
            ));
        }
        let t = std::time::Instant::now();
        let err = parse(&y).unwrap_err();
        assert!(t.elapsed().as_secs() < 5);
        assert!(err.location().is_some(), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let y = format!(
            "name: p\ngraph: []\nagents:\n  a:\n    output:\n      schema: {}1{}\n",
            "[".repeat(500),
            "]".repeat(500)
        );
        let err = parse(&y).unwrap_err();
        assert!(err.message.contains("nested too deeply"), "{}", err.message);
    }
}
