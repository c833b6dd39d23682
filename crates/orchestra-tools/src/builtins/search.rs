//! `search-code`: lines of text files matching a literal string or a regular expression, as
//! `path:line: text`.
//!
//! Patterns are literal by default (models often search for code such as `foo(` that is not a
//! valid regular expression); `regex: true` uses the `regex` crate, whose matching time is linear
//! in the input, so a hostile pattern cannot hang the search.

use std::ops::ControlFlow;
use std::path::Path;

use super::walk::{End, Kind, Walker};
use super::{SearchCodeArgs, looks_binary};
use crate::confine::Confined;
use crate::error::ToolFailure;
use crate::registry::CallCtx;

const DEFAULT_MAX: u32 = 100;
const HARD_MAX: u32 = 1000;
/// Longest line text shown per match, in bytes.
const MAX_LINE: usize = 300;

/// Why a search stopped early.
enum Stop {
    Results,
    Output,
}

pub(super) fn run(
    repo: &Confined,
    args: SearchCodeArgs,
    ctx: &CallCtx,
) -> Result<String, ToolFailure> {
    if args.pattern.is_empty() {
        return Err(ToolFailure::new("`pattern` is empty"));
    }
    let source = if args.regex.unwrap_or(false) {
        args.pattern.clone()
    } else {
        regex::escape(&args.pattern)
    };
    let re = regex::RegexBuilder::new(&source)
        .case_insensitive(args.ignore_case.unwrap_or(false))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ToolFailure::new(format!("invalid regular expression: {e}")))?;

    let path = args.path.as_deref().unwrap_or("");
    let target = repo.existing(path)?;
    let max = args.max_results.unwrap_or(DEFAULT_MAX).clamp(1, HARD_MAX) as usize;
    let budget = ctx.limits.max_output.saturating_sub(512);
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut stop: Option<Stop> = None;
    let mut files = 0usize;

    let mut search_file = |file: &Path| -> ControlFlow<()> {
        let Some(text) = read_text(file, ctx.limits.max_file_bytes) else {
            return ControlFlow::Continue(());
        };
        files += 1;
        let rel = repo.rel_of(file);
        for (i, line) in text.lines().enumerate() {
            if !re.is_match(line) {
                continue;
            }
            if lines.len() == max {
                stop = Some(Stop::Results);
                return ControlFlow::Break(());
            }
            let shown = clip(line.trim(), MAX_LINE);
            let entry = format!("{rel}:{}: {shown}", i + 1);
            if bytes + entry.len() + 1 > budget {
                stop = Some(Stop::Output);
                return ControlFlow::Break(());
            }
            bytes += entry.len() + 1;
            lines.push(entry);
        }
        ControlFlow::Continue(())
    };

    let end = if target.abs.is_dir() {
        Walker::new(&repo.root).walk(&target.abs, ctx.deadline, &mut |entry| {
            if entry.kind == Kind::File {
                search_file(&entry.path)
            } else {
                ControlFlow::Continue(())
            }
        })
    } else {
        let _ = search_file(&target.abs);
        End::Done
    };

    if lines.is_empty() && end == End::Done {
        return Ok(format!(
            "no matches for `{}` in `{}` ({files} files searched)",
            args.pattern, target.rel
        ));
    }
    let mut out = lines.join("\n");
    let note = match (stop, end) {
        (Some(Stop::Results), _) => Some(format!(
            "[stopped after {max} matches; narrow the search with `path` or a more specific \
             pattern, or raise `max_results` (at most {HARD_MAX})]"
        )),
        (Some(Stop::Output), _) => Some(format!(
            "[stopped after {} matches at the output limit; narrow the search]",
            lines.len()
        )),
        (None, End::OutOfTime) => Some(format!(
            "[search stopped at the time limit after {files} files; narrow it with `path`]"
        )),
        _ => None,
    };
    if let Some(note) = note {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&note);
    }
    Ok(out)
}

/// The text of a file worth searching: not too big, not binary; invalid UTF-8 is shown lossily.
fn read_text(path: &Path, max_bytes: u64) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > max_bytes {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if looks_binary(&bytes) {
        return None;
    }
    Some(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("ééé", 3), "é…");
    }
}
