//! The `orchestra` binary: parse the command line, run one subcommand, exit with its code.

mod children;
mod cli;
mod cmd;
mod cost;
mod diag;
mod drive;
mod edit;
mod engine;
mod exit;
mod human;
mod load;
mod progress;
mod queue;
mod report;
mod store;
mod summary;

fn main() -> std::process::ExitCode {
    cli::main()
}
