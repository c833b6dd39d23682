//! `orchestra init`: scaffold a project in the current directory from one of the shipped
//! examples (`pipelines/examples/`, embedded by the build script): `orchestra.yaml`, the
//! pipeline, its scripted responses, and the prompt layers, conditions and other files it uses.
//! Nothing is overwritten: when any of those files exists, nothing is written.

use std::io::{self, Write as _};
use std::fmt::Write as _;
use std::path::Path;

use orchestra_graph::{LoadOptions, load};

use crate::cli::Ctx;
use crate::{diag, exit};

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The project file written beside the example.
const PROJECT_FILE: &str = include_str!("init/orchestra.yaml");

/// The example scaffolded without `--example`.
const DEFAULT_EXAMPLE: &str = "hello";

/// Scaffold a new project in the current directory from a shipped example.
///
/// Writes `orchestra.yaml`, the example's pipeline (`NAME.yaml`), its scripted responses
/// (`NAME.responses.yaml`: the pipeline runs offline) and the prompt layers, conditions and
/// other files it uses, then prints the command that runs it. Refuses (exit 2, naming them,
/// writing nothing) when any of these files exists.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The example to scaffold (default: hello; `--list` shows them all).
    #[arg(long, value_name = "NAME")]
    example: Option<String>,
    /// List the examples and what they do, and write nothing.
    #[arg(long, conflicts_with = "example")]
    list: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> io::Result<u8> {
    if args.list {
        let mut out = io::stdout().lock();
        for name in examples() {
            let about = pipeline_text(name).and_then(description).unwrap_or("");
            writeln!(out, "{name:<16} {about}")?;
        }
        return Ok(exit::SUCCESS);
    }
    let name = args.example.as_deref().unwrap_or(DEFAULT_EXAMPLE);
    if pipeline_text(name).is_none() {
        let names = examples();
        let mut err = io::stderr().lock();
        write!(err, "error: there is no example `{name}`")?;
        if let Some(h) = orchestra_spec::did_you_mean(name, names.iter().copied()) {
            write!(err, "; {h}")?;
        }
        writeln!(err, "\n  examples: {}", names.join(", "))?;
        return Ok(exit::BAD_INPUT);
    }
    let mut files: Vec<(&str, &str, bool)> = vec![("orchestra.yaml", PROJECT_FILE, false)];
    files.extend(files_of(name));
    let taken: Vec<&str> = files
        .iter()
        .map(|(rel, _, _)| *rel)
        .filter(|rel| ctx.cwd.join(rel).symlink_metadata().is_ok())
        .collect();
    if !taken.is_empty() {
        writeln!(
            io::stderr(),
            "error: `orchestra init` would overwrite {}; nothing was written (run it in an empty directory)",
            taken.join(", ")
        )?;
        return Ok(exit::BAD_INPUT);
    }
    let mut out = io::stdout().lock();
    for (rel, text, executable) in &files {
        // In this repository the examples sit in `pipelines/examples/`; in the new project they
        // sit at its root, so paths and commands naming them drop that prefix.
        let text = text.replace(EXAMPLES_DIR, "");
        write_file(&ctx.cwd.join(rel), &text, *executable)?;
        writeln!(out, "wrote {rel}")?;
    }
    let pipeline = format!("{name}.yaml");
    let opts = LoadOptions {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        ..LoadOptions::default()
    };
    let compiled = match load(&ctx.cwd.join(&pipeline), &opts) {
        Ok(c) => c,
        Err(diags) => {
            // The examples are compiled by the tests; this is a broken build.
            diag::print(&mut io::stderr().lock(), &diags)?;
            return Ok(exit::INTERNAL);
        }
    };
    let mut command = format!("orchestra run {pipeline}");
    for i in compiled.inputs.iter().filter(|i| i.default.is_none() && i.is_required()) {
        let _ = write!(command, " --input {}=...", i.name);
    }
    writeln!(out, "\nrun it (offline: a scripted provider answers):\n  {command}")?;
    writeln!(
        out,
        "on a real model: {command} --provider anthropic   (with ANTHROPIC_API_KEY set)"
    )?;
    Ok(exit::SUCCESS)
}

/// Where the examples are in this repository (paths in their files name it).
const EXAMPLES_DIR: &str = "pipelines/examples/";

/// The names of the shipped examples: the pipelines at the top of `pipelines/examples/`.
pub(crate) fn examples() -> Vec<&'static str> {
    EXAMPLE_FILES
        .iter()
        .filter_map(|(rel, _, _)| {
            let stem = rel.strip_suffix(".yaml")?;
            (!stem.contains('/') && !stem.ends_with(".responses")).then_some(stem)
        })
        .collect()
}

fn pipeline_text(name: &str) -> Option<&'static str> {
    let file = format!("{name}.yaml");
    EXAMPLE_FILES
        .iter()
        .find(|(rel, _, _)| *rel == file)
        .map(|(_, text, _)| *text)
}

/// The top-level `description:` of a pipeline's text.
fn description(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("description:"))
        .map(str::trim)
}

/// The files example `name` needs: its pipeline and responses, then every other file (not
/// another example's pipeline or responses) whose name (without extension) is mentioned by a
/// file already chosen — its prompt layers, conditions, sub-pipelines and theirs — or whose
/// directory a chosen file names by its path (`pipelines/examples/notes`).
fn files_of(name: &str) -> Vec<(&'static str, &'static str, bool)> {
    let own = [format!("{name}.yaml"), format!("{name}.responses.yaml")];
    let top_level = |rel: &str| !rel.contains('/') && rel.ends_with(".yaml");
    let mut chosen: Vec<(&str, &str, bool)> = EXAMPLE_FILES
        .iter()
        .filter(|(rel, _, _)| own.iter().any(|o| o == rel))
        .copied()
        .collect();
    let mut rest: Vec<(&str, &str, bool)> = EXAMPLE_FILES
        .iter()
        .filter(|(rel, _, _)| !top_level(rel))
        .copied()
        .collect();
    loop {
        let before = rest.len();
        let mut i = 0;
        while i < rest.len() {
            let stem = file_stem(rest[i].0);
            let dir = rest[i].0.split_once('/').map(|(d, _)| format!("{EXAMPLES_DIR}{d}"));
            let named = |text: &str| {
                mentions(text, stem) || dir.as_deref().is_some_and(|d| mentions(text, d))
            };
            if chosen.iter().any(|(_, text, _)| named(text)) {
                chosen.push(rest.remove(i));
            } else {
                i += 1;
            }
        }
        if rest.len() == before {
            break;
        }
    }
    chosen.sort_by_key(|(rel, _, _)| *rel);
    chosen
}

/// `prompts/tasks/write-report.yaml` -> `write-report`.
fn file_stem(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.split('.').next().unwrap_or(name)
}

/// Whether `text` holds `word` on its own (not inside a longer name).
fn mentions(text: &str, word: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    !word.is_empty()
        && text.match_indices(word).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
        })
}

fn write_file(path: &Path, text: &str, executable: bool) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    if executable {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Where the examples are in this source tree.
    fn source_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/examples")
    }

    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }

    #[test]
    fn the_embedded_examples_are_those_of_the_source_tree() {
        let mut on_disk = Vec::new();
        walk(&source_dir(), &source_dir(), &mut on_disk);
        on_disk.sort();
        let embedded: Vec<(String, String)> = EXAMPLE_FILES
            .iter()
            .map(|(rel, text, _)| ((*rel).to_owned(), (*text).to_owned()))
            .collect();
        assert_eq!(
            embedded, on_disk,
            "the binary's examples are stale: rebuild (the build script embeds pipelines/examples/)"
        );
        assert!(examples().contains(&DEFAULT_EXAMPLE));
    }

    #[test]
    fn an_example_takes_the_files_it_names_and_not_the_others() {
        let sdlc: Vec<&str> = files_of("sdlc").iter().map(|(r, _, _)| *r).collect();
        assert!(sdlc.contains(&"sdlc.yaml") && sdlc.contains(&"sdlc.responses.yaml"));
        assert!(sdlc.contains(&"prompts/tasks/implement-feature.yaml"), "{sdlc:?}");
        assert!(sdlc.contains(&"prompts/roles/qa-engineer.yaml"), "{sdlc:?}");
        assert!(!sdlc.iter().any(|r| r.contains("site")), "{sdlc:?}");
        assert!(!sdlc.contains(&"hello.yaml"));
        let site: Vec<&str> = files_of("build-website").iter().map(|(r, _, _)| *r).collect();
        assert!(site.contains(&"conditions/html-check.yaml"), "{site:?}");
        assert!(!site.iter().any(|r| r.contains("implement-feature")), "{site:?}");
    }

    #[test]
    fn a_mention_is_a_whole_name() {
        assert!(mentions("task: write-report\n", "write-report"));
        assert!(!mentions("task: write-report-2\n", "write-report"));
        assert!(!mentions("rewrite-report", "write-report"));
        assert!(mentions("call: phases/x.yaml", "x"));
    }
}
