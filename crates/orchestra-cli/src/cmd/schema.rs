//! `orchestra schema`: the JSON Schema of pipeline files (or of `orchestra.yaml`, condition rule
//! files and prompt layer files), generated from the types, for editors.

use std::io::{self, Write as _};

use crate::cli::Ctx;
use crate::exit;

/// Print a JSON Schema generated from Orchestra's file types (default: pipeline files).
///
/// Point your editor at it for completion and checking, e.g. with the YAML language server:
/// `# yaml-language-server: $schema=../schema/pipeline.schema.json`.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub(crate) struct Args {
    /// The schema of the project file, `orchestra.yaml`.
    #[arg(long)]
    project: bool,
    /// The schema of condition rule files, `conditions/NAME.yaml`.
    #[arg(long)]
    condition: bool,
    /// The schema of prompt layer files, `prompts/*/NAME.yaml`.
    #[arg(long)]
    layer: bool,
}

pub(crate) fn run(args: Args, _ctx: &Ctx) -> io::Result<u8> {
    let schema = if args.project {
        orchestra_spec::project_schema()
    } else if args.condition {
        serde_json::to_value(schemars::schema_for!(orchestra_spec::ConditionFile))?
    } else if args.layer {
        serde_json::to_value(schemars::schema_for!(orchestra_spec::LayerFile))?
    } else {
        orchestra_spec::pipeline_schema()
    };
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &schema)?;
    writeln!(out)?;
    out.flush()?;
    Ok(exit::SUCCESS)
}
