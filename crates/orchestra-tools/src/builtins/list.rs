//! `list-files`: a directory's entries, or every file below it, as sorted root-relative paths.

use std::ops::ControlFlow;

use super::ListFilesArgs;
use super::walk::{End, Kind, Walker};
use crate::confine::Confined;
use crate::error::ToolFailure;
use crate::registry::CallCtx;

const DEFAULT_MAX: u32 = 1000;
const HARD_MAX: u32 = 10_000;

pub(super) fn run(
    repo: &Confined,
    args: ListFilesArgs,
    ctx: &CallCtx,
) -> Result<String, ToolFailure> {
    let path = args.path.as_deref().unwrap_or("");
    let target = repo.existing(path)?;
    if !target.abs.is_dir() {
        // A file lists as itself.
        return Ok(target.rel);
    }
    let max = args.max.unwrap_or(DEFAULT_MAX).clamp(1, HARD_MAX) as usize;
    let walker = Walker::new(&repo.root);
    let mut lines: Vec<String> = Vec::new();
    let mut more = false;
    let mut end = End::Done;
    if args.recursive.unwrap_or(false) {
        end = walker.walk(&target.abs, ctx.deadline, &mut |entry| {
            if lines.len() == max {
                more = true;
                return ControlFlow::Break(());
            }
            lines.push(repo.rel_of(&entry.path));
            ControlFlow::Continue(())
        });
    } else {
        let children = walker
            .children(&target.abs)
            .map_err(|e| ToolFailure::new(format!("cannot list `{}`: {e}", target.rel)))?;
        more = children.len() > max;
        lines.extend(children.iter().take(max).map(|entry| {
            let rel = repo.rel_of(&entry.path);
            if entry.kind == Kind::Dir {
                format!("{rel}/")
            } else {
                rel
            }
        }));
    }
    if lines.is_empty() && end == End::Done {
        return Ok(format!("[`{}` is empty]", target.rel));
    }
    let mut out = lines.join("\n");
    if more {
        out.push_str(&format!(
            "\n[{} entries shown; there are more: list a subdirectory or raise `max` (at most {HARD_MAX})]",
            lines.len()
        ));
    }
    if end == End::OutOfTime {
        out.push_str(&format!(
            "\n[listing stopped at the time limit after {} entries; list a subdirectory]",
            lines.len()
        ));
    }
    Ok(out)
}
