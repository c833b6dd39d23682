//! `write-file`: creates or replaces a file inside a writable repository.

use super::WriteFileArgs;
use crate::confine::Confined;
use crate::error::ToolFailure;
use crate::registry::CallCtx;

pub(super) fn run(
    repo: &Confined,
    args: WriteFileArgs,
    ctx: &CallCtx,
) -> Result<String, ToolFailure> {
    let max = ctx.limits.max_write_bytes;
    if args.content.len() > max {
        return Err(ToolFailure::new(format!(
            "content is {} bytes; write-file accepts at most {max}",
            args.content.len()
        )));
    }
    let target = repo.for_write(&args.path)?;
    let rel = &target.rel;
    let existed = match std::fs::metadata(&target.abs) {
        Ok(meta) if meta.is_dir() => {
            return Err(ToolFailure::new(format!("`{rel}` is a directory")));
        }
        // Writing to a named pipe blocks until something reads it; devices are not files.
        Ok(meta) if !meta.is_file() => {
            return Err(ToolFailure::new(format!(
                "`{rel}` is not a regular file (a named pipe, socket or device); write-file only writes files"
            )));
        }
        Ok(_) => true,
        Err(_) => false,
    };
    if let Some(parent) = target.abs.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            ToolFailure::new(format!("cannot create the directories of `{rel}`: {e}"))
        })?;
    }
    std::fs::write(&target.abs, args.content.as_bytes())
        .map_err(|e| ToolFailure::new(format!("cannot write `{rel}`: {e}")))?;
    tracing::debug!(repo = %repo.repo, path = %rel, bytes = args.content.len(), "file written");
    Ok(format!(
        "wrote {} bytes to `{rel}` ({})",
        args.content.len(),
        if existed { "replaced" } else { "new file" }
    ))
}
