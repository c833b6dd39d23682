//! Embeds the shipped examples (`pipelines/examples/`, every file under it) into the binary for
//! `orchestra init`: `$OUT_DIR/examples.rs` holds `EXAMPLE_FILES`, one `(path, text,
//! executable)` per file, sorted by path. Cargo runs this again whenever anything under that
//! directory changes, so the list cannot go stale; `cmd::init`'s tests check it against the
//! directory too.

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let examples = manifest.join("../../pipelines/examples");
    println!("cargo::rerun-if-changed={}", examples.display());
    let mut files = Vec::new();
    walk(&examples, &examples, &mut files)?;
    files.sort();
    let mut code =
        String::from("/// The files of `pipelines/examples/`: (path, text, executable).\n");
    code.push_str("pub(crate) const EXAMPLE_FILES: &[(&str, &str, bool)] = &[\n");
    for (rel, abs, exec) in &files {
        println!("cargo::rerun-if-changed={}", abs.display());
        writeln!(
            code,
            "    ({rel:?}, include_str!({:?}), {exec}),",
            abs.display()
        )?;
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("examples.rs");
    fs::write(out, code)?;
    Ok(())
}

/// Every file under `dir`, as (path relative to `root` with `/`, absolute path, executable).
fn walk(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, files)?;
        } else {
            let rel = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            let abs = fs::canonicalize(&path)?;
            files.push((rel, abs, meta.permissions().mode() & 0o111 != 0));
        }
    }
    Ok(())
}
