//! `read-file`: a text file (or a range of its lines), refusing binary files, within the output cap.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use super::{ReadFileArgs, looks_binary};
use crate::confine::Confined;
use crate::error::ToolFailure;
use crate::registry::CallCtx;

/// Room kept under the output cap for the closing note.
const NOTE_ROOM: usize = 256;

pub(super) fn run(
    repo: &Confined,
    args: ReadFileArgs,
    ctx: &CallCtx,
) -> Result<String, ToolFailure> {
    let target = repo.existing(&args.path)?;
    let rel = &target.rel;
    let meta = std::fs::metadata(&target.abs)
        .map_err(|e| ToolFailure::new(format!("cannot read `{rel}`: {e}")))?;
    if meta.is_dir() {
        return Err(ToolFailure::new(format!(
            "`{rel}` is a directory; use `{}:list-files` to see what it holds",
            repo.repo
        )));
    }
    if !meta.is_file() {
        // Opening a named pipe would block until something writes to it (forever, on a thread
        // the runtime then waits for at exit); devices and sockets are not text either.
        return Err(ToolFailure::new(format!(
            "`{rel}` is not a regular file (a named pipe, socket or device); read-file only reads files"
        )));
    }
    let start = args.start_line.unwrap_or(1).max(1);
    if let Some(end) = args.end_line
        && end < start
    {
        return Err(ToolFailure::new(format!(
            "end_line ({end}) is before start_line ({start})"
        )));
    }
    let file = File::open(&target.abs)
        .map_err(|e| ToolFailure::new(format!("cannot read `{rel}`: {e}")))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let head = reader
        .fill_buf()
        .map_err(|e| ToolFailure::new(format!("cannot read `{rel}`: {e}")))?;
    if looks_binary(head) {
        return Err(ToolFailure::new(format!(
            "`{rel}` is a binary file ({} bytes); read-file only shows text",
            meta.len()
        )));
    }

    let budget = ctx.limits.max_output.saturating_sub(NOTE_ROOM).max(1);
    let scan_limit = ctx.limits.max_file_bytes;
    let mut out: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    let mut lineno: u64 = 0;
    let mut last_shown: u64 = 0;
    let mut cut_at: Option<u64> = None;
    let mut long_line: Option<String> = None;
    let mut scanned: u64 = 0;
    let mut total_known = true;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(scan_limit.saturating_sub(scanned).max(1))
            .read_until(b'\n', &mut line)
            .map_err(|e| ToolFailure::new(format!("cannot read `{rel}`: {e}")))?;
        if n == 0 {
            break;
        }
        scanned += n as u64;
        lineno += 1;
        let wanted = lineno >= start && args.end_line.is_none_or(|end| lineno <= end);
        if wanted && cut_at.is_none() {
            if out.len() + line.len() > budget && out.is_empty() {
                // One line longer than the whole budget: show its start rather than nothing.
                let mut end = budget.min(line.len());
                while end > 0 && (line[end] & 0b1100_0000) == 0b1000_0000 {
                    end -= 1;
                }
                out.extend_from_slice(&line[..end]);
                last_shown = lineno;
                long_line = Some(format!(
                    "\n[line {lineno} is {} bytes long; only its first {end} bytes are shown]",
                    line.len()
                ));
                cut_at = Some(lineno + 1);
            } else if out.len() + line.len() > budget {
                cut_at = Some(lineno);
            } else {
                out.extend_from_slice(&line);
                last_shown = lineno;
            }
        }
        // Lines past the range are still counted (up to the scan limit) so the note can say
        // how long the file is.
        if scanned >= scan_limit {
            total_known = scanned >= meta.len();
            break;
        }
    }
    if meta.len() == 0 {
        return Ok(format!("[`{rel}` is empty]"));
    }
    if lineno < start {
        return Err(ToolFailure::new(format!(
            "start_line {start} is past the end of `{rel}` ({lineno} lines)"
        )));
    }

    let mut text = match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => {
            let mut s = String::from_utf8_lossy(e.as_bytes()).into_owned();
            s.push_str("\n[the file is not valid UTF-8; invalid bytes are shown as \u{fffd}]");
            s
        }
    };
    if let Some(long) = long_line {
        text.push_str(&long);
    }
    let total = if total_known {
        format!("{lineno}")
    } else {
        format!("more than {lineno}")
    };
    let note = if let Some(cut) = cut_at {
        Some(format!(
            "[showing lines {start}-{last_shown} of {total}: output limit reached; \
             continue with start_line={cut}]"
        ))
    } else if start > 1 || last_shown < lineno || !total_known {
        Some(format!("[showing lines {start}-{last_shown} of {total}]"))
    } else {
        None
    };
    if let Some(note) = note {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&note);
    }
    Ok(text)
}
