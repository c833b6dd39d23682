//! Printing diagnostics the way every subcommand does: each rendered with its source line, then
//! a one-line summary.

use std::io::{self, Write};

use orchestra_spec::Diagnostic;

/// Writes every diagnostic, separated by blank lines.
pub(crate) fn print(w: &mut impl Write, diags: &[Diagnostic]) -> io::Result<()> {
    for d in diags {
        write!(w, "{}", d.render())?;
        writeln!(w)?;
    }
    Ok(())
}

/// "2 errors and 1 warning", "1 warning", ...
pub(crate) fn counts(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, what: &str| {
        if n == 1 {
            format!("1 {what}")
        } else {
            format!("{n} {what}s")
        }
    };
    match (errors, warnings) {
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
    }
}
