//! The command line: global flags, logging setup, the environment every subcommand gets, and
//! the mapping of outcomes to exit codes.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};

use crate::cmd::Command;
use crate::exit;

/// Orchestra: declarative multi-agent pipelines with checkpoints, resume and replay.
#[derive(Debug, Parser)]
#[command(
    name = "orchestra",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = exit::help()
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
    /// Log more (`-v` debug, `-vv` trace). `RUST_LOG` overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
}

/// What every subcommand may use: the current directory and the user's Orchestra directory.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The current directory.
    pub(crate) cwd: PathBuf,
    /// `$ORCHESTRA_HOME`, else `$HOME/.orchestra`.
    pub(crate) home: Option<PathBuf>,
}

impl Ctx {
    fn from_env() -> io::Result<Ctx> {
        let cwd = std::env::current_dir()?;
        let home = std::env::var_os("ORCHESTRA_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".orchestra"))
            });
        Ok(Ctx { cwd, home })
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colour(
            io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_target(false)
        .try_init();
}

/// Whether log lines on stderr may use ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything non-empty (<https://no-color.org>). A pipe or a file gets
/// plain text.
fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Parses the command line, runs the subcommand and returns its exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return exit::code(if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::SUCCESS
            });
        }
    };
    init_logging(cli.verbose);
    let outcome = Ctx::from_env().and_then(|ctx| cli.command.run(&ctx));
    match outcome {
        Ok(code) => exit::code(code),
        // `orchestra compile x | head`: the reader left; not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::code(exit::SUCCESS),
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            exit::code(exit::INTERNAL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}
